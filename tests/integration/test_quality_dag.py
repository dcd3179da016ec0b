"""The data-quality DAG run by Airflow's dag.test() over a range with a missing day."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from metaguard import registry
from metaguard.evaluation import reference_histograms
from metaguard.features import CONTRACT_FEATURES
from tests.builders import good_rows, write_partition
from tests.conftest import load_dag

pytestmark = [pytest.mark.airflow]

FIRST = dt.date(2024, 3, 1)
SHIFTED = dt.date(2024, 3, 2)
MISSING = dt.date(2024, 3, 3)


@pytest.fixture
def quality_env(roots, tmp_path, monkeypatch, airflow_db):
    """A warehouse with a normal day, a day of shifted amounts and a missing day."""
    warehouse = tmp_path / "warehouse"
    reference = good_rows(3000, seed=1)
    write_partition(warehouse, FIRST, good_rows(3000, seed=2))
    shifted = good_rows(3000, start_id=5000, seed=3)
    shifted["amount"] = shifted["amount"] + 3000.0
    write_partition(warehouse, SHIFTED, shifted)
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(warehouse))
    # The quality checks read only the champion's metadata, never its model.
    features = list(CONTRACT_FEATURES)
    metadata = {
        "features": features,
        "reference_histograms": reference_histograms(reference, features),
    }
    version = registry.register(roots["models"], {}, metadata)
    registry.set_champion(roots["models"], version, "test reference")
    return roots["output"]


def _run(conf: dict):
    dag = load_dag("metaguard_data_quality")
    run = dag.test(logical_date=dt.datetime(2024, 3, 10, tzinfo=dt.UTC), run_conf=conf)
    return run


def _asset_extras() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "metaguard_quality_reports")
        ).all()
        return [dict(event.extra) for event in events]


def test_range_with_missing_day(quality_env):
    run = _run({"start": FIRST.isoformat(), "end": MISSING.isoformat()})
    assert str(run.state) == "success"
    for day in (FIRST, SHIFTED, MISSING):
        path = quality_env / f"quality/dt={day}/part-00000.parquet"
        assert path.is_file(), path
    missing = pq.read_table(
        quality_env / f"quality/dt={MISSING}/part-00000.parquet"
    ).to_pandas()
    assert missing["status"].tolist() == ["missing"]
    assert missing["run_id"].tolist() == [run.run_id]
    assert f"dt={MISSING}" in missing["detail"][0]

    index = (quality_env / "data_docs/index.html").read_text()
    assert f"dt={FIRST}-batch-00000" in index
    assert f"dt={SHIFTED}-batch-00000" in index
    assert (quality_env / "quality/trend.png").stat().st_size > 10_000

    extras = {extra["date"]: extra for extra in _asset_extras()}
    assert set(extras) >= {FIRST.isoformat(), SHIFTED.isoformat(), MISSING.isoformat()}
    assert extras[FIRST.isoformat()]["psi_flagged"] == []
    assert extras[FIRST.isoformat()]["psi"]["amount"] < 0.1
    assert extras[SHIFTED.isoformat()]["psi_flagged"] == ["amount"]
    assert extras[SHIFTED.isoformat()]["psi"]["amount"] > 0.25
    assert extras[MISSING.isoformat()]["status"] == "missing"


def test_default_range_is_logical_date(quality_env):
    run = _run({})
    assert str(run.state) == "success"
    table = pq.read_table(quality_env / "quality/dt=2024-03-10/part-00000.parquet")
    assert table.column("status").to_pylist() == ["missing"]


def test_reversed_range_fails(quality_env):
    run = _run({"start": SHIFTED.isoformat(), "end": FIRST.isoformat()})
    assert str(run.state) == "failed"
    assert not (quality_env / "quality").exists()
