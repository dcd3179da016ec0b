"""Per-day state behind the history features: aggregates and event rows.

The state folder keeps, per warehouse day ``dt=YYYY-MM-DD``::

    customers/dt=D/part.parquet        customer_id, tx_count, amount_sum
    terminals/dt=D/part.parquet        terminal_id, tx_count, fraud_count
    customer_events/dt=D/part.parquet  customer_id, event_time, amount
    terminal_events/dt=D/part.parquet  terminal_id, event_time, is_fraud

:class:`HistoryStore` builds a day's four files from the warehouse when they
are missing, and rebuilds them when the day's transaction or label files
change, so fraud counts fill in once labels arrive. Every file is written to
a hidden temporary file and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaguard.exceptions import SchemaMismatch, UnreadableFile
from metaguard.warehouse import data_files, partition_path, read_schema, read_table

log = logging.getLogger("metaguard.history")

# Window lengths of the features. The longest plus the label delay is the
# number of days of state that the features of a day read.
WINDOW_DAYS: tuple[int, ...] = (1, 7, 30)
REQUIRED_COLUMNS: tuple[str, ...] = ("customer_id", "terminal_id", "event_time")
DAY_MICROSECONDS = 86_400_000_000
_STATE_FILE = "part.parquet"
_TRANSACTIONS_KEY = b"metaguard.transactions_fingerprint"
_LABELS_KEY = b"metaguard.labels_fingerprint"


@dataclass(frozen=True)
class HistoryEntity:
    """A history key (customer or terminal), its summed column and state folders."""

    key: str
    value: str
    total: str
    aggregates_dir: str
    events_dir: str


CUSTOMERS = HistoryEntity(
    "customer_id", "amount", "amount_sum", "customers", "customer_events"
)
TERMINALS = HistoryEntity(
    "terminal_id", "is_fraud", "fraud_count", "terminals", "terminal_events"
)
_ENTITIES = (CUSTOMERS, TERMINALS)


@dataclass(frozen=True)
class DayState:
    """Outcome of :meth:`HistoryStore.ensure_day_state` for one day."""

    status: str
    """``"built"``, ``"reused"`` or ``"missing"`` (no state and no partition)."""
    labelled: bool
    """Whether the terminal fraud counts include the day's labels."""


