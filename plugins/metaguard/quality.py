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
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import os
import re
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metaguard import registry
from metaguard.config import Settings, inside_root, parse_date
from metaguard.contract import COLUMNS, RULES_BY_CODE, SUITE_NAME
from metaguard.exceptions import (
    ConfigError,
    ModelIntegrityError,
    PartitionNotFound,
    SchemaMismatch,
    UnreadableFile,
)
from metaguard.publish import temporary_path, write_parquet
from metaguard.validation import (
    BatchValidator,
    RuleFlags,
    RuleTally,
    apply_duplicates,
    duplicated_ids,
    flags_from_result,
    load_suite,
    tally,
)
from metaguard.warehouse import Partition, iter_batches, locate_partition

log = logging.getLogger(__name__)

QUALITY_DIR = "quality"
REPORT_FILE = "part-00000.parquet"
TREND_FILE = "trend.png"
GX_DIR = "gx"
DATA_DOCS_DIR = "data_docs"
DOCS_LOCK_FILE = ".gx.lock"
SITE_NAME = "metaguard_data_docs"
# Relative to the GX project folder <output>/gx, so the output root can move.
SITE_CONFIG = {
    "class_name": "SiteBuilder",
    "show_how_to_buttons": False,
    "store_backend": {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": f"../{DATA_DOCS_DIR}/",
    },
    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
}

NUMERIC_COLUMNS = tuple(c.name for c in COLUMNS if c.kind != "id")
UNEXPECTED_VALUES = 5
RESULT_LIST_LIMIT = 1000
# Floor for empty bins, so PSI stays finite when a bin has no rows on one side.
PSI_EPSILON = 1e-4
MAX_RANGE_DAYS = 366
TREND_MIN_DAYS = 90
STATUS_OK = "ok"

QUALITY_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("run_time", pa.timestamp("us", tz="UTC")),
        pa.field("partition_date", pa.date32()),
        pa.field("kind", pa.string()),
        pa.field("rule", pa.string()),
        pa.field("column", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("status", pa.string()),
        pa.field("success", pa.bool_()),
        pa.field("element_count", pa.int64()),
        pa.field("unexpected_count", pa.int64()),
        pa.field("unexpected_percent", pa.float64()),
        pa.field("unexpected_values", pa.list_(pa.string())),
        pa.field("detail", pa.string()),
    ]
)


# Settings ------------------------------------------------------------------


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


# Profiling -----------------------------------------------------------------


@dataclass
class PartitionProfile:
    """Validation tallies and column statistics of one partition."""

    partition: Partition
    duplicated_ids: int = 0
    rows: int = 0
    bad_rows: int = 0
    tallies: dict[str, RuleTally] = field(default_factory=dict)
    table_checks: dict[str, dict] = field(default_factory=dict)
    null_counts: dict[str, int] = field(default_factory=dict)
    values: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: defaultdict(list)
    )
    gx_results: list = field(default_factory=list)

    def finite_values(self, column: str) -> np.ndarray:
        """Return the column's finite values over all batches, merged once."""
        chunks = self.values.get(column) or []
        if len(chunks) != 1:
            merged = np.concatenate(chunks) if chunks else np.array([], np.float64)
            self.values[column] = [merged]
        return self.values[column][0]


def profile_partition(partition: Partition, batch_rows: int) -> PartitionProfile:
    """Validate a partition batch by batch, as the nightly run does, and profile it.

    Raises :class:`UnreadableFile` or :class:`SchemaMismatch` when a file
    fails while it is read.
    """
    duplicates = duplicated_ids(partition.files, partition.id_is_string)
    validator = BatchValidator()
    profile = PartitionProfile(partition, duplicated_ids=len(duplicates))
    for frame in iter_batches(partition, batch_rows):
        result = validator.validate(frame)
        flags = flags_from_result(result, len(frame))
        apply_duplicates(frame, flags, duplicates)
        tally(profile.tallies, frame, flags)
        _add_batch(profile, frame, flags, result)
    if not profile.tallies:
        tally(profile.tallies, pd.DataFrame(), RuleFlags(0))
    log.info(
        "partition %s: %d rows in %d batch(es), %d bad, %d duplicated id(s)",
        partition.path, profile.rows, len(profile.gx_results), profile.bad_rows,
        profile.duplicated_ids,
    )
    return profile


