"""Unit tests of the terminal fraud-day history features."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from metaguard.history import HistoryStore, add_history_features
from tests.unit.test_history import DAY, at, random_warehouse, transactions, write_day

FRAUD_DAYS = "terminal_fraud_days_30d"
SINCE_FIRST = "terminal_days_since_first_fraud_30d"
SINCE_LAST = "terminal_days_since_last_fraud_30d"


def write_terminal_history(warehouse, terminal: int, fraud_offsets: set[int]) -> None:
    """Write one transaction of ``terminal`` on each of the 40 days before DAY."""
    for offset in range(1, 41):
        day = DAY - dt.timedelta(days=offset)
        row = (offset, at(DAY, "12:00:00", offset), 100 + offset, terminal, 10.0)
        write_day(warehouse, [row], {offset: int(offset in fraud_offsets)}, day)


def test_fraud_days_known_answers(tmp_path):
    warehouse = tmp_path / "warehouse"
    # Offsets 6 and 37 lie outside the 30 days ending 7 days before DAY.
    write_terminal_history(warehouse, terminal=9, fraud_offsets={6, 7, 20, 36, 37})
    store = HistoryStore(tmp_path / "state", warehouse)
    today = transactions([(1000, at(DAY), 1, 9, 5.0), (1001, at(DAY), 2, 8, 5.0)])

    result = add_history_features(today, DAY, store).set_index("transaction_id")

    assert result.loc[1000, FRAUD_DAYS] == 3
    assert result.loc[1000, SINCE_FIRST] == 36
    assert result.loc[1000, SINCE_LAST] == 7
    assert result.loc[1001, FRAUD_DAYS] == 0
    assert result.loc[1001, SINCE_FIRST] == 37
    assert result.loc[1001, SINCE_LAST] == 37


def test_fraud_days_follow_label_delay(tmp_path):
    warehouse = tmp_path / "warehouse"
    write_terminal_history(warehouse, terminal=9, fraud_offsets={2, 3, 32, 33})
    store = HistoryStore(tmp_path / "state", warehouse, label_delay_days=3)
    today = transactions([(1000, at(DAY), 1, 9, 5.0), (1001, at(DAY), 2, 8, 5.0)])

    result = add_history_features(today, DAY, store).set_index("transaction_id")

    assert result.loc[1000, FRAUD_DAYS] == 2
    assert result.loc[1000, SINCE_FIRST] == 32
    assert result.loc[1000, SINCE_LAST] == 3
    assert result.loc[1001, SINCE_FIRST] == 33


def test_row_without_terminal_gets_no_fraud_days(tmp_path):
    warehouse = tmp_path / "warehouse"
    write_terminal_history(warehouse, terminal=9, fraud_offsets={10})
    store = HistoryStore(tmp_path / "state", warehouse)
    today = transactions([(1000, at(DAY), 1, None, 5.0), (1001, at(DAY), 2, 9, 5.0)])

    result = add_history_features(today, DAY, store).set_index("transaction_id")

    assert result.loc[1000, FRAUD_DAYS] == 0
    assert result.loc[1000, SINCE_FIRST] == 37
    assert result.loc[1000, SINCE_LAST] == 37
    assert result.loc[1001, SINCE_LAST] == 10


def brute_force_fraud_days(everything: pd.DataFrame, day: dt.date, terminal) -> tuple:
    """Return fraud days, days since the first and since the last, by scanning rows."""
    rows = everything[
        (everything["terminal_id"] == terminal) & everything["is_fraud"].eq(1)
    ]
    offsets = {(day - stamp.date()).days for stamp in rows["event_time"]}
    offsets = {o for o in offsets if 7 <= o <= 36}
    if not offsets:
        return 0, 37, 37
    return len(offsets), max(offsets), min(offsets)


@pytest.mark.parametrize("seed", [3, 11])
def test_random_warehouse_fraud_days_match_brute_force(tmp_path, seed):
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(45)]
    everything = random_warehouse(tmp_path / "warehouse", days, seed=seed)
    store = HistoryStore(tmp_path / "state", tmp_path / "warehouse")
    day = days[-1]
    today = everything[everything["event_time"].dt.date == day]

    result = add_history_features(today.drop(columns="is_fraud"), day, store)

    expected = np.array(
        [brute_force_fraud_days(everything, day, t) for t in result["terminal_id"]],
        dtype="float64",
    )
    actual = result[[FRAUD_DAYS, SINCE_FIRST, SINCE_LAST]].to_numpy()
    np.testing.assert_array_equal(actual, expected)
