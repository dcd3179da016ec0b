import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metaguard.validation import (
    BatchValidator,
    apply_duplicates,
    duplicated_ids,
    flags_from_result,
    quarantine_frame,
)
from tests.builders import good_rows, write_partition


def _flags(frame):
    result = BatchValidator().validate(frame)
    return flags_from_result(result, len(frame))


def _float_frame(frame):
    out = frame.copy()
    for name in ("amount", "hour", "user_age_days", "transaction_count"):
        out[name] = out[name].astype("float64")
    out["transaction_id"] = out["transaction_id"].astype("Int64")
    return out


def test_clean_batch_has_no_flags():
    flags = _flags(_float_frame(good_rows(50)))
    assert flags.by_row == {}


def test_each_bad_value_gets_its_rule():
    frame = _float_frame(good_rows(9))
    frame.loc[0, "amount"] = np.nan
    frame.loc[1, "amount"] = -5.0
    frame.loc[2, "amount"] = 0.0
    frame.loc[3, "amount"] = np.inf
    frame.loc[4, "hour"] = 24
    frame.loc[5, "user_age_days"] = 0
    frame.loc[6, "transaction_count"] = -1
    frame.loc[7, "transaction_id"] = pd.NA
    flags = _flags(frame)
    assert flags.by_row[0] == ["amount_not_null"]
    assert flags.by_row[1] == ["amount_in_range"]
    assert flags.by_row[2] == ["amount_in_range"]
    assert flags.by_row[3] == ["amount_in_range"]
    assert flags.by_row[4] == ["hour_in_range"]
    assert flags.by_row[5] == ["user_age_days_in_range"]
    assert flags.by_row[6] == ["transaction_count_in_range"]
    assert flags.by_row[7] == ["transaction_id_not_null"]
    assert 8 not in flags.by_row


def test_row_breaking_two_rules_lists_both():
    frame = _float_frame(good_rows(3))
    frame.loc[1, "amount"] = -1.0
    frame.loc[1, "hour"] = -1
    bad = quarantine_frame(frame, _flags(frame))
    assert bad["failed_rules"].tolist() == [["amount_in_range", "hour_in_range"]]
    assert bad["failed_columns"].tolist() == [["amount", "hour"]]


def test_duplicates_across_files_are_found(tmp_path):
    first = write_partition(tmp_path, pd.Timestamp("2024-01-01").date(), good_rows(5))
    second = write_partition(
        tmp_path,
        pd.Timestamp("2024-01-01").date(),
        good_rows(5, start_id=5),
        "b.parquet",
    )
    duplicates = duplicated_ids([first, second], id_is_string=False)
    assert duplicates.to_pylist() == [5]
    frame = _float_frame(good_rows(5, start_id=5))
    flags = _flags(frame)
    apply_duplicates(frame, flags, duplicates)
    assert flags.by_row == {0: ["transaction_id_unique"]}


def test_duplicates_of_string_ids(tmp_path):
    frame = pd.DataFrame({"transaction_id": ["a", "b", "a", None]})
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path)
    assert duplicated_ids([path], id_is_string=True).to_pylist() == ["a"]
