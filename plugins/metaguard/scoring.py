"""Batch scoring: risk scores, risk levels, the suspicious flag and reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from metaguard.config import Settings
from metaguard.contract import COLUMNS
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
    return reason_code_array(frame).to_pylist()


def reason_code_array(frame: pd.DataFrame) -> pa.ListArray:
    """Build the per-row reason codes as an Arrow list array, without a row loop."""
    hour = frame["hour"].to_numpy()
    masks = {
        "high_amount": frame["amount"].to_numpy() > 1000,
        "new_account": frame["user_age_days"].to_numpy() < 30,
        "high_frequency": frame["transaction_count"].to_numpy() > 20,
        "unusual_hour": (hour < 6) | (hour > 22),
    }
    codes = [code for code, _ in REASON_RULES]
    # One row per transaction and one column per code, in REASON_RULES order,
    # so the row-major positions of the hits list each row's codes in order.
    stacked = np.column_stack([masks[c] for c in codes]).reshape(len(frame), len(codes))
    offsets = np.zeros(len(frame) + 1, dtype=np.int32)
    np.cumsum(stacked.sum(axis=1), out=offsets[1:])
    code_index = np.flatnonzero(stacked) % len(codes)
    values = pa.array(codes, pa.string()).take(pa.array(code_index))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


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

    ``frame`` contains the contract columns, any pass-through columns and the
    feature columns that the model needs.
    """
    scores = predict_scores(model.pipeline, frame, model.features)
    score_names = [name for name, _ in SCORE_COLUMNS]
    input_schema = pa.schema([f for f in schema if f.name not in score_names])
    inputs = pa.Table.from_pandas(
        frame[input_schema.names], schema=input_schema, preserve_index=False
    )
    levels = risk_levels(scores, settings.medium_risk_from, settings.high_risk_from)
    outputs = {
        "risk_score": pa.array(scores, pa.float64()),
        "risk_level": pa.array(levels, pa.string()),
        "is_suspicious": pa.array(scores > settings.risk_threshold, pa.bool_()),
        "reasons": reason_code_array(frame),
        "model_version": pa.repeat(pa.scalar(model.version, pa.string()), len(frame)),
    }
    arrays = [
        outputs[name] if name in outputs else inputs.column(name)
        for name in schema.names
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
