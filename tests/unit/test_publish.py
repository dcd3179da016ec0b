import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metaguard.publish import atomic_parquet_writer, write_json, write_parquet


def test_failed_write_keeps_old_file(tmp_path):
    final = tmp_path / "report.parquet"
    write_parquet(final, pa.table({"a": [1, 2, 3]}))
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
        with atomic_parquet_writer(final, schema) as writer:
            writer.write_table(pa.table({"a": [9]}))
            raise RuntimeError("boom")
    assert pq.read_table(final).column("a").to_pylist() == [1, 2, 3]


def test_failed_write_leaves_no_temporary(tmp_path):
    final = tmp_path / "report.parquet"
    with pytest.raises(RuntimeError):
        with atomic_parquet_writer(final, pa.schema([("a", pa.int64())])):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_content(tmp_path):
    final = tmp_path / "report.parquet"
    write_parquet(final, pa.table({"a": [1]}))
    write_parquet(final, pa.table({"a": [2, 3]}))
    assert pq.read_table(final).column("a").to_pylist() == [2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["report.parquet"]


def test_write_json_round_trip(tmp_path):
    path = write_json(tmp_path / "x" / "summary.json", {"rows": 3})
    assert path.read_text().strip().startswith("{")
    assert '"rows": 3' in path.read_text()


def test_stale_staging_is_removed(tmp_path):
    import os
    import time

    from metaguard.nightly import remove_stale_staging

    day = tmp_path / "_staging" / "dt=2024-01-01"
    old, young = day / "old-run", day / "young-run"
    old.mkdir(parents=True)
    young.mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    remove_stale_staging(day)
    assert not old.exists()
    assert young.is_dir()
    young.rmdir()
    remove_stale_staging(day)
    assert not day.exists()
