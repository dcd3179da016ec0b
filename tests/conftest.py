"""Shared fixtures: a private Airflow home, the handbook warehouse, settings.

The Airflow variables are set when this module is imported, before any test
imports Airflow, so every test process uses its own SQLite database.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = Path(
    os.environ.get("METAGUARD_HANDBOOK", REPO.parent / "shared" / "data" / "handbook")
)

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="metaguard-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"


def handbook_or_skip() -> Path:
    """Return the handbook path, skipping (or failing in CI) when it is absent."""
    if HANDBOOK.is_dir():
        return HANDBOOK
    message = (
        f"handbook data not found at {HANDBOOK}; set METAGUARD_HANDBOOK or place "
        "the shared folder beside the repository"
    )
    if os.environ.get("METAGUARD_REQUIRE_HANDBOOK") == "1":
        pytest.fail(message + " (required because METAGUARD_REQUIRE_HANDBOOK=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def handbook() -> Path:
    """The read-only handbook warehouse."""
    return handbook_or_skip()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the private Airflow database once per test session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
    return home


def load_dag(name: str):
    """Import a DAG file from ``dags/`` and return its DAG object."""
    spec = importlib.util.spec_from_file_location(name, REPO / "dags" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture
def roots(tmp_path, monkeypatch) -> dict[str, Path]:
    """Empty output and model roots, exported as METAGUARD_* variables."""
    paths = {"output": tmp_path / "output", "models": tmp_path / "models"}
    for key, path in paths.items():
        path.mkdir()
        monkeypatch.setenv(f"METAGUARD_{key.upper()}", str(path))
    return paths


def day(text: str) -> dt.date:
    """Parse an ISO date; a short helper for test tables."""
    return dt.date.fromisoformat(text)
