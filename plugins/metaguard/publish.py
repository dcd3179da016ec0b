"""Atomic writers for Parquet and JSON outputs.

Every output is written to a hidden temporary file with a unique name in the
destination folder, flushed and fsynced, then moved into place with
``os.replace``. Readers therefore see the old complete file or the new one,
never a partial file, and two runs writing the same path at once cannot
interleave their bytes: the last rename wins. Query engines skip the hidden
temporary names (leading ``.``), and :func:`remove_stale_temporaries` deletes
ones left behind by a killed process.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
STALE_AFTER_SECONDS = 3600


def temporary_path(final: Path) -> Path:
    """Return a unique hidden sibling path for writing ``final``."""
    return final.with_name(f"{TEMP_PREFIX}{final.name}.{uuid.uuid4().hex}")


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _commit(temporary: Path, final: Path) -> None:
    _fsync(temporary)
    os.replace(temporary, final)
    try:
        directory = os.open(final.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def atomic_parquet_writer(final: Path, schema: pa.Schema):
    """Yield a ``pyarrow.parquet.ParquetWriter`` whose file appears only on success.

    Write batches to the yielded writer; when the block exits normally the
    file is renamed to ``final``. On an exception the temporary file is
    removed and ``final`` is left as it was.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(final)
    writer = pq.ParquetWriter(temporary, schema, compression="zstd")
    try:
        yield writer
        writer.close()
        _commit(temporary, final)
    finally:
        if not writer.is_open and temporary.exists():
            temporary.unlink()
        elif writer.is_open:
            writer.close()
            temporary.unlink(missing_ok=True)


def write_parquet(final: Path, table: pa.Table) -> Path:
    """Write ``table`` to ``final`` atomically and return the path."""
    with atomic_parquet_writer(final, table.schema) as writer:
        writer.write_table(table)
    return final


def move_into_place(source: Path, final: Path) -> bool:
    """Rename a finished file to ``final`` atomically; return False if impossible.

    The rename fails across file systems (for example a staging folder on
    another mount), and the caller then copies instead.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        _commit(source, final)
    except OSError as error:
        log.info("cannot rename %s to %s (%s); copying instead", source, final, error)
        return False
    return True


def write_json(final: Path, payload: object) -> Path:
    """Write ``payload`` as indented JSON to ``final`` atomically."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(final)
    try:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        _commit(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line to ``path`` with a single ``write`` call.

    Appends under ``O_APPEND`` of one short line are not interleaved with
    other writers on a local filesystem.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_temporaries(
    folders: Iterable[Path], older_than: float = STALE_AFTER_SECONDS
) -> int:
    """Delete temporary files older than ``older_than`` seconds; return the count.

    Younger ones may belong to a run still writing, so they are kept.
    """
    removed = 0
    cutoff = time.time() - older_than
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{TEMP_PREFIX}*"):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d stale temporary file(s)", removed)
    return removed
