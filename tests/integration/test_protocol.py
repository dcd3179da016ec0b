"""The handbook protocol on the handbook warehouse: counts and model quality."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from metaguard.config import load_settings
from metaguard.features import CONTRACT_FEATURES, feature_names
from metaguard.labelled import load_labelled
from metaguard.protocol import (
    CHAPTER_3_END,
    KNOWN_AFTER_DAYS,
    FoldResult,
    card_frauds,
    drop_known_cards,
    evaluate_fold,
    fold_frames,
    fold_windows,
    known_cards_per_day,
)

pytestmark = pytest.mark.handbook

CHAPTER_3 = fold_windows(CHAPTER_3_END)
PUBLISHED_RANDOM_FOREST_AP = 0.658


@pytest.fixture(scope="module")
def frauds(handbook) -> pd.DataFrame:
    last = CHAPTER_3.valid_end - dt.timedelta(days=KNOWN_AFTER_DAYS)
    return card_frauds(handbook, CHAPTER_3.train_start, last)


@pytest.fixture(scope="module")
def chapter_3(handbook, frauds, tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Chapter 3 split's training and test rows, as MetaGuard loads them."""
    root = tmp_path_factory.mktemp("protocol")
    settings = load_settings(
        {},
        overrides={
            "warehouse": str(handbook),
            "output": str(root / "output"),
            "models": str(root / "models"),
        },
    )
    frame = load_labelled(
        settings, CHAPTER_3.train_start, CHAPTER_3.valid_end, "history"
    ).frame
    return fold_frames(frame, frauds, CHAPTER_3)


def raw_rows(handbook, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Read every transaction of ``start..end`` with its label and day."""
    frames = []
    for day in pd.date_range(start, end).date:
        transactions = pd.read_parquet(handbook / "transactions" / f"dt={day}")
        labels = pd.read_parquet(handbook / "labels" / f"dt={day}")
        labelled = transactions.merge(labels[["transaction_id", "is_fraud"]])
        frames.append(labelled.assign(day=day))
    return pd.concat(frames, ignore_index=True)


def test_chapter_3_training_counts(chapter_3):
    train, _ = chapter_3

    assert len(train) == 67_238
    assert int(train["is_fraud"].sum()) == 598


def test_chapter_3_test_counts_without_known_cards(chapter_3):
    _, test = chapter_3

    assert len(test) == 58_262
    assert int(test["is_fraud"].sum()) == 385


def test_raw_chapter_3_counts_match_handbook(handbook, frauds, chapter_3):
    train, test = chapter_3
    raw_train = raw_rows(handbook, CHAPTER_3.train_start, CHAPTER_3.train_end)
    raw_test = raw_rows(handbook, CHAPTER_3.valid_start, CHAPTER_3.valid_end)
    raw_test = drop_known_cards(raw_test, known_cards_per_day(frauds, CHAPTER_3))

    assert len(raw_train) == 67_240
    assert int(raw_train["is_fraud"].sum()) == 598
    assert len(raw_test) == 58_264
    assert int(raw_test["is_fraud"].sum()) == 385
    # The rows MetaGuard leaves out are the genuine transactions of amount
    # 0.00 that the contract quarantines.
    for raw, loaded in ((raw_train, train), (raw_test, test)):
        missing = raw[~raw["transaction_id"].isin(loaded["transaction_id"])]
        assert len(missing) == 2
        assert (missing["amount"] == 0).all()
        assert (missing["is_fraud"] == 0).all()


@pytest.fixture(scope="module")
def default_result(chapter_3) -> FoldResult:
    """The default estimator's result on the Chapter 3 split, seed 0."""
    train, test = chapter_3
    features = feature_names("history")
    return evaluate_fold("random_forest", train, test, CHAPTER_3, features, seed=0)


def test_default_estimator_beats_contract_model(chapter_3, default_result):
    train, test = chapter_3
    contract_features = list(CONTRACT_FEATURES)

    contract = evaluate_fold(
        "random_forest", train, test, CHAPTER_3, contract_features, seed=0
    )

    ap = default_result.metrics["average_precision"]
    assert ap > contract.metrics["average_precision"]
    assert ap > PUBLISHED_RANDOM_FOREST_AP


def test_same_seed_gives_same_protocol_metrics(chapter_3, default_result):
    train, test = chapter_3
    features = feature_names("history")

    again = evaluate_fold("random_forest", train, test, CHAPTER_3, features, seed=0)

    assert again.metrics == default_result.metrics