def _add_batch(
    profile: PartitionProfile, frame: pd.DataFrame, flags: RuleFlags, result
) -> None:
    profile.rows += len(frame)
    profile.bad_rows += len(flags.by_row)
    columns = [c.name for c in COLUMNS] + list(profile.partition.passthrough)
    for name in columns:
        nulls = int(frame[name].isna().sum())
        profile.null_counts[name] = profile.null_counts.get(name, 0) + nulls
    # NOTE: exact p50/p99 and PSI keep every finite value of the numeric
    # columns, about 8 bytes per row per column, until the day is written.
    for name in NUMERIC_COLUMNS:
        values = frame[name].to_numpy(dtype=np.float64)
        profile.values[name].append(values[np.isfinite(values)])
    for outcome in result.results:
        rule = outcome.expectation_config.meta.get("rule", "")
        if rule in RULES_BY_CODE:
            continue
        check = profile.table_checks.setdefault(
            rule, {"type": outcome.expectation_config.type, "success": True}
        )
        check["success"] = check["success"] and bool(outcome.success)
    profile.gx_results.append(_trimmed(result))


def _trimmed(result, limit: int = RESULT_LIST_LIMIT):
    """Cap a GX result's per-row lists in place, after the row flags were taken."""
    for outcome in result.results:
        details = outcome.result or {}
        for key in ("unexpected_index_list", "unexpected_list"):
            values = details.get(key)
            if isinstance(values, list) and len(values) > limit:
                details[key] = values[:limit]
                details[f"{key}_truncated"] = True
    return result


# Drift ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The champion's reference histograms, or why there are none."""

    version: str | None
    histograms: dict
    reason: str = ""


def champion_reference(models: Path) -> Reference:
    """Read the champion's reference histograms from its metadata.

    Only ``metadata.json`` is read, never the pickled model.
    """
    try:
        version = registry.champion_version(models)
        if version is None:
            return Reference(None, {}, f"no champion model in {models}")
        metadata = registry.read_metadata(models, version)
    except ModelIntegrityError as error:
        log.warning("champion model in %s is unusable for PSI: %s", models, error)
        return Reference(None, {}, f"champion model is unusable: {error}")
    return Reference(version, metadata.get("reference_histograms") or {})


def population_stability_index(histogram: Mapping, values: np.ndarray) -> float | None:
    """Compute the PSI of ``values`` against a reference histogram.

    ``histogram`` has ``edges`` (None for -inf and +inf) and ``counts``.
    PSI = sum over bins of (actual - expected) * ln(actual / expected), with
    both shares floored at :data:`PSI_EPSILON`. Returns None when either side
    has no values.
    """
    edges = np.array(
        [_edge(edge, lower=index == 0) for index, edge in enumerate(histogram["edges"])]
    )
    expected = np.asarray(histogram["counts"], dtype=np.float64)
    if len(edges) != len(expected) + 1:
        raise ValueError(
            f"reference histogram has {len(edges)} edges for {len(expected)} counts"
        )
    actual, _ = np.histogram(values, bins=edges)
    if expected.sum() == 0 or actual.sum() == 0:
        return None
    expected_share = np.clip(expected / expected.sum(), PSI_EPSILON, None)
    actual_share = np.clip(actual / actual.sum(), PSI_EPSILON, None)
    terms = (actual_share - expected_share) * np.log(actual_share / expected_share)
    return float(terms.sum())


def _edge(edge: float | None, lower: bool) -> float:
    if edge is None:
        return -math.inf if lower else math.inf
    return float(edge)


def psi_status(value: float, settings: QualitySettings) -> str:
    """Classify a PSI value as ``ok``, ``warn`` or ``flag``."""
    if value >= settings.psi_flag:
        return "flag"
    if value >= settings.psi_warn:
        return "warn"
    return STATUS_OK


