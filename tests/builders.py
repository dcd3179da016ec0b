"""Builders of small warehouses and models for tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def good_rows(count: int, start_id: int = 1, seed: int = 0) -> pd.DataFrame:
    """Return ``count`` rows that satisfy the contract, seeded."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "transaction_id": np.arange(start_id, start_id + count, dtype=np.int64),
            "amount": np.round(rng.uniform(1.0, 2000.0, count), 2),
            "hour": rng.integers(0, 24, count, dtype=np.int64),
            "user_age_days": rng.integers(1, 400, count, dtype=np.int64),
            "transaction_count": rng.integers(0, 60, count, dtype=np.int64),
        }
    )


def write_partition(
    warehouse: Path,
    day: dt.date,
    frame: pd.DataFrame | pa.Table,
    name: str = "part-00000.parquet",
    table: str = "transactions",
) -> Path:
    """Write one Parquet file into ``<warehouse>/<table>/dt=<day>/``."""
    folder = warehouse / table / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    arrow = (
        frame
        if isinstance(frame, pa.Table)
        else pa.Table.from_pandas(frame, preserve_index=False)
    )
    path = folder / name
    pq.write_table(arrow, path)
    return path


def labels_for(frame: pd.DataFrame, fraud_rule) -> pd.DataFrame:
    """Return a labels frame whose ``is_fraud`` is ``fraud_rule(frame)``."""
    return pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "is_fraud": fraud_rule(frame).astype(np.int8),
        }
    )


def labelled_warehouse(root: Path, start: dt.date, days: int, rows: int = 600) -> Path:
    """Write a warehouse where large night-time amounts are fraud, seeded per day."""
    next_id = 1
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        frame = good_rows(rows, start_id=next_id, seed=offset)
        next_id += rows
        write_partition(root, day, frame)
        fraud = lambda f: (f["amount"] > 1500) & (f["hour"] < 6)  # noqa: E731
        write_partition(root, day, labels_for(frame, fraud), table="labels")
    return root
