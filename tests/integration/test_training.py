"""Training, metrics and the promotion gate on the handbook warehouse."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from metaguard import registry
from metaguard.config import load_settings
from metaguard.evaluation import evaluate
from metaguard.exceptions import ModelIntegrityError, TrainingDataError
from metaguard.labelled import load_labelled
from metaguard.training import gate, train, windows_ending, windows_from_training
from tests.conftest import load_dag

pytestmark = pytest.mark.handbook

SPLIT = windows_ending(dt.date(2018, 8, 14))


def _settings(handbook, root):
    return load_settings(
        {},
        overrides={
            "warehouse": str(handbook),
            "output": str(root / "output"),
            "models": str(root / "models"),
        },
    )


def test_windows_of_handbook_split():
    assert SPLIT.train_start == dt.date(2018, 7, 25)
    assert SPLIT.train_end == dt.date(2018, 7, 31)
    assert SPLIT.valid_start == dt.date(2018, 8, 8)
    assert SPLIT.gap_days == 7


def test_contract_model_metrics_are_sensible(contract_models):
    version = registry.champion_version(contract_models)
    metadata = registry.read_metadata(contract_models, version)
    metrics = metadata["metrics"]
    assert set(metrics) == {
        "auc_roc",
        "average_precision",
        "precision_at_100",
        "card_precision_at_100",
        "precision",
        "recall",
    }
    assert 0.5 < metrics["auc_roc"] < 0.75
    assert 0.05 < metrics["average_precision"] < 0.35
    assert 0.0 < metrics["card_precision_at_100"] < 0.4
    assert metadata["training"]["rows"] == 67238
    assert metadata["training"]["frauds"] == 598
    assert metadata["training"]["quarantined"] == 2
    assert metadata["feature_set"] == "contract"
    assert metadata["windows"]["valid_end"] == "2018-08-14"
    assert set(metadata["reference_histograms"]) == {
        "amount",
        "hour",
        "user_age_days",
        "transaction_count",
    }


def test_same_seed_gives_same_metrics(handbook, contract_models, tmp_path):
    settings = _settings(handbook, tmp_path)
    windows = windows_from_training(dt.date(2018, 7, 25), dt.date(2018, 7, 31))
    decision = train(settings, windows, feature_set="contract", seed=0)
    version = registry.champion_version(contract_models)
    first = registry.read_metadata(contract_models, version)["metrics"]
    assert decision["challenger_metrics"] == first


def test_gate_keeps_champion_against_weak_challenger(
    handbook, contract_models, tmp_path
):
    models = tmp_path / "models"
    shutil.copytree(contract_models, models)
    settings = _settings(handbook, tmp_path)
    champion = registry.champion_version(models)
    validation = load_labelled(settings, SPLIT.valid_start, SPLIT.valid_end, "contract")
    features = ["amount", "hour", "user_age_days", "transaction_count"]
    weak = Pipeline([("model", DummyClassifier(strategy="prior"))])
    weak.fit(validation.frame[features], validation.frame["is_fraud"])
    weak_version = registry.register(models, weak, {"features": features})
    metrics = evaluate(weak, features, validation.frame, 0.5)
    decision = gate(settings, weak_version, metrics, validation)
    assert decision["promoted"] is False
    assert registry.champion_version(models) == champion
    assert (
        decision["challenger_metrics"]["average_precision"]
        < decision["champion_metrics"]["average_precision"]
    )
    lines = (models / "promotions.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["challenger"] == weak_version


def test_gate_promotes_better_challenger(handbook, contract_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(contract_models, models)
    settings = _settings(handbook, tmp_path)
    decision = train(settings, SPLIT, feature_set="history", seed=0)
    assert decision["promoted"] is True
    assert registry.champion_version(models) == decision["challenger"]
    assert (
        decision["challenger_metrics"]["average_precision"]
        > decision["champion_metrics"]["average_precision"]
    )


def test_gate_compares_on_same_window(handbook, contract_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(contract_models, models)
    settings = _settings(handbook, tmp_path)
    validation = load_labelled(settings, SPLIT.valid_start, SPLIT.valid_end, "contract")
    champion = registry.champion_version(models)
    decision = gate(settings, champion, {"average_precision": 1.0}, validation)
    stored = registry.read_metadata(models, champion)["metrics"]
    assert decision["champion_metrics"] == stored


def test_window_without_labels_is_named(handbook, tmp_path):
    settings = _settings(handbook, tmp_path)
    windows = windows_ending(dt.date(2019, 3, 1))
    with pytest.raises(
        TrainingDataError,
        match=r"training window 2019-02-\d\d\.\.2019-02-\d\d has no labelled",
    ):
        train(settings, windows, feature_set="contract")


def test_tampered_champion_is_refused(contract_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(contract_models, models)
    version = registry.champion_version(models)
    artifact = models / version / "model.joblib"
    artifact.write_bytes(b"\x00" + artifact.read_bytes()[1:])
    with pytest.raises(ModelIntegrityError, match=f"{artifact}.*expected sha256"):
        registry.load_champion(models)


@pytest.mark.airflow
def test_retraining_dag_registers_and_decides(
    handbook, contract_models, tmp_path, monkeypatch, airflow_db
):
    models = tmp_path / "models"
    shutil.copytree(contract_models, models)
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(handbook))
    monkeypatch.setenv("METAGUARD_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("METAGUARD_MODELS", str(models))
    dag = load_dag("metaguard_retraining")
    run = dag.test(
        logical_date=dt.datetime(2018, 8, 14, tzinfo=dt.UTC),
        run_conf={"feature_set": "contract", "estimator": "logistic_regression"},
    )
    assert str(run.state) == "success"
    decisions = [
        json.loads(x) for x in (models / "promotions.jsonl").read_text().splitlines()
    ]
    assert len(decisions) == 2
    last = decisions[-1]
    assert set(last["champion_metrics"]) == set(last["challenger_metrics"])
    expected = last["challenger"] if last["promoted"] else last["champion"]
    assert registry.champion_version(models) == expected
    assert len([p for p in models.iterdir() if p.is_dir()]) == 2