def drift_rows(
    profile: PartitionProfile, reference: Reference, settings: QualitySettings
) -> list[dict]:
    """Build one PSI row per numeric contract column, logging flagged ones."""
    rows = []
    thresholds = f"warn at {settings.psi_warn}, flag at {settings.psi_flag}"
    for name in NUMERIC_COLUMNS:
        row = {"kind": "drift", "column": name, "metric": "psi"}
        histogram = reference.histograms.get(name)
        if reference.version is None:
            rows.append(row | {"status": "no_champion", "detail": reference.reason})
            continue
        if histogram is None:
            detail = f"champion {reference.version} has no reference histogram"
            rows.append(row | {"status": "no_reference", "detail": detail})
            continue
        detail = f"champion {reference.version}; {thresholds}"
        try:
            value = population_stability_index(histogram, profile.finite_values(name))
        except ValueError as error:
            detail = f"champion {reference.version}: invalid histogram: {error}"
            rows.append(row | {"status": "no_reference", "detail": detail})
            continue
        if value is None:
            rows.append(row | {"status": "no_data", "detail": detail})
            continue
        status = psi_status(value, settings)
        rows.append(row | {"value": value, "status": status, "detail": detail})
        if status == "flag":
            log.warning(
                "partition %s: PSI of %s is %.4f, at or above the flag threshold %s "
                "(champion %s)",
                profile.partition.day, name, value, settings.psi_flag,
                reference.version,
            )
    return rows


# Quality table rows --------------------------------------------------------


def partition_rows(profile: PartitionProfile, pages: list[str]) -> list[dict]:
    """Build the partition-level rows: status, counts and Data Docs pages."""
    partition = profile.partition
    share = profile.bad_rows / profile.rows if profile.rows else 0.0
    rows = [
        {"metric": "status", "status": STATUS_OK, "detail": str(partition.path)},
        {"metric": "row_count", "value": profile.rows},
        {
            "metric": "file_count",
            "value": len(partition.files),
            "detail": ", ".join(partition.file_names),
        },
        {"metric": "bad_rows", "value": profile.bad_rows},
        {"metric": "bad_row_share", "value": share},
        {"metric": "duplicated_ids", "value": profile.duplicated_ids},
    ]
    rows += [{"metric": "data_docs_page", "detail": page} for page in pages]
    return [{"kind": "partition", "status": STATUS_OK} | row for row in rows]


def expectation_rows(profile: PartitionProfile) -> list[dict]:
    """Build one row per expectation of the suite, merged over all batches."""
    rows = []
    for rule, check in profile.table_checks.items():
        rows.append(
            {
                "kind": "expectation",
                "rule": rule,
                "metric": check["type"],
                "success": check["success"],
                "status": "pass" if check["success"] else "fail",
            }
        )
    for code in RULES_BY_CODE:
        entry = profile.tallies[code].as_dict()
        rows.append(
            {
                "kind": "expectation",
                "rule": code,
                "column": entry["column"],
                "metric": entry["expectation_type"],
                "success": entry["success"],
                "status": "pass" if entry["success"] else "fail",
                "element_count": entry["element_count"],
                "unexpected_count": entry["unexpected_count"],
                "unexpected_percent": entry["unexpected_percent"],
                "unexpected_values": [
                    "null" if v is None else str(v)
                    for v in entry["unexpected_sample"][:UNEXPECTED_VALUES]
                ],
                "detail": RULES_BY_CODE[code].describe(),
            }
        )
    return rows


def column_rows(profile: PartitionProfile) -> list[dict]:
    """Build the null count of every column read and statistics of numeric ones."""
    rows = [
        {"metric": "null_count", "column": name, "value": count}
        for name, count in profile.null_counts.items()
    ]
    for name in NUMERIC_COLUMNS:
        values = profile.finite_values(name)
        if values.size == 0:
            rows.append({"metric": "min", "column": name, "status": "no_data"})
            continue
        p50, p99 = np.percentile(values, [50, 99])
        stats = {
            "min": values.min(),
            "max": values.max(),
            "mean": values.mean(),
            "p50": p50,
            "p99": p99,
        }
        rows += [
            {"metric": metric, "column": name, "value": float(value)}
            for metric, value in stats.items()
        ]
    return [{"kind": "column", "status": STATUS_OK} | row for row in rows]


def failure_rows(error: Exception) -> list[dict]:
    """Describe a partition that could not be validated as one status row."""
    message = str(error)
    row = {"kind": "partition", "metric": "status", "detail": message}
    if isinstance(error, PartitionNotFound):
        return [row | {"status": "missing"}]
    if isinstance(error, UnreadableFile):
        return [row | {"status": "unreadable"}]
    # NOTE: SchemaMismatch carries only a message, so the column is parsed from
    # the wording in metaguard.warehouse; the message also names the type found.
    column = re.search(r"column '([^']+)'", message)
    return [
        row
        | {"status": "schema_mismatch", "column": column.group(1) if column else None}
    ]


