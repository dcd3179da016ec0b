"""The steps of the nightly scoring run, as the Airflow tasks call them.

``locate`` -> ``validate`` -> ``score_chunk`` (one per chunk, mapped) ->
``publish``. Steps exchange small dicts of paths and counts, never data.
Intermediate files live in ``<output>/_staging/dt=D/<run_key>/``, one folder
per run, so concurrent runs of the same date never share a file. Only the
final atomic renames touch shared paths.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaguard import registry
from metaguard.config import Settings, inside_root
from metaguard.contract import COLUMN_NAMES, COLUMNS, SUITE_NAME
from metaguard.exceptions import BadRowShareExceeded
from metaguard.features import require_inputs
from metaguard.publish import (
    atomic_parquet_writer,
    move_into_place,
    remove_stale_temporaries,
    write_json,
)
from metaguard.scoring import RISK_LEVELS, report_schema, score_frame
from metaguard.validation import (
    FAILED_COLUMNS,
    FAILED_RULES,
    PartitionValidation,
    RuleTally,
    quarantine_frame,
    tally,
    trim_result,
)
from metaguard.warehouse import SOURCE_FILE, SOURCE_ROW, Partition, locate_partition

log = logging.getLogger(__name__)

REPORT_FILE = "part-00000.parquet"
STALE_STAGING_SECONDS = 24 * 3600
CHUNK_ROWS = 1_000_000


def output_path(settings: Settings, kind: str, day: dt.date, name: str = "") -> Path:
    """Return ``<output>/<kind>/dt=YYYY-MM-DD[/name]``, checked to stay inside."""
    parts = [kind, f"dt={day.isoformat()}"] + ([name] if name else [])
    return inside_root(settings.output, *parts)


def locate(settings: Settings, day: dt.date) -> dict:
    """Find the partition, pick the champion and check that they fit together."""
    partition = locate_partition(
        settings.warehouse, day, passthrough=settings.passthrough_columns
    )
    model = registry.load_champion(settings.models)
    feature_set = model.metadata.get("feature_set", "contract")
    passthrough = list(partition.passthrough)
    require_inputs(feature_set, passthrough, f"partition {partition.path}")
    log.info(
        "partition %s: %d file(s); champion model %s (%s features)",
        partition.path,
        len(partition.files),
        model.version,
        feature_set,
    )
    return {
        "day": day.isoformat(),
        "partition": str(partition.path),
        "files": partition.file_names,
        "id_is_string": partition.id_is_string,
        "passthrough": passthrough,
        "model_version": model.version,
        "feature_set": feature_set,
        "run_key": f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
        "started_at": time.time(),
    }


def _partition(located: dict) -> Partition:
    folder = Path(located["partition"])
    return Partition(
        dt.date.fromisoformat(located["day"]),
        folder,
        tuple(folder / name for name in located["files"]),
        located["id_is_string"],
        tuple(located["passthrough"]),
    )


def staging_dir(settings: Settings, located: dict) -> Path:
    """Return this run's private staging folder."""
    day = dt.date.fromisoformat(located["day"])
    return output_path(settings, "_staging", day, located["run_key"])


def _id_type(located: dict) -> pa.DataType:
    return pa.string() if located["id_is_string"] else pa.int64()


def _passthrough_schema(partition: Partition) -> pa.Schema:
    schema = pq.read_schema(partition.files[0])
    return pa.schema([schema.field(name) for name in partition.passthrough])


def _valid_schema(located: dict, passthrough: pa.Schema) -> pa.Schema:
    fields = [pa.field("transaction_id", _id_type(located))]
    fields += [pa.field(c.name, c.arrow_type) for c in COLUMNS[1:]]
    return pa.schema(fields + list(passthrough))


def _quarantine_schema(located: dict, passthrough: pa.Schema) -> pa.Schema:
    fields = [pa.field("transaction_id", _id_type(located))]
    fields += [pa.field(c.name, pa.float64()) for c in COLUMNS[1:]]
    fields += list(passthrough)
    fields += [
        pa.field(SOURCE_FILE, pa.string()),
        pa.field(SOURCE_ROW, pa.int64()),
        pa.field(FAILED_RULES, pa.list_(pa.string())),
        pa.field(FAILED_COLUMNS, pa.list_(pa.string())),
    ]
    return pa.schema(fields)


