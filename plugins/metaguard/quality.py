"""Daily data-quality reports: GX validation, partition profile, drift and trend.

For each day, :func:`check_day` validates the transaction partition with the
same calls as the nightly run (:class:`~metaguard.validation.BatchValidator`,
:func:`~metaguard.validation.flags_from_result`, cross-batch duplicates and
:func:`~metaguard.validation.tally`), profiles its columns, computes the
Population Stability Index (PSI) of each contract column against the
champion model's reference histograms and writes one long-format Parquet
table to ``<output>/quality/dt=YYYY-MM-DD/part-00000.parquet``.

The GX validation results go into a file-backed GX project in
``<output>/gx/``, which renders them as Data Docs in ``<output>/data_docs/``.
:func:`publish_range` prunes old results, rebuilds the Data Docs index and
draws ``<output>/quality/trend.png``. ``docs/data-quality.md`` describes the
table schema and the settings.

The steps live in :mod:`metaguard.quality_table` (profile, rows and table
file), :mod:`metaguard.drift` (PSI), :mod:`metaguard.datadocs` (GX project
and Data Docs) and :mod:`metaguard.trend` (day figures and chart), and the
settings and day ranges in :mod:`metaguard.quality_settings`. ``__all__``
lists the names that the DAG, the ``metaguard quality`` command and the tests
import from this module, some of them re-exported from those modules.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from metaguard.config import Settings, inside_root
from metaguard.datadocs import publish_docs, store_results
from metaguard.drift import (
    champion_reference,
    drift_rows,
    population_stability_index,
    psi_status,
)
from metaguard.exceptions import (
    PartitionNotFound,
    PathOutsideRoot,
    SchemaMismatch,
    UnreadableFile,
)
from metaguard.quality_settings import (
    MAX_RANGE_DAYS,
    QualitySettings,
    days_between,
    load_quality_settings,
    requested_days,
)
from metaguard.quality_table import (
    NUMERIC_COLUMNS,
    QUALITY_DIR,
    QUALITY_SCHEMA,
    column_rows,
    expectation_rows,
    failure_rows,
    partition_rows,
    profile_partition,
    quality_path,
    report_run_id,
    write_report,
)
from metaguard.trend import (
    TREND_FILE,
    day_figures,
    draw_trend,
    format_figures,
    trend_window,
)
from metaguard.warehouse import locate_partition

__all__ = [
    "NUMERIC_COLUMNS",
    "QUALITY_SCHEMA",
    "QualitySettings",
    "asset_extra",
    "check_day",
    "day_figures",
    "format_figures",
    "load_quality_settings",
    "population_stability_index",
    "psi_status",
    "publish_docs",
    "publish_range",
    "quality_path",
    "requested_days",
    "run_range",
]

log = logging.getLogger(__name__)


# Day check -----------------------------------------------------------------


def check_day(
    settings: Settings, quality: QualitySettings, day: dt.date, run_id: str
) -> dict:
    """Validate, profile and drift-check one day, and write its quality table.

    A missing partition, an unreadable file and a schema mismatch become
    status rows instead of errors. Errors while writing the table or the GX
    results propagate.
    """
    run_time = dt.datetime.now(dt.UTC)
    try:
        partition = locate_partition(
            settings.warehouse, day, passthrough=settings.passthrough_columns
        )
        profile = profile_partition(partition, settings.batch_rows)
    except (
        PartitionNotFound,
        UnreadableFile,
        SchemaMismatch,
        PathOutsideRoot,
    ) as error:
        log.warning("partition %s not validated: %s", day, error)
        rows = failure_rows(error)
        path = write_report(settings.output, day, rows, run_id, run_time)
        return _summary(day, run_id, path, rows)
    reference = champion_reference(settings.models)
    drift = drift_rows(profile, reference, quality)
    pages = store_results(settings.output, day, run_time, profile.gx_results)
    rows = (
        partition_rows(profile, pages)
        + expectation_rows(profile)
        + column_rows(profile)
        + drift
    )
    path = write_report(settings.output, day, rows, run_id, run_time)
    return _summary(day, run_id, path, rows)


def _summary(day: dt.date, run_id: str, path: Path, rows: list[dict]) -> dict:
    partition = {r["metric"]: r for r in rows if r["kind"] == "partition"}
    drift = [r for r in rows if r["kind"] == "drift"]
    scored = [r for r in drift if r.get("value") is not None]
    top = max(scored, key=lambda r: r["value"], default=None)
    status = partition["status"]
    return {
        "date": day.isoformat(),
        "run_id": run_id,
        "status": status["status"],
        "detail": status.get("detail"),
        "rows": partition.get("row_count", {}).get("value"),
        "bad_rows": partition.get("bad_rows", {}).get("value"),
        "bad_row_share": partition.get("bad_row_share", {}).get("value"),
        "psi": {r["column"]: r.get("value") for r in drift},
        "psi_status": {r["column"]: r["status"] for r in drift},
        "psi_max": top["value"] if top else None,
        "psi_max_column": top["column"] if top else None,
        "psi_flagged": [r["column"] for r in drift if r["status"] == "flag"],
        "quality_path": str(path),
    }


def asset_extra(summary: dict) -> dict:
    """Select the JSON-ready fields of a day's summary for an Asset event."""
    keys = (
        "date",
        "status",
        "rows",
        "bad_rows",
        "psi",
        "psi_max",
        "psi_max_column",
        "psi_flagged",
        "quality_path",
    )
    extra = {key: summary[key] for key in keys}
    extra["psi"] = {k: _rounded(v) for k, v in summary["psi"].items()}
    extra["psi_max"] = _rounded(summary["psi_max"])
    return extra


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# Range ---------------------------------------------------------------------


def publish_range(
    settings: Settings, quality: QualitySettings, days: list[dt.date], run_id: str
) -> dict:
    """Rebuild the Data Docs index and the trend chart after a range of day checks.

    Returns the paths and the days whose quality table this run did not
    write, which the caller treats as a failure.
    """
    days = sorted(days)
    unwritten = [
        d.isoformat() for d in days if report_run_id(settings.output, d) != run_id
    ]
    index = publish_docs(settings.output, quality.docs_keep)
    start, end = trend_window(days[0], days[-1])
    figures = day_figures(settings.output, start, end)
    trend = draw_trend(
        figures, inside_root(settings.output, QUALITY_DIR, TREND_FILE), quality
    )
    return {
        "days": [d.isoformat() for d in days],
        "days_without_report": unwritten,
        "data_docs_index": str(index),
        "trend_path": str(trend) if trend else None,
    }


def run_range(
    settings: Settings,
    quality: QualitySettings,
    start: dt.date,
    end: dt.date,
    run_id: str,
) -> dict:
    """Check every day of a range in this process, then publish, as one DAG run does."""
    days = days_between(start, end, MAX_RANGE_DAYS)
    summaries = [check_day(settings, quality, day, run_id) for day in days]
    return publish_range(settings, quality, days, run_id) | {"summaries": summaries}
