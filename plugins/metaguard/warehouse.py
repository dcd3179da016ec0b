"""Partition discovery, schema checks and batched reading of the warehouse.

A partition is ``<warehouse>/<table>/dt=YYYY-MM-DD/`` holding one or more
Parquet files. Marker files (``_SUCCESS``), checksums (``*.crc``) and hidden
files are not data and are skipped. Files are read in name order and rows in
file order, so every run reads the rows in the same order.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaguard.config import inside_root
from metaguard.contract import COLUMNS, COLUMNS_BY_NAME, OPTIONAL_COLUMNS
from metaguard.exceptions import PartitionNotFound, SchemaMismatch, UnreadableFile

log = logging.getLogger(__name__)

SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"


@dataclass(frozen=True)
class Partition:
    """One day's folder of a warehouse table and its data files."""

    day: dt.date
    path: Path
    files: tuple[Path, ...]
    id_is_string: bool
    passthrough: tuple[str, ...]

    @property
    def file_names(self) -> list[str]:
        """Return the data file names, relative to the partition folder."""
        return [f.name for f in self.files]


def partition_path(warehouse: Path, table: str, day: dt.date) -> Path:
    """Return ``<warehouse>/<table>/dt=YYYY-MM-DD``, checked to stay inside it."""
    return inside_root(warehouse, table, f"dt={day.isoformat()}")


def is_data_file(path: Path) -> bool:
    """Tell whether a file in a partition folder contains data, not a marker."""
    name = path.name
    return (
        path.is_file() and not name.startswith(("_", ".")) and not name.endswith(".crc")
    )


def data_files(folder: Path) -> list[Path]:
    """List a partition folder's data files in name order.

    Entries that are skipped although they may hold data (hidden or
    ``_``-prefixed ``.parquet`` names, folders, dangling symlinks) are logged
    at warning level, so no rows disappear without a trace.
    """
    files = []
    for path in sorted(folder.iterdir()):
        if is_data_file(path):
            files.append(path)
        elif _may_hold_data(path):
            log.warning("ignoring %s in %s: not a data file name", path.name, folder)
    return files


def _may_hold_data(path: Path) -> bool:
    if path.name in ("_SUCCESS",) or path.name.endswith(".crc"):
        return False
    return path.is_dir() or not path.exists() or path.suffix == ".parquet"


def locate_partition(
    warehouse: Path,
    day: dt.date,
    passthrough: tuple[str, ...] = (),
    table: str = "transactions",
) -> Partition:
    """Find a day's partition and check every file's schema against the contract.

    Raises :class:`PartitionNotFound` naming the path when the folder is
    missing or contains no data files, :class:`UnreadableFile` for a file that is
    not Parquet, :class:`SchemaMismatch` for a missing column or a type
    that cannot be read as the contract's, and :class:`PathOutsideRoot` for a
    folder or file whose symlink leads outside the warehouse.
    """
    if not warehouse.is_dir():
        raise PartitionNotFound(f"warehouse folder {warehouse} does not exist")
    folder = partition_path(warehouse, table, day)
    if not folder.is_dir():
        raise PartitionNotFound(
            f"partition folder {folder} not found; expected Parquet files for "
            f"{day.isoformat()} there"
        )
    files = data_files(folder)
    if not files:
        raise PartitionNotFound(
            f"partition folder {folder} contains no data files "
            "(markers, .crc and hidden files are ignored)"
        )
    for path in files:
        # A data file may be a symlink, but only to a file inside the warehouse.
        inside_root(warehouse, table, folder.name, path.name)
    schemas = {f: read_schema(f) for f in files}
    for path, schema in schemas.items():
        check_schema(path, schema)
    id_is_string = any(
        _is_string(schema.field("transaction_id").type) for schema in schemas.values()
    )
    present = [c for c in passthrough if all(c in s.names for s in schemas.values())]
    missing = sorted(set(passthrough) - set(present))
    if missing:
        log.warning(
            "pass-through column(s) %s are absent from some files of %s; "
            "the report leaves them out",
            missing,
            folder,
        )
    return Partition(day, folder, tuple(files), id_is_string, tuple(present))