class _ChunkWriter:
    """Writes valid rows into staging chunk files of at most ``limit`` rows."""

    def __init__(self, folder: Path, schema: pa.Schema, limit: int) -> None:
        self.folder, self.schema, self.limit = folder, schema, limit
        self.paths: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None or self._rows >= self.limit:
                self._open()
            room = self.limit - self._rows
            head, table = table.slice(0, room), table.slice(room)
            self._writer.write_table(head)
            self._rows += head.num_rows

    def _open(self) -> None:
        self.close()
        path = self.folder / f"chunk-{len(self.paths):05d}.parquet"
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.paths.append(str(path))
        self._rows = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def validate(settings: Settings, located: dict) -> dict:
    """Validate the partition, stage valid rows in chunks, write the quarantine.

    The quarantine and the validation result are written before the bad-row
    share is checked, so a failed run still leaves both for inspection.
    """
    partition = _partition(located)
    day = partition.day
    staging = staging_dir(settings, located)
    (staging / "valid").mkdir(parents=True, exist_ok=True)
    passthrough = _passthrough_schema(partition)
    valid_schema = _valid_schema(located, passthrough)
    quarantine_schema = _quarantine_schema(located, passthrough)
    validation = PartitionValidation(partition, settings.batch_rows)
    tallies: dict[str, RuleTally] = {}
    gx_results: list[dict] = []
    chunks = _ChunkWriter(staging / "valid", valid_schema, CHUNK_ROWS)
    rows_in = quarantined = 0
    quarantine_path = output_path(settings, "quarantine", day, REPORT_FILE)
    with atomic_parquet_writer(quarantine_path, quarantine_schema) as quarantine:
        for batch in validation:
            frame, flags = batch.frame, batch.flags
            gx_results.append(trim_result(batch.result).to_json_dict())
            tally(tallies, frame, flags)
            bad = flags.mask().to_numpy()
            if bad.any():
                quarantine.write_table(
                    _to_table(quarantine_frame(frame, flags), quarantine_schema)
                )
            chunks.write(_to_table(frame.loc[~bad], valid_schema))
            rows_in += len(frame)
            quarantined += int(bad.sum())
            log.info("validated %d rows so far, %d quarantined", rows_in, quarantined)
    chunks.close()
    return _finish_validation(
        settings,
        located,
        rows_in,
        quarantined,
        tallies,
        gx_results,
        quarantine_path,
        chunks.paths,
        validation.duplicates,
    )


def _finish_validation(
    settings: Settings,
    located: dict,
    rows_in: int,
    quarantined: int,
    tallies: dict[str, RuleTally],
    gx_results: list[dict],
    quarantine_path: Path,
    chunk_paths: list[str],
    duplicates: pa.Array,
) -> dict:
    day = dt.date.fromisoformat(located["day"])
    share = quarantined / rows_in if rows_in else 0.0
    validation_path = output_path(settings, "validation", day, "validation_result.json")
    write_json(
        validation_path,
        {
            "suite": SUITE_NAME,
            "partition": located["partition"],
            "files": located["files"],
            "run_key": located["run_key"],
            "success": quarantined == 0,
            "rows_in": rows_in,
            "quarantined": quarantined,
            "bad_row_share": share,
            "duplicated_ids": len(duplicates),
            "rules": [t.as_dict() for t in tallies.values()],
            "gx_results": gx_results,
        },
    )
    log.info(
        "partition %s: %d rows in, %d valid, %d quarantined (%.4f%%); "
        "quarantine %s; validation result %s",
        located["day"],
        rows_in,
        rows_in - quarantined,
        quarantined,
        100 * share,
        quarantine_path,
        validation_path,
    )
    if share > settings.max_bad_row_share:
        broken = {
            t.rule: t.unexpected_count for t in tallies.values() if t.unexpected_count
        }
        error = BadRowShareExceeded(
            f"{quarantined} of {rows_in} rows ({share:.2%}) of {located['partition']} "
            "broke the contract, above the maximum of "
            f"{settings.max_bad_row_share:.2%} "
            f"(METAGUARD_MAX_BAD_ROW_SHARE); rules broken: {broken}. The quarantine "
            f"is in {quarantine_path} and the validation result in {validation_path}"
        )
        _record_failure(settings, located, rows_in, quarantined, str(error))
        raise error
    return {
        "rows_in": rows_in,
        "valid": rows_in - quarantined,
        "quarantined": quarantined,
        "bad_row_share": share,
        "chunks": chunk_paths,
        "quarantine_path": str(quarantine_path),
        "validation_path": str(validation_path),
    }


