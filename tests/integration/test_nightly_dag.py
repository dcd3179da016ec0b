"""The nightly DAG run by Airflow's dag.test() on real Parquet partitions."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from metaguard.contract import COLUMN_NAMES
from tests.builders import good_rows, write_partition
from tests.conftest import load_dag

pytestmark = [pytest.mark.airflow, pytest.mark.handbook]


@pytest.fixture
def handbook_env(handbook, contract_models, tmp_path, monkeypatch, airflow_db):
    models = tmp_path / "models"
    shutil.copytree(contract_models, models)
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(handbook))
    monkeypatch.setenv("METAGUARD_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("METAGUARD_MODELS", str(models))
    return tmp_path / "output"


def _run(date: str, conf: dict | None = None):
    dag = load_dag("metaguard_nightly_scoring")
    run = dag.test(
        logical_date=dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC),
        run_conf=conf,
    )
    return str(run.state)


def test_scores_every_row_of_clean_day(handbook_env):
    assert _run("2018-08-15") == "success"
    report = pq.read_table(
        handbook_env / "risk_reports/dt=2018-08-15/part-00000.parquet"
    )
    summary = json.loads((handbook_env / "runs/dt=2018-08-15/summary.json").read_text())
    assert report.num_rows == 9701
    assert summary["rows_in"] == 9701
    assert summary["scored"] == 9701
    assert summary["quarantined"] == 0
    expected = list(COLUMN_NAMES) + [
        "customer_id",
        "terminal_id",
        "event_time",
        "risk_score",
        "risk_level",
        "is_suspicious",
        "reasons",
        "model_version",
    ]
    assert report.schema.names == expected
    scores = report.column("risk_score").to_numpy()
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    assert set(report.column("risk_level").to_pylist()) <= {"Low", "Medium", "High"}
    flagged = report.column("is_suspicious").to_numpy(zero_copy_only=False)
    assert np.array_equal(flagged, scores > 0.5)
    assert summary["suspicious"] == int(flagged.sum())


def test_quarantines_zero_amounts(handbook_env):
    assert _run("2018-07-15") == "success"
    report = pq.read_table(
        handbook_env / "risk_reports/dt=2018-07-15/part-00000.parquet"
    )
    quarantine = pq.read_table(
        handbook_env / "quarantine/dt=2018-07-15/part-00000.parquet"
    ).to_pandas()
    assert report.num_rows == 9520
    assert len(quarantine) == 3
    assert quarantine["failed_columns"].map(list).tolist() == [["amount"]] * 3
    assert quarantine["failed_rules"].map(list).tolist() == [["amount_in_range"]] * 3
    assert (quarantine["amount"] == 0.0).all()


def test_rerun_replaces_report_with_same_content(handbook_env):
    assert _run("2018-07-15") == "success"
    path = handbook_env / "risk_reports/dt=2018-07-15/part-00000.parquet"
    first = pq.read_table(path)
    assert _run("2018-07-15") == "success"
    second = pq.read_table(path)
    assert second.equals(first)
    assert sorted(p.name for p in path.parent.iterdir()) == ["part-00000.parquet"]


def test_bad_partition_is_quarantined_with_reasons(handbook_env, tmp_path, monkeypatch):
    warehouse = tmp_path / "warehouse"
    frame = good_rows(400).astype({"amount": "float64", "hour": "float64"})
    frame.loc[0, "amount"] = np.nan
    frame.loc[1, "amount"] = -3.0
    frame.loc[2, "hour"] = 24
    write_partition(warehouse, dt.date(2024, 2, 1), frame)
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(warehouse))
    assert _run("2024-02-01") == "success"
    quarantine = pq.read_table(
        handbook_env / "quarantine/dt=2024-02-01/part-00000.parquet"
    ).to_pandas()
    reasons = dict(
        zip(
            quarantine["transaction_id"],
            quarantine["failed_rules"].map(list),
            strict=True,
        )
    )
    assert reasons == {
        1: ["amount_not_null"],
        2: ["amount_in_range"],
        3: ["hour_in_range"],
    }
    summary = json.loads((handbook_env / "runs/dt=2024-02-01/summary.json").read_text())
    assert summary["rows_in"] == summary["scored"] + summary["quarantined"]
    assert summary["quarantined"] == 3


def test_bad_share_above_limit_fails_after_writing(handbook_env, tmp_path, monkeypatch):
    warehouse = tmp_path / "warehouse"
    frame = good_rows(50)
    frame.loc[:4, "hour"] = 30
    write_partition(warehouse, dt.date(2024, 2, 2), frame)
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(warehouse))
    assert _run("2024-02-02") == "failed"
    quarantine = pq.read_table(
        handbook_env / "quarantine/dt=2024-02-02/part-00000.parquet"
    )
    assert quarantine.num_rows == 5
    assert (handbook_env / "validation/dt=2024-02-02/validation_result.json").is_file()
    assert not (handbook_env / "risk_reports/dt=2024-02-02").exists()


def test_missing_partition_fails(handbook_env):
    assert _run("2017-01-01") == "failed"
    assert not (handbook_env / "runs/dt=2017-01-01").exists()


def test_date_param_overrides_logical_date(handbook_env):
    assert _run("2018-09-30", conf={"date": "2018-08-15"}) == "success"
    assert (handbook_env / "risk_reports/dt=2018-08-15/part-00000.parquet").is_file()
