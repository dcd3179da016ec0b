"""Settings and day ranges of the data-quality run.

:func:`load_quality_settings` reads the PSI thresholds and the number of GX
validation results kept for Data Docs from the environment and the DAG's
Params. :func:`requested_days` turns the ``start`` and ``end`` Params into
the list of days to check.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from metaguard.config import parse_date
from metaguard.exceptions import ConfigError

MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class QualitySettings:
    """PSI thresholds and the number of GX validation results kept for Data Docs."""

    psi_warn: float = 0.1
    psi_flag: float = 0.25
    docs_keep: int = 180


QUALITY_ENV = {
    "psi_warn": "METAGUARD_PSI_WARN",
    "psi_flag": "METAGUARD_PSI_FLAG",
    "docs_keep": "METAGUARD_DATA_DOCS_KEEP",
}


def load_quality_settings(
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> QualitySettings:
    """Read the quality settings from the environment, then apply Params.

    Keys of ``overrides`` that are not quality settings are ignored, so a
    DAG's whole Params mapping can be passed. Raises :class:`ConfigError`
    naming the variable or Param when a value is invalid.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[str, object]] = {}
    for key, variable in QUALITY_ENV.items():
        if environ.get(variable, "") != "":
            raw[key] = (variable, environ[variable])
    for key in QUALITY_ENV:
        value = (overrides or {}).get(key)
        if value not in (None, ""):
            raw[key] = (f"Param '{key}'", value)
    values: dict[str, object] = {}
    for key in ("psi_warn", "psi_flag"):
        if key in raw:
            values[key] = _non_negative(*raw[key])
    if "docs_keep" in raw:
        values["docs_keep"] = _positive_int(*raw["docs_keep"])
    settings = QualitySettings(**values)
    if settings.psi_warn > settings.psi_flag:
        raise ConfigError(
            f"PSI warn threshold {settings.psi_warn} is above the flag threshold "
            f"{settings.psi_flag}; set METAGUARD_PSI_WARN <= METAGUARD_PSI_FLAG"
        )
    return settings


def _non_negative(name: str, raw: object) -> float:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not a number; expected >= 0") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={raw!r} is invalid; expected a finite number >= 0")
    return value


def _positive_int(name: str, raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; expected >= 1") from None
    if value < 1:
        raise ConfigError(f"{name}={raw!r} is invalid; expected at least 1")
    return value


def days_between(
    start: dt.date, end: dt.date, limit: int | None = None
) -> list[dt.date]:
    """List the days from ``start`` to ``end``, both included.

    Raises :class:`ConfigError` when ``end`` is before ``start`` or the range
    has more than ``limit`` days.
    """
    if end < start:
        raise ConfigError(f"end date {end} is before start date {start}")
    count = (end - start).days + 1
    if limit is not None and count > limit:
        raise ConfigError(
            f"range {start}..{end} has {count} days, above the maximum of {limit}; "
            "split it into several runs"
        )
    return [start + dt.timedelta(days=offset) for offset in range(count)]


def requested_days(start: object, end: object, fallback: dt.date) -> list[dt.date]:
    """Resolve the ``start`` and ``end`` Params; either one defaults to ``fallback``."""
    first = parse_date(start, "Param 'start'") if start else fallback
    last = parse_date(end, "Param 'end'") if end else fallback
    return days_between(first, last, MAX_RANGE_DAYS)