def read_schema(path: Path) -> pa.Schema:
    """Read a Parquet file's schema, raising :class:`UnreadableFile` if it fails."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise UnreadableFile(
            f"{path} is not a readable Parquet file ({error}); replace or remove it"
        ) from error


def _is_string(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type)


def _is_numeric(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    )


def check_schema(path: Path, schema: pa.Schema) -> None:
    """Check that a file has every required column in a readable type.

    Extra columns and another column order are fine. Integer columns may be
    stored as floats; whole values are checked while reading.
    """
    repeated = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if repeated:
        raise SchemaMismatch(
            f"{path}: column name(s) {repeated} occur more than once; "
            "expected each column once"
        )
    for column in COLUMNS:
        if column.name not in schema.names:
            raise SchemaMismatch(
                f"{path}: required column '{column.name}' is missing; "
                f"found columns {schema.names}"
            )
        found = schema.field(column.name).type
        if column.kind == "id":
            ok = pa.types.is_integer(found) or _is_string(found)
            expected = "int64 or string"
        else:
            ok = _is_numeric(found)
            expected = f"{'a float' if column.kind == 'float' else 'an integer'} " + (
                column.bounds_text
            )
        if not ok:
            raise SchemaMismatch(
                f"{path}: column '{column.name}' has type {found}; expected {expected}"
            )
    _check_optional(path, schema)


def _check_optional(path: Path, schema: pa.Schema) -> None:
    """Check the types of the optional columns that a file carries.

    History features join ``customer_id`` and ``terminal_id`` with integer
    state and read ``event_time`` as a timestamp, so other types are rejected
    here rather than failing later with a join or parse error.
    """
    for name in OPTIONAL_COLUMNS:
        if name not in schema.names:
            continue
        found = schema.field(name).type
        if name == "event_time":
            ok, expected = pa.types.is_timestamp(found), "a timestamp"
        else:
            ok, expected = pa.types.is_integer(found), "an integer id"
        if not ok:
            raise SchemaMismatch(
                f"{path}: optional column '{name}' has type {found}; expected "
                f"{expected}, or leave the column out"
            )


def iter_batches(partition: Partition, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Yield the partition as pandas frames of at most ``batch_rows`` rows.

    Contract columns arrive as float64 (``transaction_id`` as nullable Int64 or
    string) so nulls, NaN and infinities reach validation intact. Each frame
    carries ``source_file`` and ``source_row`` to trace every row to its file.
    """
    columns = [c.name for c in COLUMNS] + list(partition.passthrough)
    for path in partition.files:
        try:
            parquet = pq.ParquetFile(path)
            offset = 0
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                yield _to_frame(batch, path, offset, partition)
                offset += batch.num_rows
        except (pa.ArrowInvalid, OSError) as error:
            raise UnreadableFile(
                f"{path} could not be read ({error}); replace or remove it"
            ) from error


def _to_frame(
    batch: pa.RecordBatch, path: Path, offset: int, partition: Partition
) -> pd.DataFrame:
    data: dict[str, object] = {}
    ids = batch.column("transaction_id")
    if partition.id_is_string:
        data["transaction_id"] = pd.Series(
            ids.cast(pa.string()).to_pylist(), dtype=object
        )
    else:
        data["transaction_id"] = _int64_ids(ids, path)
    for column in COLUMNS[1:]:
        data[column.name] = _as_float(batch.column(column.name), path, column.name)
    for name in partition.passthrough:
        data[name] = batch.column(name).to_pandas()
    frame = pd.DataFrame(data)
    frame[SOURCE_FILE] = path.name
    frame[SOURCE_ROW] = np.arange(offset, offset + batch.num_rows, dtype=np.int64)
    return frame


def _int64_ids(ids: pa.Array, path: Path) -> pd.Series:
    """Convert integer ids to pandas Int64 without a float64 detour.

    A plain ``to_pandas`` turns an int64 column with nulls into float64, which
    rounds ids above 2**53.
    """
    try:
        exact = ids.cast(pa.int64())
    except pa.ArrowInvalid as error:
        raise SchemaMismatch(
            f"{path}: column 'transaction_id' contains a value outside the int64 "
            f"range ({error}); expected int64 or string ids"
        ) from None
    return exact.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def _as_float(array: pa.Array, path: Path, name: str) -> np.ndarray:
    values = pc.cast(array, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    column = COLUMNS_BY_NAME[name]
    if column.kind == "integer":
        _check_int64_range(values, path, name)
    if column.kind == "integer" and pa.types.is_floating(array.type):
        finite = values[np.isfinite(values)]
        fractional = finite[finite != np.floor(finite)]
        if fractional.size:
            raise SchemaMismatch(
                f"{path}: column '{name}' contains the non-integer value "
                f"{float(fractional[0])!r} (type {array.type}); expected an integer "
                f"{column.bounds_text}"
            )
    return values


def _check_int64_range(values: np.ndarray, path: Path, name: str) -> None:
    finite = values[np.isfinite(values)]
    too_large = finite[np.abs(finite) >= 2.0**63]
    if too_large.size:
        raise SchemaMismatch(
            f"{path}: column '{name}' contains the value {float(too_large[0])!r}, "
            "outside the int64 range; expected an integer "
            f"{COLUMNS_BY_NAME[name].bounds_text} that fits in int64"
        )


def read_table(
    warehouse: Path, table: str, day: dt.date, columns: list[str]
) -> pa.Table | None:
    """Read some columns of one day of a table, or None when the day is absent."""
    folder = partition_path(warehouse, table, day)
    if not folder.is_dir():
        return None
    files = data_files(folder)
    if not files:
        return None
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path, columns=columns))
        except (pa.ArrowInvalid, OSError) as error:
            raise UnreadableFile(f"{path} could not be read ({error})") from error
    return pa.concat_tables(tables, promote_options="permissive")