# Day check -----------------------------------------------------------------


def quality_path(output: Path, day: dt.date) -> Path:
    """Return ``<output>/quality/dt=YYYY-MM-DD/part-00000.parquet``."""
    return inside_root(output, QUALITY_DIR, f"dt={day.isoformat()}", REPORT_FILE)


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
    except (PartitionNotFound, UnreadableFile, SchemaMismatch) as error:
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


def write_report(
    output: Path, day: dt.date, rows: list[dict], run_id: str, run_time: dt.datetime
) -> Path:
    """Write a day's quality rows, stamped with the run, atomically as Parquet."""
    stamp = {"run_id": run_id, "run_time": run_time, "partition_date": day}
    table = pa.Table.from_pylist([stamp | row for row in rows], schema=QUALITY_SCHEMA)
    path = write_parquet(quality_path(output, day), table)
    log.info("quality table %s: %d rows", path, table.num_rows)
    return path


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
    keys = ("date", "status", "rows", "bad_rows", "psi", "psi_max", "psi_max_column",
            "psi_flagged", "quality_path")
    extra = {key: summary[key] for key in keys}
    extra["psi"] = {k: _rounded(v) for k, v in summary["psi"].items()}
    extra["psi_max"] = _rounded(summary["psi_max"])
    return extra


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# GX Data Docs --------------------------------------------------------------


@contextmanager
def docs_context(output: Path) -> Iterator[object]:
    """Yield the file-backed GX context in ``<output>/gx`` under an exclusive lock.

    The lock serializes tasks that write the same GX project, because GX
    writes its stores and the Data Docs index without atomic renames.
    """
    import fcntl

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    output.mkdir(parents=True, exist_ok=True)
    with open(inside_root(output, DOCS_LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            context = gx.get_context(mode="file", project_root_dir=str(output))
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            if context.variables.data_docs_sites != {SITE_NAME: SITE_CONFIG}:
                sites = {SITE_NAME: copy.deepcopy(SITE_CONFIG)}
                context.variables.data_docs_sites = sites
                context.variables.save()
            context.suites.add_or_update(gx.ExpectationSuite(**load_suite()))
            yield context
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def store_results(
    output: Path, day: dt.date, run_time: dt.datetime, results: list
) -> list[str]:
    """Store a day's GX results, render their pages and return the page paths.

    Each batch's result is stored under run name ``dt=YYYY-MM-DD`` and batch
    id ``dt=YYYY-MM-DD-batch-NNNNN``. Paths are relative to ``output``.
    """
    if not results:
        return []
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    suite = ExpectationSuiteIdentifier(name=SUITE_NAME)
    run = RunIdentifier(run_name=f"dt={day.isoformat()}", run_time=run_time)
    with docs_context(output) as context:
        keys = []
        for index, result in enumerate(results):
            batch = f"dt={day.isoformat()}-batch-{index:05d}"
            key = ValidationResultIdentifier(suite, run, batch)
            context.validation_results_store.set(key, result)
            keys.append(key)
        context.build_data_docs(
            site_names=[SITE_NAME], resource_identifiers=keys, build_index=False
        )
        pages = [_page_path(context, output, key) for key in keys]
    log.info("stored %d GX validation result(s) for %s", len(keys), day)
    return pages


def _page_path(context, output: Path, key) -> str:
    urls = context.get_docs_sites_urls(
        resource_identifier=key, site_name=SITE_NAME, only_if_exists=False
    )
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(urls[0]["site_url"]).path))
    return os.path.relpath(path.resolve(), output.resolve())


def prune_results(store, keep: int) -> int:
    """Delete all but the newest ``keep`` validation results of each suite.

    Returns the number deleted. The Data Docs index build then removes the
    pages of deleted results.
    """
    by_suite: dict[str, list] = defaultdict(list)
    for key in store.list_keys():
        by_suite[key.expectation_suite_identifier.name].append(key)
    removed = 0
    for keys in by_suite.values():
        keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
        for key in keys[keep:]:
            store.remove_key(key)
            removed += 1
    return removed


