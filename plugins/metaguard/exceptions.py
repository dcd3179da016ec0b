"""Exceptions raised by MetaGuard.

Every error derives from :class:`MetaGuardError`. Subclasses of
:class:`ContractViolation` describe bad input that a retry cannot fix, so the
Airflow tasks fail them at once instead of retrying.
"""


class MetaGuardError(Exception):
    """Raised for any MetaGuard failure; the base of all others."""


class ConfigError(MetaGuardError, ValueError):
    """Raised when an environment variable or a Param has an invalid value."""


class ContractViolation(MetaGuardError):
    """Raised when input breaks the data contract; retrying cannot help."""


class PartitionNotFound(ContractViolation, FileNotFoundError):
    """Raised when a partition folder is missing or contains no data files."""


class SchemaMismatch(ContractViolation):
    """Raised when a file lacks a required column or has an unreadable type."""


class UnreadableFile(ContractViolation):
    """Raised when a data file is not valid Parquet (corrupt or truncated)."""


class BadRowShareExceeded(ContractViolation):
    """Raised when the share of quarantined rows is above the configured maximum."""


class TrainingDataError(ContractViolation):
    """Raised when a training or validation window has no labels or no fraud."""


class ModelIntegrityError(MetaGuardError):
    """Raised when a model artifact is missing, foreign or fails its sha256 check."""


class ModelFeatureError(ContractViolation):
    """Raised when a partition lacks the columns that the model's features need."""


class PathOutsideRoot(MetaGuardError, ValueError):
    """Raised when a path resolves outside the configured warehouse or output root."""