class HistoryStore:
    """Per-day history aggregates and event rows, kept under ``state_dir``.

    The store reads ``<warehouse>/transactions/dt=D/`` and, when present,
    ``<warehouse>/labels/dt=D/``. It never writes to the warehouse.
    """

    def __init__(self, state_dir: Path, warehouse: Path, label_delay_days: int = 7):
        if isinstance(label_delay_days, bool) or not isinstance(label_delay_days, int):
            raise TypeError(
                f"label_delay_days={label_delay_days!r} is not an integer; "
                "expected a whole number of days such as 7"
            )
        if label_delay_days < 1:
            raise ValueError(
                f"label_delay_days={label_delay_days} is invalid; expected at "
                "least 1, because a delay of 0 would use the transaction's own label"
            )
        self.state_dir = Path(state_dir)
        self.warehouse = Path(warehouse)
        self.label_delay_days = label_delay_days

    @property
    def history_offsets(self) -> range:
        """Return the offsets, in days before ``D``, of the state that ``D`` reads."""
        return range(1, max(WINDOW_DAYS) + self.label_delay_days + 1)

    def state_path(self, folder: str, day: dt.date) -> Path:
        """Return the state file of one folder (e.g. ``customers``) and day."""
        return self.state_dir / folder / f"dt={day.isoformat()}" / _STATE_FILE

    def ensure_day(self, day: dt.date) -> None:
        """Build the day's state from the warehouse when missing or out of date.

        State is out of date when the day's transaction files changed, or when
        its label files appeared or changed since the state was built. State of
        a day whose partition has left the warehouse is kept as it is.
        """
        self.ensure_day_state(day)

    def ensure_day_state(self, day: dt.date) -> DayState:
        """Build or reuse the day's state as :meth:`ensure_day` does, and say which."""
        transactions = _fingerprint(partition_path(self.warehouse, "transactions", day))
        labels = _fingerprint(partition_path(self.warehouse, "labels", day))
        stored = self._stored_fingerprints(day)
        if stored is not None and _is_current(stored, transactions, labels):
            log.debug("history state for %s reused", day)
            return DayState("reused", bool(stored[1]))
        if not transactions:
            return DayState("missing", False)
        self._build(day, transactions, labels)
        return DayState("built", bool(labels))

    def read_aggregates(
        self, entity: HistoryEntity, day: dt.date
    ) -> pd.DataFrame | None:
        """Read one day's per-key aggregates, or None when the day has no state."""
        path = self.state_path(entity.aggregates_dir, day)
        return pq.read_table(path).to_pandas() if path.exists() else None

    def read_events(self, entity: HistoryEntity, day: dt.date) -> pd.DataFrame | None:
        """Read one day's event rows with ``event_time`` as UTC epoch microseconds."""
        path = self.state_path(entity.events_dir, day)
        if not path.exists():
            return None
        table = pq.read_table(path)
        index = table.schema.get_field_index("event_time")
        micros = table.column(index).cast(pa.int64())
        return table.set_column(index, "event_time", micros).to_pandas()

    def _stored_fingerprints(self, day: dt.date) -> tuple[str, str] | None:
        """Return the fingerprints the day's state was built from, if complete."""
        for entity in _ENTITIES:
            for folder in (entity.events_dir, entity.aggregates_dir):
                if not self.state_path(folder, day).exists():
                    return None
        # The terminal aggregates are written last, so they date the whole day.
        marker = self.state_path(TERMINALS.aggregates_dir, day)
        try:
            metadata = read_schema(marker).metadata or {}
        except UnreadableFile as error:
            log.warning("history state for %s is rebuilt: %s", day, error)
            return None
        return (
            metadata.get(_TRANSACTIONS_KEY, b"").decode(),
            metadata.get(_LABELS_KEY, b"").decode(),
        )

    def _build(self, day: dt.date, transactions: str, labels: str) -> None:
        """Read the day's partition and write its four state files atomically."""
        started = time.perf_counter()
        rows = _read_history_rows(self.warehouse, day, with_labels=bool(labels))
        metadata = {
            _TRANSACTIONS_KEY: transactions.encode(),
            _LABELS_KEY: labels.encode(),
        }
        for entity in _ENTITIES:
            events = rows[[entity.key, "event_time", entity.value]]
            path = self.state_path(entity.events_dir, day)
            _write_atomic(_events_table(events), path)
        for entity in _ENTITIES:
            table = _aggregates_table(rows, entity).replace_schema_metadata(metadata)
            _write_atomic(table, self.state_path(entity.aggregates_dir, day))
        log.info(
            "history state for %s built from %d rows (labels %s) in %.2f s",
            day,
            len(rows),
            "included" if labels else "not yet available",
            time.perf_counter() - started,
        )


def _is_current(stored: tuple[str, str], transactions: str, labels: str) -> bool:
    if not transactions:
        return True
    return stored[0] == transactions and (not labels or stored[1] == labels)


def _fingerprint(folder: Path) -> str:
    """Return a digest of the data files' names, sizes and mtimes, or ``""``."""
    if not folder.is_dir():
        return ""
    entries = []
    for path in data_files(folder):
        status = path.stat()
        entries.append((path.name, status.st_size, status.st_mtime_ns))
    if not entries:
        return ""
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:16]


def _read_columns(
    warehouse: Path, table: str, day: dt.date, columns: list[str]
) -> pa.Table | None:
    """Read some columns of a day, raising :class:`SchemaMismatch` if one is absent."""
    folder = partition_path(warehouse, table, day)
    if not folder.is_dir():
        return None
    for path in data_files(folder):
        missing = [c for c in columns if c not in read_schema(path).names]
        if missing:
            raise SchemaMismatch(
                f"{path}: column(s) {missing} needed for history features are "
                f"missing; add them to the {table} partition or train and score "
                "without history features"
            )
    return read_table(warehouse, table, day, columns)


def _read_history_rows(
    warehouse: Path, day: dt.date, with_labels: bool
) -> pd.DataFrame:
    """Read a day's transactions as history rows, joined with labels if asked."""
    columns = [*REQUIRED_COLUMNS, "amount"]
    if with_labels:
        columns.append("transaction_id")
    table = _read_columns(warehouse, "transactions", day, columns)
    if table is None:
        raise FileNotFoundError(
            f"transactions partition for {day} not found; it was removed while "
            "its history state was being built, so run again"
        )
    rows = pd.DataFrame(
        {
            "customer_id": normalized_keys(table.column("customer_id").to_pandas()),
            "terminal_id": normalized_keys(table.column("terminal_id").to_pandas()),
            "event_time": _arrow_micros(table.column("event_time")),
            "amount": table.column("amount").to_pandas().astype("float64").to_numpy(),
        }
    )
    rows["is_fraud"] = np.zeros(len(rows), dtype=np.int8)
    if with_labels:
        rows["is_fraud"] = _fraud_flags(warehouse, day, table.column("transaction_id"))
    return _history_rows_only(rows, day)