def remove_empty_folders(root: Path) -> int:
    """Delete the empty folders below ``root``, deepest first; return the count."""
    removed = 0
    if not root.is_dir():
        return removed
    for folder, subfolders, files in os.walk(root, topdown=False):
        path = Path(folder)
        if path != root and not files and not any(path.iterdir()):
            path.rmdir()
            removed += 1
    return removed


def publish_docs(output: Path, keep: int) -> Path:
    """Prune stored GX results to ``keep`` per suite and rebuild the Data Docs index.

    Renders every kept page again when the index page is missing, so a
    deleted site is rebuilt from the stored results.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    index = inside_root(output, DATA_DOCS_DIR, "index.html")
    full = not index.is_file()
    with docs_context(output) as context:
        removed = prune_results(context.validation_results_store, keep)
        resources = None if full else [ExpectationSuiteIdentifier(name=SUITE_NAME)]
        context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=resources)
        # GX deletes the files of pruned results and pages but leaves their
        # run folders behind.
        for folder in (
            inside_root(output, GX_DIR, "uncommitted", "validations"),
            inside_root(output, DATA_DOCS_DIR, "validations"),
        ):
            remove_empty_folders(folder)
    log.info(
        "Data Docs index %s rebuilt (%s); %d old validation result(s) pruned, "
        "keeping %d per suite",
        index, "all pages" if full else "index only", removed, keep,
    )
    return index


# Trend ---------------------------------------------------------------------


def day_figures(output: Path, start: dt.date, end: dt.date) -> list[dict]:
    """Read each day's headline figures from the quality tables and run summaries.

    A day without a quality table gets the status ``no report``.
    """
    return [_figures_for(output, day) for day in days_between(start, end)]


def _figures_for(output: Path, day: dt.date) -> dict:
    figures = {"date": day, "status": "no report", "rows": None,
               "bad_row_share": None, "suspicious_share": None,
               "psi_max": None, "psi_max_column": None}
    path = quality_path(output, day)
    if not path.is_file():
        return figures
    columns = ["kind", "column", "metric", "value", "status"]
    table = pq.read_table(path, columns=columns).to_pandas()
    partition = table[table["kind"] == "partition"].set_index("metric")
    figures["status"] = partition.loc["status", "status"]
    for metric, key in (("row_count", "rows"), ("bad_row_share", "bad_row_share")):
        if metric in partition.index:
            figures[key] = float(partition.loc[metric, "value"])
    drift = table[(table["kind"] == "drift") & table["value"].notna()]
    if not drift.empty:
        top = drift.loc[drift["value"].idxmax()]
        figures["psi_max"] = float(top["value"])
        figures["psi_max_column"] = top["column"]
    figures["suspicious_share"] = _suspicious_share(output, day)
    return figures


def _suspicious_share(output: Path, day: dt.date) -> float | None:
    import json

    path = inside_root(output, "runs", f"dt={day.isoformat()}", "summary.json")
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    scored = summary.get("scored") or 0
    return summary.get("suspicious", 0) / scored if scored else None


def trend_window(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """Widen a run's range to at least the :data:`TREND_MIN_DAYS` days up to ``end``."""
    return min(start, end - dt.timedelta(days=TREND_MIN_DAYS - 1)), end


def draw_trend(
    figures: list[dict], path: Path, quality: QualitySettings
) -> Path | None:
    """Draw rows, bad-row share, suspicious share and max PSI per day as a PNG.

    Only days with a quality table are drawn. Returns None, and writes
    nothing, when no day has one.
    """
    from matplotlib.figure import Figure

    present = [f for f in figures if f["status"] != "no report"]
    if not present:
        log.info("no quality tables in %s..%s; trend chart not drawn",
                 figures[0]["date"], figures[-1]["date"])
        return None
    figure = Figure(figsize=(11, 9), layout="constrained")
    axes = figure.subplots(4, 1, sharex=True)
    _plot_rows(axes[0], present)
    _plot_share(axes[1], present, "bad_row_share", "bad-row share (%)", "tab:red")
    _plot_share(axes[2], present, "suspicious_share", "suspicious share (%)",
                "tab:purple")
    _plot_psi(axes[3], present, quality)
    _format_dates(axes[3])
    first, last = present[0]["date"], present[-1]["date"]
    figure.suptitle(f"MetaGuard data quality, {first} to {last} ({len(present)} days)")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        figure.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    log.info("trend chart %s: %d day(s)", path, len(present))
    return path


