"""Fixtures that train real models on the handbook warehouse once per session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from metaguard.config import load_settings
from metaguard.training import train, windows_from_training


@pytest.fixture(scope="session")
def contract_models(handbook, tmp_path_factory) -> Path:
    """A registry whose champion is a contract-feature random forest.

    Trained on 2018-07-25..31 of the handbook, validated on 08-08..14.
    """
    root = tmp_path_factory.mktemp("contract")
    settings = load_settings(
        {},
        overrides={
            "warehouse": str(handbook),
            "output": str(root / "output"),
            "models": str(root / "models"),
        },
    )
    windows = windows_from_training(dt.date(2018, 7, 25), dt.date(2018, 7, 31))
    train(settings, windows, feature_set="contract", seed=0)
    return root / "models"
