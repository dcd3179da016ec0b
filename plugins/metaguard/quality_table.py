"""A day's quality table: the partition profile, its rows, schema and file.

:func:`profile_partition` validates a transaction partition with the same
calls as the nightly run (:class:`~metaguard.validation.BatchValidator`,
:func:`~metaguard.validation.flags_from_result`, cross-batch duplicates and
:func:`~metaguard.validation.tally`) and keeps null counts and the finite
values of the numeric columns. The row builders turn the profile into
long-format rows of :data:`QUALITY_SCHEMA`, and :func:`write_report` writes
them to ``<output>/quality/dt=YYYY-MM-DD/part-00000.parquet``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metaguard.config import inside_root
from metaguard.contract import COLUMNS, RULES_BY_CODE
from metaguard.exceptions import PartitionNotFound, PathOutsideRoot, UnreadableFile
from metaguard.publish import write_parquet
from metaguard.validation import (
    PartitionValidation,
    RuleFlags,
    RuleTally,
    tally,
    trim_result,
)
from metaguard.warehouse import Partition

log = logging.getLogger(__name__)

QUALITY_DIR = "quality"
REPORT_FILE = "part-00000.parquet"

NUMERIC_COLUMNS = tuple(c.name for c in COLUMNS if c.kind != "id")
UNEXPECTED_VALUES = 5
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
    validation = PartitionValidation(partition, batch_rows)
    profile = PartitionProfile(partition, duplicated_ids=len(validation.duplicates))
    for batch in validation:
        tally(profile.tallies, batch.frame, batch.flags)
        _add_batch(profile, batch.frame, batch.flags, batch.result)
    if not profile.tallies:
        tally(profile.tallies, pd.DataFrame(), RuleFlags(0))
    log.info(
        "partition %s: %d rows in %d batch(es), %d bad, %d duplicated id(s)",
        partition.path,
        profile.rows,
        len(profile.gx_results),
        profile.bad_rows,
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
    profile.gx_results.append(trim_result(result))


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
    if isinstance(error, UnreadableFile | PathOutsideRoot):
        return [row | {"status": "unreadable"}]
    # NOTE: SchemaMismatch carries only a message, so the column is parsed from
    # the wording in metaguard.warehouse; the message also names the type found.
    column = re.search(r"column '([^']+)'", message)
    return [
        row
        | {"status": "schema_mismatch", "column": column.group(1) if column else None}
    ]


# Table file ----------------------------------------------------------------


def quality_path(output: Path, day: dt.date) -> Path:
    """Return ``<output>/quality/dt=YYYY-MM-DD/part-00000.parquet``."""
    return inside_root(output, QUALITY_DIR, f"dt={day.isoformat()}", REPORT_FILE)


def write_report(
    output: Path, day: dt.date, rows: list[dict], run_id: str, run_time: dt.datetime
) -> Path:
    """Write a day's quality rows, stamped with the run, atomically as Parquet."""
    stamp = {"run_id": run_id, "run_time": run_time, "partition_date": day}
    table = pa.Table.from_pylist([stamp | row for row in rows], schema=QUALITY_SCHEMA)
    path = write_parquet(quality_path(output, day), table)
    log.info("quality table %s: %d rows", path, table.num_rows)
    return path


def report_run_id(output: Path, day: dt.date) -> str | None:
    """Return the run id stamped in a day's quality table, or None without one."""
    path = quality_path(output, day)
    if not path.is_file():
        return None
    run_ids = pq.read_table(path, columns=["run_id"]).column(0)
    return run_ids[0].as_py() if len(run_ids) else None
