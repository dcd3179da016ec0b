"""Model features, shared by training and nightly scoring.

Two feature sets exist. ``contract`` uses the four contract fields only and
works on any warehouse. ``history`` adds per-customer and per-terminal
history computed by :mod:`metaguard.history`; it needs ``customer_id``,
``terminal_id`` and ``event_time`` in the partitions. A model's metadata
records its feature set and feature list, and scoring builds exactly those.
"""

from __future__ import annotations

import pandas as pd

from metaguard.exceptions import ModelFeatureError

CONTRACT_FEATURES: tuple[str, ...] = (
    "amount",
    "hour",
    "user_age_days",
    "transaction_count",
)
HISTORY_INPUTS: tuple[str, ...] = ("customer_id", "terminal_id", "event_time")


def feature_names(feature_set: str) -> list[str]:
    """Return the ordered feature columns of a feature set."""
    if feature_set == "contract":
        return list(CONTRACT_FEATURES)
    if feature_set == "history":
        from metaguard.history import HISTORY_FEATURES

        return list(CONTRACT_FEATURES) + list(HISTORY_FEATURES)
    raise ValueError(
        f"unknown feature set {feature_set!r}; expected 'contract' or 'history'"
    )


def history_available(columns: list[str] | tuple[str, ...]) -> bool:
    """Tell whether a partition with these columns supports history features."""
    return all(c in columns for c in HISTORY_INPUTS)


def require_inputs(feature_set: str, columns: list[str], where: str) -> None:
    """Raise :class:`ModelFeatureError` when ``columns`` cannot feed ``feature_set``."""
    if feature_set == "history":
        missing = [c for c in HISTORY_INPUTS if c not in columns]
        if missing:
            raise ModelFeatureError(
                f"{where} lacks column(s) {missing} that the model's 'history' "
                "features need; add them to the partition or pass them through "
                "(METAGUARD_PASSTHROUGH_COLUMNS), or score with a 'contract' model"
            )


def feature_frame(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Select the model's feature columns as float64, in the model's order."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ModelFeatureError(
            f"feature column(s) {missing} are missing from the scoring frame"
        )
    return frame[features].astype("float64")
