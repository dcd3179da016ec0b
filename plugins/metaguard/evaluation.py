"""Fraud-detection metrics and the reference histograms kept for drift checks."""

from __future__ import annotations

import numpy as np
import pandas as pd

HISTOGRAM_BINS = 10


def precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Average over days of the fraud share among each day's ``k`` top scores."""
    values = []
    for _, day in frame.assign(score=scores).groupby("day", sort=True):
        top = day.nlargest(k, "score")
        values.append(float(top["is_fraud"].mean()))
    return float(np.mean(values)) if values else float("nan")


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Average over days of the fraud share among the ``k`` highest-scored cards.

    A card's score on a day is its highest transaction score, and it counts as
    fraudulent when any of its transactions that day is. Returns NaN when the
    frame has no ``customer_id``.
    """
    if "customer_id" not in frame.columns:
        return float("nan")
    values = []
    scored = frame.assign(score=scores)
    for _, day in scored.groupby("day", sort=True):
        cards = day.groupby("customer_id").agg(
            score=("score", "max"), fraud=("is_fraud", "max")
        )
        top = cards.nlargest(k, "score")
        values.append(float(top["fraud"].mean()))
    return float(np.mean(values)) if values else float("nan")


def evaluate(
    pipeline, features: list[str], frame: pd.DataFrame, threshold: float
) -> dict:
    """Score a labelled frame and return the metrics stored in model metadata."""
    from sklearn.metrics import (
        average_precision_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    from metaguard.scoring import predict_scores

    scores = predict_scores(pipeline, frame, features)
    labels = frame["is_fraud"].to_numpy()
    flagged = scores > threshold
    return {
        "auc_roc": round(float(roc_auc_score(labels, scores)), 6),
        "average_precision": round(float(average_precision_score(labels, scores)), 6),
        "precision_at_100": round(precision_at_k(frame, scores), 6),
        "card_precision_at_100": _rounded(card_precision_at_k(frame, scores)),
        "precision": round(float(precision_score(labels, flagged, zero_division=0)), 6),
        "recall": round(float(recall_score(labels, flagged, zero_division=0)), 6),
    }


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 6)


def reference_histograms(frame: pd.DataFrame, features: list[str]) -> dict:
    """Bin each feature's training distribution for later drift (PSI) checks.

    Edges are the training deciles (duplicates merged), with open outer bins,
    and counts are the training rows per bin.
    """
    histograms = {}
    for name in features:
        values = frame[name].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        inner = np.unique(
            np.quantile(values, np.linspace(0, 1, HISTOGRAM_BINS + 1)[1:-1])
        )
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
        counts, _ = np.histogram(values, bins=edges)
        histograms[name] = {
            "edges": [None if not np.isfinite(e) else float(e) for e in edges],
            "counts": [int(c) for c in counts],
        }
    return histograms