def _record_failure(
    settings: Settings, located: dict, rows_in: int, quarantined: int, reason: str
) -> None:
    """Mark the date as failed so its outputs do not contradict each other.

    The quarantine and validation result now describe the current partition,
    so an earlier run's report and summary of the same date no longer match
    it: the report is removed and the summary replaced by a failed one.
    """
    day = dt.date.fromisoformat(located["day"])
    report_path = output_path(settings, "risk_reports", day, REPORT_FILE)
    if report_path.exists():
        log.warning(
            "removing the earlier report %s: it does not match the partition "
            "that failed validation",
            report_path,
        )
        report_path.unlink()
    write_json(
        output_path(settings, "runs", day, "summary.json"),
        {
            "date": located["day"],
            "status": "failed",
            "reason": reason,
            "rows_in": rows_in,
            "scored": 0,
            "quarantined": quarantined,
            "model_version": located["model_version"],
            "run_key": located["run_key"],
        },
    )
    shutil.rmtree(staging_dir(settings, located), ignore_errors=True)


def _to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(
        frame[schema.names], schema=schema, preserve_index=False
    )


def score_chunk(settings: Settings, located: dict, chunk: str) -> dict:
    """Score one staged chunk with the run's model and stage the result.

    The chunk is read and scored in record batches of ``settings.batch_rows``
    rows, so memory follows the batch size, not the chunk size.
    """
    staging = staging_dir(settings, located)
    source = inside_root(staging, "valid", Path(chunk).name)
    target = staging / "scored" / source.name
    model = registry.load_model(settings.models, located["model_version"])
    staged = pq.ParquetFile(source)
    passthrough = pa.schema(
        [f for f in staged.schema_arrow if f.name not in COLUMN_NAMES]
    )
    schema = report_schema(_id_type(located), passthrough)
    batch_rows = settings.batch_rows
    if located["feature_set"] == "history":
        # History features read the day's state files on every call, so a
        # history chunk is scored in one batch, as large as the chunk.
        batch_rows = max(staged.metadata.num_rows, 1)
    rows = suspicious = 0
    levels = dict.fromkeys(RISK_LEVELS, 0)
    with atomic_parquet_writer(target, schema) as writer:
        for batch in staged.iter_batches(batch_size=batch_rows):
            frame = _with_features(batch.to_pandas(), located, settings)
            table = score_frame(frame, model, settings, schema)
            writer.write_table(table)
            rows += table.num_rows
            suspicious += int(pc.sum(table.column("is_suspicious")).as_py() or 0)
            for level, count in _level_counts(table).items():
                levels[level] += count
    log.info("scored %s: %d rows, %d suspicious", source.name, rows, suspicious)
    return {
        "chunk": str(target),
        "rows": rows,
        "suspicious": suspicious,
        "levels": levels,
    }


def _with_features(
    frame: pd.DataFrame, located: dict, settings: Settings
) -> pd.DataFrame:
    """Add history features to a chunk, counting the whole day's earlier rows."""
    if located["feature_set"] != "history":
        return frame
    from metaguard.history import HistoryStore, add_history_features

    valid = staging_dir(settings, located) / "valid"
    columns = ["customer_id", "terminal_id", "event_time", "amount"]
    day_rows = pa.concat_tables(
        pq.read_table(path, columns=columns) for path in sorted(valid.glob("chunk-*"))
    ).to_pandas()
    store = HistoryStore(history_state_dir(settings), settings.warehouse)
    day = dt.date.fromisoformat(located["day"])
    return add_history_features(frame, day, store, day_rows=day_rows)


def history_state_dir(settings: Settings) -> Path:
    """Return the folder of per-day history aggregates under the output root."""
    return settings.output / "state" / "history"


