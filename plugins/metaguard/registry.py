"""The model registry: versioned artifacts, metadata, sha256 and the champion.

Layout under the models root::

    <models>/<version>/model.joblib     the fitted scikit-learn pipeline
    <models>/<version>/metadata.json    features, windows, metrics, sha256, ...
    <models>/champion.json              {"version": ...}, replaced atomically
    <models>/promotions.jsonl           one line per promotion decision

joblib files are pickles: loading one runs code chosen by the author of the file.
:func:`load_model` therefore loads only from the configured root, and only
after the artifact's sha256 matches the one recorded in its metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from metaguard.config import inside_root
from metaguard.exceptions import ModelIntegrityError, PathOutsideRoot
from metaguard.publish import append_jsonl, write_json

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CHAMPION_FILE = "champion.json"
PROMOTIONS_FILE = "promotions.jsonl"


@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its version, fitted pipeline and metadata."""

    version: str
    pipeline: object
    metadata: dict

    @property
    def features(self) -> list[str]:
        """Return the feature columns the pipeline was fitted on, in order."""
        return list(self.metadata["features"])


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_version(now: dt.datetime | None = None) -> str:
    """Return a sortable version name such as ``20180814T093000Z-1a2b3c``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


def register(models: Path, pipeline: object, metadata: dict) -> str:
    """Save a fitted pipeline and its metadata as a new version; return it.

    The version folder is assembled under a hidden name and renamed into
    place, so a crash never leaves a half-written version.
    """
    import joblib

    version = new_version()
    models.mkdir(parents=True, exist_ok=True)
    staging = models / f".tmp-{version}"
    staging.mkdir()
    try:
        artifact = staging / MODEL_FILE
        joblib.dump(pipeline, artifact)
        record = dict(metadata, version=version, sha256=sha256_file(artifact))
        write_json(staging / METADATA_FILE, record)
        os.replace(staging, models / version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("registered model %s in %s", version, models)
    return version


def read_metadata(models: Path, version: str) -> dict:
    """Read a version's metadata, raising when the version is unknown."""
    folder = _version_folder(models, version)
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ModelIntegrityError(f"model metadata {path} not found")
    return _read_json_object(path)


def load_model(models: Path, version: str) -> LoadedModel:
    """Load a version after checking its sha256 against its metadata.

    Raises :class:`ModelIntegrityError` naming the path and both digests when
    the artifact is missing or does not match.
    """
    import joblib

    metadata = read_metadata(models, version)
    artifact = _version_folder(models, version) / MODEL_FILE
    if artifact.is_symlink():
        raise ModelIntegrityError(
            f"model artifact {artifact} is a symbolic link; the registry loads "
            "only regular files"
        )
    if not artifact.is_file():
        raise ModelIntegrityError(f"model artifact {artifact} not found")
    expected = metadata.get("sha256", "")
    actual = sha256_file(artifact)
    if actual != expected:
        raise ModelIntegrityError(
            f"model artifact {artifact} failed its integrity check: expected "
            f"sha256 {expected or '(none recorded)'}, found {actual}; "
            "retrain or restore the file instead of loading it"
        )
    pipeline = joblib.load(artifact)
    log.info("loaded model %s (sha256 %s)", version, actual[:12])
    return LoadedModel(version, pipeline, metadata)


def champion_version(models: Path) -> str | None:
    """Return the champion's version, or None when no champion exists yet."""
    path = models / CHAMPION_FILE
    if not path.is_file():
        return None
    version = _read_json_object(path).get("version")
    if not isinstance(version, str) or not version:
        raise ModelIntegrityError(
            f"{path} is invalid: expected a 'version' string, found {version!r}; "
            "restore the file from a backup or retrain"
        )
    return version


def load_champion(models: Path) -> LoadedModel:
    """Load the current champion, raising when there is none."""
    version = champion_version(models)
    if version is None:
        raise ModelIntegrityError(
            f"no champion model in {models} ({CHAMPION_FILE} not found); "
            "train one with 'metaguard train' or the metaguard_retraining DAG"
        )
    return load_model(models, version)


def set_champion(models: Path, version: str, reason: str) -> None:
    """Make ``version`` the champion by replacing ``champion.json`` atomically."""
    _version_folder(models, version)
    write_json(
        models / CHAMPION_FILE,
        {
            "version": version,
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(),
            "reason": reason,
        },
    )
    log.info("model %s is now the champion (%s)", version, reason)


def record_decision(models: Path, decision: dict) -> None:
    """Append a promotion decision to ``promotions.jsonl``."""
    append_jsonl(models / PROMOTIONS_FILE, decision)


def _read_json_object(path: Path) -> dict:
    """Read a registry JSON file, raising :class:`ModelIntegrityError` if malformed."""
    import json

    try:
        payload = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelIntegrityError(
            f"{path} is invalid: {error}; restore the file from a backup or retrain"
        ) from None
    if not isinstance(payload, dict):
        raise ModelIntegrityError(
            f"{path} is invalid: expected a JSON object; "
            "restore the file from a backup or retrain"
        )
    return payload


def _version_folder(models: Path, version: str) -> Path:
    try:
        folder = inside_root(models, version)
    except PathOutsideRoot as error:
        raise ModelIntegrityError(
            f"model version {version!r} rejected: {error}"
        ) from None
    if not folder.is_dir():
        raise ModelIntegrityError(f"model version folder {folder} not found")
    return folder
