"""Unit tests of the handbook protocol's metrics and test-set rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from metaguard.exceptions import ConfigError
from metaguard.protocol import (
    card_precision_at_k,
    drop_known_cards,
    fold_windows,
    known_cards_per_day,
    protocol_metrics,
    run_command,
    write_docs,
)

DAY_1 = dt.date(2018, 8, 8)
DAY_2 = dt.date(2018, 8, 9)


def scored_rows(rows: list[tuple]) -> tuple[pd.DataFrame, np.ndarray]:
    """Build a test frame and its scores from (day, customer_id, is_fraud, score)."""
    frame = pd.DataFrame(rows, columns=["day", "customer_id", "is_fraud", "score"])
    return frame.drop(columns="score"), frame["score"].to_numpy()


# On day 1, card 1 counts as fraudulent because of its low-scored row, and its
# score is 0.9 from its genuine row. The top 2 are cards 1 and 2. Card 1 was
# found on day 1 and leaves day 2, so the top 2 of day 2 are the genuine cards
# 2 and 3.
TWO_DAYS = [
    (DAY_1, 1, 0, 0.9),
    (DAY_1, 1, 1, 0.1),
    (DAY_1, 2, 0, 0.8),
    (DAY_1, 3, 1, 0.3),
    (DAY_2, 1, 1, 0.95),
    (DAY_2, 2, 0, 0.7),
    (DAY_2, 3, 0, 0.6),
    (DAY_2, 4, 1, 0.5),
]


def test_card_precision_known_answer():
    frame, scores = scored_rows(TWO_DAYS)

    mean, per_day = card_precision_at_k(frame, scores, k=2)

    assert per_day == [0.5, 0.0]
    assert mean == pytest.approx(0.25)


def test_card_precision_processes_days_in_date_order():
    frame, scores = scored_rows(TWO_DAYS[::-1])

    mean, per_day = card_precision_at_k(frame, scores, k=2)

    assert per_day == [0.5, 0.0]
    assert mean == pytest.approx(0.25)


def test_card_precision_keeps_genuine_cards_of_top():
    frame, scores = scored_rows(
        [(DAY_1, 1, 0, 0.9), (DAY_1, 2, 1, 0.1), (DAY_2, 1, 0, 0.9), (DAY_2, 2, 1, 0.1)]
    )

    _, per_day = card_precision_at_k(frame, scores, k=1)

    assert per_day == [0.0, 0.0]


def test_card_precision_divides_by_k_with_few_cards():
    frame, scores = scored_rows([(DAY_1, 7, 1, 0.4), (DAY_1, 8, 0, 0.2)])

    mean, per_day = card_precision_at_k(frame, scores, k=100)

    assert per_day == [0.01]
    assert mean == pytest.approx(0.01)


def test_card_precision_ties_go_to_lower_card_id():
    rows = [(DAY_1, 5, 1, 0.5), (DAY_1, 3, 0, 0.5), (DAY_1, 9, 1, 0.5)]
    frame, scores = scored_rows(rows)
    shuffled, shuffled_scores = scored_rows(rows[::-1])

    assert card_precision_at_k(frame, scores, k=1)[1] == [0.0]
    assert card_precision_at_k(shuffled, shuffled_scores, k=1)[1] == [0.0]
    assert card_precision_at_k(frame, scores, k=2)[1] == [0.5]


def test_protocol_metrics_known_answers():
    frame, scores = scored_rows(
        [
            (DAY_1, 1, 1, 0.9),
            (DAY_1, 2, 0, 0.8),
            (DAY_1, 3, 1, 0.7),
            (DAY_1, 4, 0, 0.1),
        ]
    )

    metrics = protocol_metrics(frame, scores)

    assert metrics["auc_roc"] == pytest.approx(0.75)
    assert metrics["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["card_precision_at_100"] == pytest.approx(0.02)


def test_fold_windows_of_chapter_3():
    windows = fold_windows(dt.date(2018, 8, 14))

    assert windows.train_start == dt.date(2018, 7, 25)
    assert windows.train_end == dt.date(2018, 7, 31)
    assert windows.valid_start == dt.date(2018, 8, 8)
    assert windows.valid_end == dt.date(2018, 8, 14)


def test_known_cards_lag_eight_days():
    windows = fold_windows(dt.date(2018, 8, 14))
    frauds = pd.DataFrame(
        {
            "day": [
                dt.date(2018, 7, 24),  # before training: never known
                dt.date(2018, 7, 25),  # first training day: known from 08-08
                dt.date(2018, 8, 1),  # first gap day: known from 08-09
                dt.date(2018, 8, 6),  # known from 08-14
                dt.date(2018, 8, 7),  # t - 7 for the last test day: not yet
            ],
            "customer_id": [10, 11, 12, 13, 14],
        }
    )

    known = known_cards_per_day(frauds, windows)

    assert sorted(known) == [DAY_1 + dt.timedelta(days=i) for i in range(7)]
    assert known[DAY_1] == {11}
    assert known[DAY_2] == {11, 12}
    assert known[dt.date(2018, 8, 13)] == {11, 12}
    assert known[dt.date(2018, 8, 14)] == {11, 12, 13}


def test_drop_known_cards_uses_each_rows_day():
    test = pd.DataFrame(
        {
            "day": [DAY_1, DAY_1, DAY_2, DAY_2],
            "customer_id": [11, 12, 11, 12],
            "is_fraud": [0, 1, 0, 1],
        }
    )

    remaining = drop_known_cards(test, {DAY_1: {11}, DAY_2: {11, 12}})

    assert remaining.index.tolist() == [1]


def test_unknown_estimator_is_rejected_before_reading(tmp_path):
    with pytest.raises(ConfigError, match="estimator 'boosted' is unknown"):
        run_command(str(tmp_path / "warehouse"), ["random_forest", "boosted"])


def test_write_docs_replaces_only_its_section(tmp_path):
    page = tmp_path / "quality.md"
    page.write_text(
        "# Quality\n\nbefore\n<!-- test-folds:start -->\nstale figures\n"
        "<!-- test-folds:end -->\nafter\n"
    )
    section = "<!-- test-folds:start -->\nnew\n<!-- test-folds:end -->"

    write_docs(section, "test-folds", page)
    write_docs("<!-- other:start -->\nx\n<!-- other:end -->", "other", page)

    text = page.read_text()
    assert "before\n" + section + "\nafter\n" in text
    assert "stale figures" not in text
    assert text.endswith("<!-- other:start -->\nx\n<!-- other:end -->\n")