def _fraud_flags(warehouse: Path, day: dt.date, ids: pa.ChunkedArray) -> np.ndarray:
    """Return 1 for labelled fraud per transaction id, 0 otherwise."""
    labels = _read_columns(warehouse, "labels", day, ["transaction_id", "is_fraud"])
    if labels is None:
        return np.zeros(len(ids), dtype=np.int8)
    frame = labels.to_pandas().drop_duplicates("transaction_id", keep="last")
    frame["transaction_id"] = normalized_keys(frame["transaction_id"])
    flags = frame.set_index("transaction_id")["is_fraud"]
    matched = flags.reindex(normalized_keys(ids.to_pandas()))
    unlabelled = int(matched.isna().sum())
    if unlabelled:
        log.warning(
            "%d transactions of %s have no label; history counts them as genuine",
            unlabelled,
            day,
        )
    return (matched.fillna(0).to_numpy() == 1).astype(np.int8)


def _history_rows_only(rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Drop rows without keys, time or a finite non-negative amount, and warn."""
    usable = (
        rows["customer_id"].notna()
        & rows["terminal_id"].notna()
        & rows["event_time"].notna()
        & np.isfinite(rows["amount"])
        & (rows["amount"] >= 0)
    )
    dropped = int((~usable).sum())
    if dropped:
        log.warning(
            "history of %s leaves out %d rows with missing or bad values",
            day,
            dropped,
        )
    rows = rows.loc[usable].reset_index(drop=True)
    for column in ("customer_id", "terminal_id"):
        rows[column] = dense_keys(rows[column])
    rows["event_time"] = rows["event_time"].astype("int64")
    outside = count_outside_day(rows["event_time"].to_numpy(), day)
    if outside:
        log.warning(
            "%d history rows of partition %s have an event_time on another UTC day; "
            "whole-day sums count them on the partition day",
            outside,
            day,
        )
    return rows


def _events_table(events: pd.DataFrame) -> pa.Table:
    ordered = events.sort_values("event_time", kind="stable")
    table = pa.Table.from_pandas(ordered, preserve_index=False)
    index = table.schema.get_field_index("event_time")
    times = table.column(index).cast(pa.timestamp("us", tz="UTC"))
    return table.set_column(index, "event_time", times)


def _aggregates_table(rows: pd.DataFrame, entity: HistoryEntity) -> pa.Table:
    grouped = rows.groupby(entity.key, sort=True)[entity.value]
    frame = pd.DataFrame(
        {"tx_count": grouped.size().astype("int64"), entity.total: grouped.sum()}
    ).reset_index()
    if entity is TERMINALS:
        frame[entity.total] = frame[entity.total].astype("int64")
    return pa.Table.from_pandas(frame, preserve_index=False)


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file to a hidden temporary sibling, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    os.close(handle)
    try:
        options: dict = {"compression": "zstd"}
        if "event_time" in table.column_names:
            # Sorted timestamps delta-encode to about a third of the default size.
            options["use_dictionary"] = [table.column_names[0]]
            options["column_encoding"] = {"event_time": "DELTA_BINARY_PACKED"}
        pq.write_table(table, temporary, **options)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def normalized_keys(values: pd.Series) -> pd.Series:
    """Return ids as nullable Int64 when all are whole numbers, else as strings."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64")
    if pd.api.types.is_float_dtype(values.dtype):
        present = values.dropna()
        if (present == np.floor(present)).all():
            return values.astype("Int64")
    return values.astype("string")


def dense_keys(values: pd.Series) -> pd.Series:
    """Return null-free normalized ids with a plain int64 dtype where possible."""
    return values.astype("int64") if values.dtype == "Int64" else values


def _arrow_micros(array: pa.ChunkedArray) -> pd.Series:
    """Return a timestamp column as UTC epoch microseconds; naive means UTC."""
    if not pa.types.is_timestamp(array.type):
        raise SchemaMismatch(
            f"column 'event_time' has type {array.type}; expected a timestamp"
        )
    micros = pc.cast(array, pa.timestamp("us", tz=array.type.tz)).cast(pa.int64())
    return micros.to_pandas().astype("Int64")


def count_outside_day(micros: np.ndarray, day: dt.date) -> int:
    """Count epoch-microsecond times that fall outside ``day`` in UTC."""
    start = (day - dt.date(1970, 1, 1)).days * DAY_MICROSECONDS
    return int(((micros < start) | (micros >= start + DAY_MICROSECONDS)).sum())
