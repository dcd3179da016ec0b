"""Labelled history for training: valid transactions joined with their labels.

Training data passes through the same GX validation as nightly scoring, so a
row that the nightly run would quarantine never trains a model. Rows whose
label has not arrived yet are left out and counted.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from metaguard.config import Settings
from metaguard.exceptions import PartitionNotFound, TrainingDataError
from metaguard.features import HISTORY_INPUTS
from metaguard.validation import BatchValidator, PartitionValidation
from metaguard.warehouse import (
    data_files,
    locate_partition,
    partition_path,
    read_schema,
    read_table,
)

log = logging.getLogger(__name__)


@dataclass
class LabelledData:
    """Labelled valid rows of a date range, with what was left out and why."""

    frame: pd.DataFrame
    days_read: int = 0
    days_missing: list[str] = field(default_factory=list)
    quarantined: int = 0
    unlabelled: int = 0

    def counts(self) -> dict:
        """Return row, fraud and exclusion counts for model metadata."""
        return {
            "rows": len(self.frame),
            "frauds": int(self.frame["is_fraud"].sum()) if len(self.frame) else 0,
            "days_read": self.days_read,
            "days_missing": self.days_missing,
            "quarantined": self.quarantined,
            "unlabelled": self.unlabelled,
        }


def partition_columns(warehouse, day: dt.date) -> list[str]:
    """Return the column names of a day's first data file, or [] when absent."""
    folder = partition_path(warehouse, "transactions", day)
    files = data_files(folder) if folder.is_dir() else []
    return read_schema(files[0]).names if files else []


def _valid_rows(settings: Settings, day: dt.date, validator: BatchValidator):
    partition = locate_partition(settings.warehouse, day, passthrough=HISTORY_INPUTS)
    frames, quarantined = [], 0
    for batch in PartitionValidation(partition, settings.batch_rows, validator):
        bad = batch.flags.mask().to_numpy()
        quarantined += int(bad.sum())
        frames.append(batch.frame.loc[~bad])
    return pd.concat(frames, ignore_index=True), quarantined


def load_labelled(
    settings: Settings, start: dt.date, end: dt.date, feature_set: str
) -> LabelledData:
    """Read valid, labelled transactions of ``start``..``end`` with their features."""
    validator = BatchValidator()
    store = _history_store(settings) if feature_set == "history" else None
    data = LabelledData(pd.DataFrame())
    frames = []
    day = start
    while day <= end:
        try:
            valid, quarantined = _valid_rows(settings, day, validator)
        except PartitionNotFound:
            data.days_missing.append(day.isoformat())
            day += dt.timedelta(days=1)
            continue
        data.days_read += 1
        data.quarantined += quarantined
        if store is not None:
            from metaguard.history import add_history_features

            valid = add_history_features(valid, day, store)
        labelled = _join_labels(settings, day, valid)
        data.unlabelled += len(valid) - len(labelled)
        frames.append(labelled.assign(day=day))
        day += dt.timedelta(days=1)
    if frames:
        data.frame = pd.concat(frames, ignore_index=True)
    else:
        data.frame = pd.DataFrame({"is_fraud": pd.Series(dtype="int64")})
    log.info("labelled data %s..%s: %s", start, end, data.counts())
    return data


def _join_labels(settings: Settings, day: dt.date, valid: pd.DataFrame) -> pd.DataFrame:
    folder = partition_path(settings.warehouse, "labels", day)
    try:
        labels = read_table(
            settings.warehouse, "labels", day, ["transaction_id", "is_fraud"]
        )
    except (pa.ArrowInvalid, KeyError) as error:
        raise TrainingDataError(
            f"labels in {folder} could not be read ({error}); expected columns "
            "transaction_id and is_fraud"
        ) from None
    if labels is None:
        return valid.iloc[0:0].assign(is_fraud=pd.Series(dtype="int64"))
    labels_frame = _checked_labels(labels.to_pandas(), folder)
    ids = valid["transaction_id"]
    if ids.dtype == object:
        labels_frame["transaction_id"] = labels_frame["transaction_id"].astype(str)
    else:
        labels_frame["transaction_id"] = labels_frame["transaction_id"].astype("Int64")
    merged = valid.merge(labels_frame, on="transaction_id", how="inner", sort=False)
    merged["is_fraud"] = merged["is_fraud"].astype("int64")
    return merged


def _checked_labels(labels: pd.DataFrame, folder) -> pd.DataFrame:
    """Check that every label is 0 or 1 and resolve ids labelled twice.

    An id labelled both 0 and 1 keeps 1, because a chargeback that arrived
    once is fraud; the count of such ids is logged.
    """
    values = labels["is_fraud"]
    bad = values.isna() | ~values.isin([0, 1])
    if bad.any():
        raise TrainingDataError(
            f"labels in {folder}: {int(bad.sum())} row(s) have is_fraud "
            f"{values[bad].head(3).tolist()}; expected 0 or 1 on every row"
        )
    labels = labels.astype({"is_fraud": "int64"})
    conflicting = labels.groupby("transaction_id")["is_fraud"].nunique() > 1
    if conflicting.any():
        log.warning(
            "labels in %s: %d transaction(s) are labelled both 0 and 1; "
            "keeping 1 (fraud)",
            folder,
            int(conflicting.sum()),
        )
    return labels.sort_values(
        "is_fraud", ascending=False, kind="stable"
    ).drop_duplicates("transaction_id")


def _history_store(settings: Settings):
    from metaguard.history import HistoryStore
    from metaguard.nightly import history_state_dir

    return HistoryStore(history_state_dir(settings), settings.warehouse)
