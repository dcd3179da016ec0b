"""Batch scoring: risk scores, risk levels, the suspicious flag and reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from metaguard.config import Settings
from metaguard.contract import COLUMNS, COLUMN_NAMES
from metaguard.features import feature_frame
from metaguard.registry import LoadedModel

# Reason codes with the rule each one stands for. They explain why a row is
# unusual; the model's score, not these rules, decides `is_suspicious`.
REASON_RULES: tuple[tuple[str, str], ...] = (
    ("high_amount", "amount > 1000"),
    ("new_account", "user_age_days < 30"),
    ("high_frequency", "transaction_count > 20"),
    ("unusual_hour", "hour < 6 or hour > 22"),
)
RISK_LEVELS = ("Low", "Medium", "High")
SCORE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("risk_score", pa.float64()),
    ("risk_level", pa.string()),
    ("is_suspicious", pa.bool_()),
    ("reasons", pa.list_(pa.string())),
    ("model_version", pa.string()),
)


def predict_scores(pipeline, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Return the fraud probability of each row, identical on every rerun.

    Estimators that predict in parallel threads (random forests) add up tree
    outputs in a varying order, which changes the last bits of a score from
    run to run. Prediction therefore runs single-threaded; chunks of a large
    day are scored in parallel by Airflow instead.
    """
    if not len(frame):
        return np.zeros(0, dtype=np.float64)
    for _, step in getattr(pipeline, "steps", [("model", pipeline)]):
        if "n_jobs" in step.get_params(deep=False):
            step.set_params(n_jobs=1)
    probabilities = pipeline.predict_proba(feature_frame(frame, features))
    return probabilities[:, 1].astype(np.float64)


def reason_codes(frame: pd.DataFrame) -> list[list[str]]:
    """Return, per row, the reason codes whose rule the row meets."""
    masks = {
        "high_amount": frame["amount"].to_numpy() > 1000,
        "new_account": frame["user_age_days"].to_numpy() < 30,
        "high_frequency": frame["transaction_count"].to_numpy() > 20,
        "unusual_hour": (frame["hour"].to_numpy() < 6) | (frame["hour"].to_numpy() > 22),
    }
    codes = [code for code, _ in REASON_RULES]
    stacked = np.column_stack([masks[c] for c in codes]) if len(frame) else None
    if stacked is None:
        return []
    return [[codes[j] for j in np.flatnonzero(row)] for row in stacked]


def risk_levels(scores: np.ndarray, medium_from: float, high_from: float) -> np.ndarray:
    """Map scores to Low (<= medium_from), Medium (<= high_from) or High."""
    levels = np.full(scores.shape, "Low", dtype=object)
    levels[scores > medium_from] = "Medium"
    levels[scores > high_from] = "High"
    return levels


def report_schema(id_type: pa.DataType, passthrough: pa.Schema | None) -> pa.Schema:
    """Return the risk report's Arrow schema for one partition."""
    fields = [pa.field("transaction_id", id_type, nullable=False)]
    fields += [pa.field(c.name, c.arrow_type, nullable=False) for c in COLUMNS[1:]]
    fields += list(passthrough or [])
    fields += [pa.field(name, kind) for name, kind in SCORE_COLUMNS]
    return pa.schema(fields)


def score_frame(
    frame: pd.DataFrame,
    model: LoadedModel,
    settings: Settings,
    schema: pa.Schema,
) -> pa.Table:
    """Score valid rows and return them as a report table in ``schema``.

    ``frame`` holds the contract columns, any pass-through columns and the
    feature columns that the model needs.
    """
    scores = predict_scores(model.pipeline, frame, model.features)
    columns = {name: frame[name] for name in COLUMN_NAMES}
    for name in schema.names:
        if name not in columns and name in frame.columns:
            columns[name] = frame[name]
    columns["risk_score"] = scores
    columns["risk_level"] = risk_levels(
        scores, settings.medium_risk_from, settings.high_risk_from
    )
    columns["is_suspicious"] = scores > settings.risk_threshold
    columns["reasons"] = reason_codes(frame)
    columns["model_version"] = [model.version] * len(frame)
    data = pd.DataFrame(columns, index=frame.index)
    return pa.Table.from_pandas(data, schema=schema, preserve_index=False)
