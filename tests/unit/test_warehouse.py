import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from metaguard.exceptions import PartitionNotFound, SchemaMismatch, UnreadableFile
from metaguard.warehouse import iter_batches, locate_partition
from tests.builders import good_rows, write_partition

DAY = dt.date(2024, 1, 1)


def test_missing_partition_names_path(tmp_path):
    (tmp_path / "transactions").mkdir()
    with pytest.raises(
        PartitionNotFound, match=r"transactions/dt=2024-01-01 not found"
    ):
        locate_partition(tmp_path, DAY)


def test_markers_and_hidden_files_are_ignored(tmp_path):
    path = write_partition(tmp_path, DAY, good_rows(3))
    for name in ("_SUCCESS", ".part-00000.parquet.crc", ".hidden.parquet"):
        (path.parent / name).write_bytes(b"not parquet")
    partition = locate_partition(tmp_path, DAY)
    assert partition.file_names == ["part-00000.parquet"]


def test_folder_with_only_markers(tmp_path):
    folder = tmp_path / "transactions" / "dt=2024-01-01"
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").touch()
    with pytest.raises(PartitionNotFound, match="contains no data files"):
        locate_partition(tmp_path, DAY)


def test_missing_column_names_file_and_column(tmp_path):
    write_partition(tmp_path, DAY, good_rows(3).drop(columns=["hour"]))
    with pytest.raises(
        SchemaMismatch, match=r"part-00000.parquet: required column 'hour'"
    ):
        locate_partition(tmp_path, DAY)


def test_amount_as_string_is_rejected(tmp_path):
    frame = good_rows(3)
    frame["amount"] = frame["amount"].astype(str)
    write_partition(tmp_path, DAY, frame)
    with pytest.raises(
        SchemaMismatch,
        match=(
            r"column 'amount' has type (large_)?string; "
            r"expected a float > 0 and <= 10000000"
        ),
    ):
        locate_partition(tmp_path, DAY)


def test_fractional_hour_is_rejected(tmp_path):
    frame = good_rows(3)
    frame["hour"] = frame["hour"].astype(float) + 0.5
    write_partition(tmp_path, DAY, frame)
    partition = locate_partition(tmp_path, DAY)
    with pytest.raises(
        SchemaMismatch, match="column 'hour' contains the non-integer value"
    ):
        list(iter_batches(partition, 100))


def test_whole_float_hour_and_narrow_ints_are_unified(tmp_path):
    first = good_rows(3)
    first["hour"] = first["hour"].astype(float)
    write_partition(tmp_path, DAY, first, "a.parquet")
    second = pa.Table.from_pandas(good_rows(2, start_id=10), preserve_index=False)
    second = second.set_column(2, "hour", second.column("hour").cast(pa.int8()))
    write_partition(tmp_path, DAY, second, "b.parquet")
    frames = list(iter_batches(locate_partition(tmp_path, DAY), 100))
    assert [len(f) for f in frames] == [3, 2]
    assert np.array_equal(frames[0]["hour"].to_numpy(), first["hour"].to_numpy())


def test_corrupt_file_is_named(tmp_path):
    path = write_partition(tmp_path, DAY, good_rows(3))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UnreadableFile, match="part-00000.parquet is not a readable"):
        locate_partition(tmp_path, DAY)


def test_batches_keep_file_and_row_order(tmp_path):
    write_partition(tmp_path, DAY, good_rows(5), "b.parquet")
    write_partition(tmp_path, DAY, good_rows(5, start_id=100), "a.parquet")
    frames = list(iter_batches(locate_partition(tmp_path, DAY), 2))
    ids = [i for f in frames for i in f["transaction_id"].tolist()]
    assert ids == [100, 101, 102, 103, 104, 1, 2, 3, 4, 5]
    assert frames[1]["source_row"].tolist() == [2, 3]