def _plot_rows(axis, figures: list[dict]) -> None:
    ok = [f for f in figures if f["rows"] is not None]
    axis.bar([f["date"] for f in ok], [f["rows"] for f in ok], color="tab:blue",
             width=0.8)
    failed = [f for f in figures if f["rows"] is None]
    if failed:
        axis.plot([f["date"] for f in failed], [0] * len(failed), "X", color="tab:red",
                  markersize=10, clip_on=False,
                  label="not validated\n(missing, unreadable\nor wrong schema)")
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axis.set_ylabel("rows")
    axis.set_ylim(bottom=0)
    axis.grid(axis="y", alpha=0.3)


def _plot_share(axis, figures: list[dict], key: str, label: str, color: str) -> None:
    if any(f[key] is not None for f in figures):
        values = [100 * value for value in _gapped(figures, key)]
        axis.plot([f["date"] for f in figures], values, "o-", color=color,
                  markersize=4, clip_on=False)
        axis.set_ylim(bottom=0)
    else:
        axis.text(0.5, 0.5, "no data for these days", transform=axis.transAxes,
                  ha="center", va="center", color="grey")
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)


def _gapped(figures: list[dict], key: str) -> list[float]:
    """Return the values of ``key``, NaN where absent, so plotted lines break there."""
    return [math.nan if f[key] is None else f[key] for f in figures]


def _plot_psi(axis, figures: list[dict], quality: QualitySettings) -> None:
    points = [f for f in figures if f["psi_max"] is not None]
    if points:
        axis.plot([f["date"] for f in figures], _gapped(figures, "psi_max"), "-",
                  color="lightgrey", zorder=1)
        for column in NUMERIC_COLUMNS:
            chosen = [f for f in points if f["psi_max_column"] == column]
            if chosen:
                dates = [f["date"] for f in chosen]
                values = [f["psi_max"] for f in chosen]
                label = f"largest in {column}"
                axis.scatter(dates, values, s=16, zorder=2, label=label,
                             clip_on=False)
    else:
        axis.text(0.5, 0.5, "no PSI (no champion model or no data)",
                  transform=axis.transAxes, ha="center", va="center", color="grey")
    axis.axhline(quality.psi_warn, color="orange", linestyle="--",
                 label=f"warn at {quality.psi_warn}")
    axis.axhline(quality.psi_flag, color="red", linestyle="--",
                 label=f"flag at {quality.psi_flag}")
    # Linear up to the warn threshold and logarithmic above, so both thresholds
    # and PSI values far above them stay readable on one axis.
    axis.set_yscale("symlog", linthresh=max(quality.psi_warn, 0.01))
    highest = max([f["psi_max"] for f in points] + [quality.psi_flag])
    axis.set_ylim(0, 3 * highest)
    axis.set_ylabel("largest PSI")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axis.grid(alpha=0.3)


def _format_dates(axis) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def format_figures(figures: list[dict]) -> str:
    """Render day figures as a fixed-width text table for the terminal."""
    header = (f"{'date':<10}  {'status':<15}  {'rows':>9}  {'bad rows':>9}  "
              f"{'suspicious':>10}  {'max PSI':>8}  column")
    lines = [header, "-" * len(header)]
    for f in figures:
        rows = "-" if f["rows"] is None else f"{int(f['rows']):,}"
        lines.append(
            f"{f['date'].isoformat():<10}  {f['status']:<15}  {rows:>9}  "
            f"{_percent(f['bad_row_share']):>9}  {_percent(f['suspicious_share']):>10}"
            f"  {_number(f['psi_max']):>8}  {f['psi_max_column'] or '-'}"
        )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# Range ---------------------------------------------------------------------


def report_run_id(output: Path, day: dt.date) -> str | None:
    """Return the run id stamped in a day's quality table, or None without one."""
    path = quality_path(output, day)
    if not path.is_file():
        return None
    run_ids = pq.read_table(path, columns=["run_id"]).column(0)
    return run_ids[0].as_py() if len(run_ids) else None


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
    trend = draw_trend(figures, inside_root(settings.output, QUALITY_DIR, TREND_FILE),
                       quality)
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