def publish(
    settings: Settings, located: dict, validated: dict, scored: list[dict]
) -> dict:
    """Merge scored chunks into the day's report, atomically, and write the summary."""
    day = dt.date.fromisoformat(located["day"])
    staging = staging_dir(settings, located)
    report_path = output_path(settings, "risk_reports", day, REPORT_FILE)
    ordered = sorted(scored, key=lambda s: Path(s["chunk"]).name)
    chunk_files = [
        inside_root(staging, "scored", Path(s["chunk"]).name) for s in ordered
    ]
    _write_report(
        report_path, chunk_files, _report_schema_for(located, ordered), settings
    )
    levels = dict.fromkeys(RISK_LEVELS, 0)
    for item in ordered:
        for level, count in item["levels"].items():
            levels[level] += count
    scored_rows = sum(s["rows"] for s in ordered)
    summary = {
        "date": located["day"],
        "status": "succeeded",
        "rows_in": validated["rows_in"],
        "scored": scored_rows,
        "quarantined": validated["quarantined"],
        "suspicious": sum(s["suspicious"] for s in ordered),
        "risk_levels": levels,
        "model_version": located["model_version"],
        "feature_set": located["feature_set"],
        "threshold": settings.risk_threshold,
        "bad_row_share": validated["bad_row_share"],
        "duration_seconds": round(time.time() - located["started_at"], 3),
        "input_files": [str(Path(located["partition"]) / f) for f in located["files"]],
        "report_path": str(report_path),
        "quarantine_path": validated["quarantine_path"],
        "validation_path": validated["validation_path"],
        "run_key": located["run_key"],
    }
    if summary["rows_in"] != summary["scored"] + summary["quarantined"]:
        raise AssertionError(
            f"rows_in {summary['rows_in']} != scored {scored_rows} + quarantined "
            f"{summary['quarantined']} for {located['day']}; the report was written "
            "but the counts disagree, which is a bug"
        )
    summary_path = output_path(settings, "runs", day, "summary.json")
    write_json(summary_path, summary)
    shutil.rmtree(staging, ignore_errors=True)
    remove_stale_staging(staging.parent)
    remove_stale_temporaries(
        [report_path.parent, Path(validated["quarantine_path"]).parent]
    )
    log.info(
        "report %s: %d scored, %d quarantined, %d suspicious, model %s",
        report_path,
        scored_rows,
        summary["quarantined"],
        summary["suspicious"],
        located["model_version"],
    )
    summary["summary_path"] = str(summary_path)
    return summary


def _write_report(
    report_path: Path, chunk_files: list[Path], schema: pa.Schema, settings: Settings
) -> None:
    """Put the scored chunks in place as the day's report, atomically.

    A single chunk already is the report, so it is renamed into place rather
    than rewritten; several chunks are merged batch by batch into one file.
    """
    if len(chunk_files) == 1 and move_into_place(chunk_files[0], report_path):
        return
    with atomic_parquet_writer(report_path, schema) as writer:
        for path in chunk_files:
            scored_file = pq.ParquetFile(path)
            for batch in scored_file.iter_batches(batch_size=settings.batch_rows):
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))


def remove_stale_staging(
    day_folder: Path, older_than: float = STALE_STAGING_SECONDS
) -> None:
    """Delete staging folders of runs that died long ago, then the empty day folder.

    A killed or failed run leaves its ``_staging/dt=D/<run_key>`` behind. One
    younger than ``older_than`` seconds may belong to a run still working, so
    it is kept.
    """
    if not day_folder.is_dir():
        return
    cutoff = time.time() - older_than
    for folder in day_folder.iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            log.info("removing staging folder %s of an earlier run", folder)
            shutil.rmtree(folder, ignore_errors=True)
    try:
        day_folder.rmdir()
    except OSError:
        pass  # Another run's staging folder is still there.


def _report_schema_for(located: dict, scored: list[dict]) -> pa.Schema:
    if scored:
        return pq.read_schema(scored[0]["chunk"])
    partition = _partition(located)
    return report_schema(_id_type(located), _passthrough_schema(partition))


def _level_counts(table: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(table.column("risk_level"))
    return {item["values"].as_py(): item["counts"].as_py() for item in counts}


def run(settings: Settings, day: dt.date) -> dict:
    """Run every step in this process, as one Airflow DAG run would."""
    located = locate(settings, day)
    validated = validate(settings, located)
    scored = [score_chunk(settings, located, chunk) for chunk in validated["chunks"]]
    return publish(settings, located, validated, scored)
