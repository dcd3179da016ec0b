"""Trust boundaries: model artifacts, paths and Params, and what logs may contain."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from metaguard import nightly, registry
from metaguard.config import load_settings
from metaguard.dagkit import PARAM_SETTINGS, run_date, run_settings
from metaguard.exceptions import ModelIntegrityError, PathOutsideRoot
from metaguard.warehouse import locate_partition
from tests.builders import good_rows, write_partition
from tests.conftest import load_dag
from tests.integration.test_bad_input import register_champion

DAY = dt.date(2024, 3, 3)


@pytest.fixture(scope="module")
def trusted(tmp_path_factory) -> tuple[Path, str]:
    """A registry with a champion, shared read-only by the tests that copy it."""
    root = tmp_path_factory.mktemp("trusted")
    return root, register_champion(root)


@pytest.fixture
def models(trusted, tmp_path) -> tuple[Path, str]:
    """A writable copy of the trusted registry, for tests that tamper with it."""
    root, version = trusted
    copy = tmp_path / "models"
    shutil.copytree(root, copy)
    return copy, version


def point_champion_at(models: Path, version: object) -> None:
    (models / registry.CHAMPION_FILE).write_text(json.dumps({"version": version}))


# Model artifacts ---------------------------------------------------------------


def test_champion_loads_after_sha256_check(models):
    root, version = models
    loaded = registry.load_champion(root)
    assert loaded.version == version
    assert loaded.metadata["sha256"] == registry.sha256_file(
        root / version / "model.joblib"
    )


@pytest.mark.parametrize("version", ["../elsewhere", "/tmp", "a/../../b"])
def test_champion_outside_root_is_rejected(models, version):
    root, _ = models
    point_champion_at(root, version)
    with pytest.raises(ModelIntegrityError, match="rejected"):
        registry.load_champion(root)


def test_symlinked_version_folder_is_rejected(models, trusted):
    root, _ = models
    foreign_root, foreign_version = trusted
    (root / "linked").symlink_to(foreign_root / foreign_version)
    point_champion_at(root, "linked")
    with pytest.raises(ModelIntegrityError, match="outside the root"):
        registry.load_champion(root)


def test_symlinked_artifact_is_rejected(models, tmp_path):
    root, version = models
    artifact = root / version / registry.MODEL_FILE
    elsewhere = tmp_path / "elsewhere.joblib"
    shutil.move(artifact, elsewhere)
    artifact.symlink_to(elsewhere)
    with pytest.raises(ModelIntegrityError, match="is a symbolic link"):
        registry.load_model(root, version)


def test_foreign_artifact_is_rejected(models, tmp_path):
    root, version = models
    other = tmp_path / "other"
    foreign = DummyClassifier(strategy="prior").fit([[0], [1]], [0, 1])
    other_version = registry.register(other, foreign, {"features": ["amount"]})
    shutil.copy(other / other_version / registry.MODEL_FILE, root / version)
    with pytest.raises(ModelIntegrityError, match="failed its integrity check"):
        registry.load_model(root, version)


def test_unrecorded_sha256_is_rejected(models):
    root, version = models
    path = root / version / registry.METADATA_FILE
    metadata = json.loads(path.read_text())
    del metadata["sha256"]
    path.write_text(json.dumps(metadata))
    with pytest.raises(ModelIntegrityError, match=r"expected sha256 \(none recorded\)"):
        registry.load_model(root, version)


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"name": "x"}), json.dumps({"version": 42})],
    ids=["not-json", "no-version", "version-not-text"],
)
def test_malformed_champion_file_is_rejected(models, content):
    root, _ = models
    (root / registry.CHAMPION_FILE).write_text(content)
    with pytest.raises(ModelIntegrityError, match="champion.json is invalid"):
        registry.load_champion(root)


def test_malformed_metadata_is_rejected(models):
    root, version = models
    (root / version / registry.METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="metadata.json is invalid"):
        registry.load_model(root, version)


# Paths and Params --------------------------------------------------------------


@pytest.fixture
def settings(models, tmp_path):
    root, _ = models
    return load_settings(
        {
            "METAGUARD_WAREHOUSE": str(tmp_path / "warehouse"),
            "METAGUARD_OUTPUT": str(tmp_path / "output"),
            "METAGUARD_MODELS": str(root),
        }
    )


def test_partition_symlink_outside_rejected(tmp_path):
    outside = write_partition(tmp_path / "outside", DAY, good_rows(5)).parent
    folder = tmp_path / "warehouse" / "transactions"
    folder.mkdir(parents=True)
    (folder / f"dt={DAY.isoformat()}").symlink_to(outside)
    with pytest.raises(PathOutsideRoot, match="outside the root"):
        locate_partition(tmp_path / "warehouse", DAY)


def test_file_symlink_outside_rejected(tmp_path):
    outside = write_partition(tmp_path / "outside", DAY, good_rows(5))
    inside = write_partition(tmp_path / "warehouse", DAY, good_rows(5))
    (inside.parent / "part-00001.parquet").symlink_to(outside)
    with pytest.raises(PathOutsideRoot, match="part-00001.parquet resolves to"):
        locate_partition(tmp_path / "warehouse", DAY)


def test_file_symlink_inside_is_read(tmp_path):
    other_day = write_partition(tmp_path, DAY - dt.timedelta(days=1), good_rows(5))
    write_partition(tmp_path, DAY, good_rows(5, start_id=10))
    linked = tmp_path / "transactions" / f"dt={DAY.isoformat()}" / "part-00001.parquet"
    linked.symlink_to(other_day)
    partition = locate_partition(tmp_path, DAY)
    assert partition.file_names == ["part-00000.parquet", "part-00001.parquet"]


def test_output_symlink_outside_rejected(settings, tmp_path):
    write_partition(settings.warehouse, DAY, good_rows(200))
    outside = tmp_path / "outside"
    outside.mkdir()
    settings.output.mkdir()
    (settings.output / "risk_reports").symlink_to(outside)

    with pytest.raises(PathOutsideRoot, match="outside the root"):
        nightly.run(settings, DAY)

    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "name",
    ["metaguard_nightly_scoring", "metaguard_retraining", "metaguard_data_quality"],
)
def test_dag_has_no_path_params(name):
    params = set(load_dag(name).params.keys())
    assert params.isdisjoint({"warehouse", "output", "models"})
    assert [p for p in params if "path" in p or "dir" in p or "root" in p] == []


def test_param_settings_exclude_paths():
    assert set(PARAM_SETTINGS).isdisjoint({"warehouse", "output", "models"})


def test_path_keys_in_params_are_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(tmp_path / "warehouse"))
    monkeypatch.setenv("METAGUARD_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("METAGUARD_MODELS", str(tmp_path / "models"))
    params = {
        "warehouse": "/",
        "output": "/tmp",
        "models": "/etc",
        "risk_threshold": 0.7,
    }

    settings = run_settings(params)

    assert settings.warehouse == tmp_path / "warehouse"
    assert settings.output == tmp_path / "output"
    assert settings.models == tmp_path / "models"
    assert settings.risk_threshold == 0.7


@pytest.mark.parametrize(
    "date", ["../2024-03-03", "2024-03-03/../../etc", "/etc/passwd", "2024-03-03\x00"]
)
def test_date_param_with_path_is_rejected(date):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(
        AirflowFailException, match="ConfigError: Param 'date' .* is not a date"
    ):
        run_date({"date": date}, {})


@pytest.mark.airflow
def test_dag_ignores_path_keys_in_conf(settings, tmp_path, monkeypatch, airflow_db):
    write_partition(settings.warehouse, DAY, good_rows(200))
    decoy = tmp_path / "decoy"
    write_partition(decoy, DAY, good_rows(50))
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("METAGUARD_OUTPUT", str(settings.output))
    monkeypatch.setenv("METAGUARD_MODELS", str(settings.models))
    conf = {"warehouse": str(decoy), "output": str(decoy), "models": str(decoy)}

    run = load_dag("metaguard_nightly_scoring").test(
        logical_date=dt.datetime(2024, 3, 3, tzinfo=dt.UTC), run_conf=conf
    )

    assert str(run.state) == "success"
    summary = json.loads(
        (
            settings.output / "runs" / f"dt={DAY.isoformat()}" / "summary.json"
        ).read_text()
    )
    assert summary["rows_in"] == 200
    assert sorted(p.name for p in decoy.iterdir()) == ["transactions"]


# Logs --------------------------------------------------------------------------


def test_logs_hold_no_customer_data(settings, caplog):
    frame = good_rows(400)
    frame["transaction_id"] = 910_000_000_000 + np.arange(400, dtype=np.int64)
    frame["customer_id"] = 730_000_000_000 + np.arange(400, dtype=np.int64)
    frame["terminal_id"] = 540_000_000_000 + np.arange(400, dtype=np.int64)
    frame.loc[0, "hour"] = 24
    frame.loc[1, "transaction_id"] = frame.loc[2, "transaction_id"]
    write_partition(settings.warehouse, DAY, frame)
    settings = load_settings(
        {"METAGUARD_LOG_LEVEL": "DEBUG"},
        overrides={
            "warehouse": str(settings.warehouse),
            "output": str(settings.output),
            "models": str(settings.models),
        },
    )

    with caplog.at_level(logging.DEBUG):
        summary = nightly.run(settings, DAY)

    assert summary["quarantined"] == 3
    assert summary["model_version"] in caplog.text
    assert "3 quarantined" in caplog.text
    for prefix in ("91000000", "73000000", "54000000"):
        assert prefix not in caplog.text, prefix
