"""Edge cases of the warehouse reader, labels and settings."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metaguard.config import load_settings
from metaguard.exceptions import ConfigError, SchemaMismatch, TrainingDataError
from metaguard.labelled import _checked_labels
from metaguard.training import train, windows_ending
from metaguard.validation import duplicated_ids
from metaguard.warehouse import iter_batches, locate_partition
from tests.builders import good_rows, write_partition

DAY = dt.date(2024, 1, 1)


def test_duplicate_column_name_is_rejected(tmp_path):
    table = pa.Table.from_pandas(good_rows(3), preserve_index=False)
    table = table.append_column("amount", pa.array([1.0, 2.0, 3.0]))
    write_partition(tmp_path, DAY, table)
    with pytest.raises(SchemaMismatch, match=r"\['amount'\] occur more than once"):
        locate_partition(tmp_path, DAY)


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("customer_id", ["a", "b", "c"], "expected an integer id"),
        ("terminal_id", [1.5, 2.5, 3.5], "expected an integer id"),
        ("event_time", ["x", "y", "z"], "expected a timestamp"),
        ("event_time", [1, 2, 3], "expected a timestamp"),
    ],
    ids=["customer-text", "terminal-float", "time-text", "time-int"],
)
def test_optional_column_type_is_checked(tmp_path, column, values, expected):
    write_partition(tmp_path, DAY, good_rows(3).assign(**{column: values}))
    with pytest.raises(SchemaMismatch, match=f"optional column '{column}'.*{expected}"):
        locate_partition(tmp_path, DAY)


def test_large_ids_with_nulls_stay_exact(tmp_path):
    big = 2**53 + 1
    ids = pa.array([big, None, 7], pa.int64())
    table = pa.Table.from_pandas(good_rows(3), preserve_index=False)
    write_partition(tmp_path, DAY, table.set_column(0, "transaction_id", ids))
    frame = next(iter_batches(locate_partition(tmp_path, DAY), 10))
    assert frame["transaction_id"].tolist()[0] == big
    assert frame["transaction_id"].isna().tolist() == [False, True, False]


def test_count_beyond_int64_is_rejected(tmp_path):
    frame = good_rows(2).astype({"transaction_count": "float64"})
    frame.loc[0, "transaction_count"] = 2.0**70
    write_partition(tmp_path, DAY, frame)
    with pytest.raises(SchemaMismatch, match="outside the int64 range"):
        list(iter_batches(locate_partition(tmp_path, DAY), 10))


def test_uint64_id_beyond_int64_is_rejected(tmp_path):
    table = pa.Table.from_pandas(good_rows(2), preserve_index=False)
    ids = pa.array([2**64 - 1, 1], pa.uint64())
    path = write_partition(tmp_path, DAY, table.set_column(0, "transaction_id", ids))
    with pytest.raises(SchemaMismatch, match="cannot be read as int64"):
        duplicated_ids([path], id_is_string=False)


@pytest.mark.parametrize(
    "values", [[0, 2], [0, -1], [1.0, np.nan]], ids=["two", "minus-one", "null"]
)
def test_labels_outside_zero_one_are_rejected(values):
    labels = pd.DataFrame({"transaction_id": [1, 2], "is_fraud": values})
    with pytest.raises(TrainingDataError, match="expected 0 or 1 on every row"):
        _checked_labels(labels, "labels/dt=2024-01-01")


def test_conflicting_labels_keep_fraud(caplog):
    labels = pd.DataFrame({"transaction_id": [1, 1, 2], "is_fraud": [0, 1, 0]})
    checked = _checked_labels(labels, "labels/dt=2024-01-01")
    assert dict(zip(checked["transaction_id"], checked["is_fraud"], strict=True)) == {
        1: 1,
        2: 0,
    }
    assert "labelled both 0 and 1" in caplog.text


def test_negative_margin_is_rejected(tmp_path):
    settings = load_settings(
        {
            "METAGUARD_WAREHOUSE": str(tmp_path / "w"),
            "METAGUARD_OUTPUT": str(tmp_path / "o"),
            "METAGUARD_MODELS": str(tmp_path / "m"),
        }
    )
    with pytest.raises(ConfigError, match="promotion margin -0.9 is invalid"):
        train(settings, windows_ending(DAY), margin=-0.9)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"METAGUARD_BATCH_ROWS": "100000000000000000000"}, "expected 1 to 50000000"),
        ({"METAGUARD_OUTPUT": "/etc/hostname"}, "is a file; expected a folder"),
    ],
    ids=["huge-batch", "output-is-file"],
)
def test_invalid_roots_and_sizes(variables, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(variables)


def test_output_inside_warehouse_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="is inside the warehouse"):
        load_settings(
            {
                "METAGUARD_WAREHOUSE": str(tmp_path),
                "METAGUARD_OUTPUT": str(tmp_path / "out"),
            }
        )


def test_ignored_data_like_files_are_logged(tmp_path, caplog):
    path = write_partition(tmp_path, DAY, good_rows(3))
    pq.write_table(pa.Table.from_pandas(good_rows(2)), path.parent / "_part-1.parquet")
    locate_partition(tmp_path, DAY)
    assert "ignoring _part-1.parquet" in caplog.text
