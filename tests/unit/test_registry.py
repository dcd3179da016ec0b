import json

import pytest
from sklearn.dummy import DummyClassifier

from metaguard import registry
from metaguard.exceptions import ModelIntegrityError


@pytest.fixture
def registered(tmp_path):
    model = DummyClassifier(strategy="prior").fit([[0], [1]], [0, 1])
    version = registry.register(tmp_path, model, {"features": ["amount"]})
    return tmp_path, version


def test_register_and_load(registered):
    models, version = registered
    loaded = registry.load_model(models, version)
    assert loaded.version == version
    assert loaded.features == ["amount"]
    assert len(loaded.metadata["sha256"]) == 64


def test_tampered_artifact_is_rejected(registered):
    models, version = registered
    artifact = models / version / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    with pytest.raises(
        ModelIntegrityError, match="expected sha256 [0-9a-f]{64}, found"
    ):
        registry.load_model(models, version)


def test_missing_artifact_is_rejected(registered):
    models, version = registered
    (models / version / "model.joblib").unlink()
    with pytest.raises(ModelIntegrityError, match="model.joblib not found"):
        registry.load_model(models, version)


def test_foreign_version_path_is_rejected(registered):
    models, _ = registered
    with pytest.raises(ModelIntegrityError, match="rejected"):
        registry.load_model(models, "../elsewhere")


def test_no_champion_is_a_clear_error(tmp_path):
    with pytest.raises(ModelIntegrityError, match="no champion model"):
        registry.load_champion(tmp_path)


def test_champion_pointer_round_trip(registered):
    models, version = registered
    registry.set_champion(models, version, "test")
    assert registry.champion_version(models) == version
    assert json.loads((models / "champion.json").read_text())["reason"] == "test"
