"""Settings from environment variables and DAG Params, validated once.

Every setting has an environment variable and a default that points at the
demo under ``<repo>/demo``. A DAG Param with the same key (lower case,
without the ``METAGUARD_`` prefix) overrides the variable for one run.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from metaguard.exceptions import ConfigError, PathOutsideRoot

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 50_000_000

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_ROOT = REPO_ROOT / "demo"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_PASSTHROUGH = ("customer_id", "terminal_id", "event_time")


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one run; build with :func:`load_settings`."""

    warehouse: Path
    output: Path
    models: Path
    risk_threshold: float = 0.5
    max_bad_row_share: float = 0.01
    log_level: str = "INFO"
    medium_risk_from: float = 0.40
    high_risk_from: float = 0.70
    passthrough_columns: tuple[str, ...] = DEFAULT_PASSTHROUGH
    batch_rows: int = 250_000

    def with_overrides(self, overrides: Mapping[str, object]) -> Settings:
        """Return a copy with Params applied, validated like the variables."""
        values = {k: v for k, v in overrides.items() if v not in (None, "")}
        return _build(values, base=self)


_ENV = {
    "warehouse": "METAGUARD_WAREHOUSE",
    "output": "METAGUARD_OUTPUT",
    "models": "METAGUARD_MODELS",
    "risk_threshold": "METAGUARD_RISK_THRESHOLD",
    "max_bad_row_share": "METAGUARD_MAX_BAD_ROW_SHARE",
    "log_level": "METAGUARD_LOG_LEVEL",
    "medium_risk_from": "METAGUARD_MEDIUM_RISK_FROM",
    "high_risk_from": "METAGUARD_HIGH_RISK_FROM",
    "passthrough_columns": "METAGUARD_PASSTHROUGH_COLUMNS",
    "batch_rows": "METAGUARD_BATCH_ROWS",
}


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read settings from the environment, then apply per-run overrides.

    Raises :class:`ConfigError` naming the variable, the value and the
    accepted range when a value is invalid.
    """
    environ = os.environ if environ is None else environ
    _warn_unknown_variables(environ)
    values: dict[str, object] = {}
    for key, variable in _ENV.items():
        if environ.get(variable, "") != "":
            values[key] = environ[variable]
    settings = _build(values, base=None, source=_ENV)
    if overrides:
        settings = settings.with_overrides(overrides)
    return settings


# Variables read by other parts of MetaGuard (quality checks, the DAG pool,
# the test suite and the compose file), so they are not reported as unknown.
OTHER_VARIABLES = frozenset(
    {
        "METAGUARD_PSI_WARN",
        "METAGUARD_PSI_FLAG",
        "METAGUARD_DATA_DOCS_KEEP",
        "METAGUARD_POOL",
        "METAGUARD_POOL_SLOTS",
        "METAGUARD_IMAGE",
        "METAGUARD_HANDBOOK",
        "METAGUARD_REQUIRE_HANDBOOK",
    }
)


def _warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """Log a warning for each METAGUARD_* variable that no setting reads.

    A misspelt name such as METAGUARD_RISK_TRESHOLD would otherwise leave the
    default in force without a word.
    """
    known = set(_ENV.values()) | OTHER_VARIABLES
    for variable in sorted(environ):
        if variable.startswith("METAGUARD_") and variable not in known:
            close = difflib.get_close_matches(variable, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            log.warning(
                "environment variable %s is not a MetaGuard setting and is ignored%s",
                variable,
                hint,
            )


def _build(
    values: Mapping[str, object],
    base: Settings | None,
    source: Mapping[str, str] | None = None,
) -> Settings:
    def name(key: str) -> str:
        return source[key] if source else f"Param '{key}'"

    unknown = set(values) - set(_ENV)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {sorted(unknown)}; accepted: {sorted(_ENV)}"
        )
    current = base or Settings(
        warehouse=DEMO_ROOT / "warehouse",
        output=DEMO_ROOT / "output",
        models=DEMO_ROOT / "models",
    )
    changes: dict[str, object] = {}
    for key in ("warehouse", "output", "models"):
        if key in values:
            changes[key] = Path(str(values[key])).expanduser().resolve()
    for key in ("risk_threshold", "max_bad_row_share"):
        if key in values:
            changes[key] = _fraction(name(key), values[key])
    for key in ("medium_risk_from", "high_risk_from"):
        if key in values:
            changes[key] = _fraction(name(key), values[key])
    if "log_level" in values:
        level = str(values["log_level"]).upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"{name('log_level')}={values['log_level']!r} is invalid; "
                f"expected one of {', '.join(LOG_LEVELS)}"
            )
        changes["log_level"] = level
    if "passthrough_columns" in values:
        changes["passthrough_columns"] = _column_list(
            name("passthrough_columns"), values["passthrough_columns"]
        )
    if "batch_rows" in values:
        changes["batch_rows"] = _positive_int(name("batch_rows"), values["batch_rows"])
    settings = replace(current, **changes)
    _check_roots(settings, name)
    if not settings.medium_risk_from < settings.high_risk_from:
        raise ConfigError(
            f"{name('medium_risk_from')}={settings.medium_risk_from} must be below "
            f"{name('high_risk_from')}={settings.high_risk_from}"
        )
    logging.getLogger("metaguard").setLevel(settings.log_level)
    return settings


def _check_roots(settings: Settings, name) -> None:
    """Reject roots that are files, and outputs placed inside the warehouse."""
    for key in ("warehouse", "output", "models"):
        path = getattr(settings, key)
        if path.exists() and not path.is_dir():
            raise ConfigError(
                f"{name(key)}={path} is a file; expected a folder (it is created "
                "when missing)"
            )
    for key in ("output", "models"):
        path = getattr(settings, key)
        if path == settings.warehouse or settings.warehouse in path.parents:
            raise ConfigError(
                f"{name(key)}={path} is inside the warehouse {settings.warehouse}; "
                "expected a folder outside it, so reports never land among "
                "the partitions"
            )


def _fraction(variable: str, raw: object) -> float:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(
            f"{variable}={raw!r} is not a number; expected a number from 0 to 1"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{variable}={raw!r} is out of range; expected 0 to 1")
    return value


def _positive_int(variable: str, raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(
            f"{variable}={raw!r} is not an integer; expected a positive integer"
        ) from None
    if not 1 <= value <= MAX_BATCH_ROWS:
        raise ConfigError(
            f"{variable}={raw!r} is invalid; expected 1 to {MAX_BATCH_ROWS}"
        )
    return value


def _column_list(variable: str, raw: object) -> tuple[str, ...]:
    from metaguard.contract import OPTIONAL_COLUMNS

    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    columns = tuple(str(c).strip() for c in items if str(c).strip())
    unknown = [c for c in columns if c not in OPTIONAL_COLUMNS]
    if unknown:
        raise ConfigError(
            f"{variable} lists unknown column(s) {unknown}; "
            f"expected a comma-separated subset of {', '.join(OPTIONAL_COLUMNS)}"
        )
    return columns


def parse_date(raw: object, label: str = "date") -> dt.date:
    """Parse ``YYYY-MM-DD`` (or an ISO timestamp, a date, a datetime) into a date.

    Raises :class:`ConfigError` naming ``label`` and the value otherwise.
    """
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    text = str(raw).strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise ConfigError(
            f"{label} {text!r} is not a date; expected YYYY-MM-DD"
        ) from None


def inside_root(root: Path, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and check the result stays inside it.

    Rejects absolute parts, ``..`` and symlinks that resolve outside ``root``,
    so a Param cannot make a task read or write elsewhere.
    """
    for part in parts:
        if Path(part).is_absolute() or ".." in Path(part).parts:
            raise PathOutsideRoot(
                f"path component {part!r} is not allowed; "
                f"expected a relative path inside {root}"
            )
    root_resolved = root.resolve()
    candidate = root_resolved.joinpath(*parts)
    resolved = candidate.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise PathOutsideRoot(
            f"{candidate} resolves to {resolved}, outside the root {root_resolved}"
        )
    return candidate
