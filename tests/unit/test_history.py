"""Unit tests of the history features and of their per-day state."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose

from metaguard import history_state
from metaguard.exceptions import ModelFeatureError, SchemaMismatch
from metaguard.history import HISTORY_FEATURES, HistoryStore, add_history_features
from metaguard.history_state import CUSTOMERS, TERMINALS

DAY = dt.date(2024, 3, 31)  # a Sunday
COLUMNS = ["transaction_id", "event_time", "customer_id", "terminal_id", "amount"]


def at(day: dt.date, clock: str = "12:00:00", days_before: int = 0) -> pd.Timestamp:
    """Return a UTC timestamp ``days_before`` days before ``day`` at ``clock``."""
    moment = dt.datetime.combine(day, dt.time.fromisoformat(clock), dt.UTC)
    return pd.Timestamp(moment - dt.timedelta(days=days_before))


def transactions(rows: list[tuple]) -> pd.DataFrame:
    """Build contract-shaped rows from (id, event_time, customer, terminal, amount)."""
    frame = pd.DataFrame(
        rows,
        columns=COLUMNS,
    )
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True).dt.as_unit("us")
    frame["hour"] = frame["event_time"].dt.hour.astype("int64")
    frame["user_age_days"] = 1
    frame["transaction_count"] = 0
    return frame


def write_day(
    warehouse: Path,
    rows: list[tuple],
    labels: dict | None = None,
    day: dt.date | None = None,
) -> pd.DataFrame:
    """Write one transactions partition (and labels if given); return its rows."""
    frame = transactions(rows)
    day = day or frame["event_time"].iloc[0].date()
    folder = warehouse / "transactions" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, folder / "p.parquet")
    if labels is not None:
        write_labels(warehouse, day, labels)
    return frame


def write_days(warehouse: Path, rows: list[tuple], labels: dict | None = None) -> None:
    """Write rows into one partition per UTC day, with their labels if given."""
    by_day: dict[dt.date, list[tuple]] = {}
    for row in rows:
        by_day.setdefault(row[1].date(), []).append(row)
    for day, day_rows in by_day.items():
        day_labels = None
        if labels is not None:
            day_labels = {row[0]: labels[row[0]] for row in day_rows}
        write_day(warehouse, day_rows, day_labels, day)


def write_labels(warehouse: Path, day: dt.date, labels: dict) -> None:
    """Write a labels partition from {transaction_id: is_fraud}."""
    folder = warehouse / "labels" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "transaction_id": list(labels),
            "is_fraud": pa.array(list(labels.values()), pa.int8()),
        }
    )
    pq.write_table(table, folder / "p.parquet")


def features_of(frame: pd.DataFrame, store: HistoryStore, day: dt.date = DAY) -> dict:
    """Return the features of each transaction id as {id: {feature: value}}."""
    result = add_history_features(frame, day, store)
    return result.set_index("transaction_id")[list(HISTORY_FEATURES)].to_dict("index")


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse"


@pytest.fixture
def store(tmp_path: Path, warehouse: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "state", warehouse)


def test_feature_names_stable_and_unique():
    assert HISTORY_FEATURES[:2] == ("is_weekend", "is_night")
    assert len(HISTORY_FEATURES) == 20
    assert len(set(HISTORY_FEATURES)) == len(HISTORY_FEATURES)


def test_customer_windows_known_answers(warehouse, store):
    earlier = [
        (1, at(DAY, "11:59:59", 30), 5, 50, 50.0),
        (2, at(DAY, "12:00:01", 30), 5, 50, 60.0),
        (3, at(DAY, "09:00:00", 20), 5, 50, 40.0),
        (4, at(DAY, "11:00:00", 5), 5, 50, 30.0),
        (5, at(DAY, "10:00:00", 1), 5, 50, 10.0),
        (6, at(DAY, "12:00:00", 1), 5, 50, 20.0),
    ]
    write_days(warehouse, earlier)
    today = transactions(
        [(8, at(DAY, "12:00:00"), 5, 50, 40.0), (7, at(DAY, "08:00:00"), 5, 50, 100.0)]
    )

    values = features_of(today, store)

    noon = values[8]
    assert noon["customer_tx_count_1d"] == 2  # the row at exactly t - 1 day is out
    assert noon["customer_mean_amount_1d"] == pytest.approx(70.0)
    assert noon["customer_amount_ratio_1d"] == pytest.approx(40.0 / 70.0)
    assert noon["customer_tx_count_7d"] == 5
    assert noon["customer_mean_amount_7d"] == pytest.approx(40.0)
    assert noon["customer_tx_count_30d"] == 7  # 11:59:59 thirty days back is out
    assert noon["customer_mean_amount_30d"] == pytest.approx(300.0 / 7)
    morning = values[7]
    assert morning["customer_tx_count_1d"] == 3  # the later noon row is not counted
    assert morning["customer_mean_amount_1d"] == pytest.approx(130.0 / 3)


def test_same_time_rows_all_count(store):
    today = transactions(
        [(1, at(DAY, "10:00:00"), 5, 50, 10.0), (2, at(DAY, "10:00:00"), 5, 51, 30.0)]
    )

    values = features_of(today, store)

    assert values[1]["customer_tx_count_1d"] == 2
    assert values[2]["customer_tx_count_1d"] == 2
    assert values[1]["customer_mean_amount_1d"] == pytest.approx(20.0)


def test_terminal_delay_excludes_young_labels(warehouse, store):
    earlier = [
        (1, at(DAY, "13:00:00", 8), 1, 9, 10.0),
        (2, at(DAY, "08:00:00", 7), 2, 9, 10.0),
        (3, at(DAY, "09:00:00", 6), 3, 9, 10.0),
        (4, at(DAY, "09:00:00", 1), 4, 9, 10.0),
    ]
    write_days(warehouse, earlier, labels={1: 0, 2: 1, 3: 1, 4: 1})
    today = transactions(
        [(10, at(DAY, "12:00:00"), 7, 9, 10.0), (11, at(DAY, "06:00:00"), 8, 9, 10.0)]
    )

    values = features_of(today, store)

    noon, early = values[10], values[11]
    assert noon["terminal_tx_count_1d"] == 2  # D-8 13:00 and D-7 08:00
    assert noon["terminal_fraud_share_1d"] == pytest.approx(0.5)
    assert noon["terminal_tx_count_7d"] == 2  # D-6 and D-1 are younger than 7 days
    assert early["terminal_tx_count_1d"] == 1  # D-7 08:00 is after t - 7 days
    assert early["terminal_fraud_share_1d"] == 0.0


def test_terminal_30d_window_lower_bound(warehouse, store):
    earlier = [
        (1, at(DAY, "12:00:00", 37), 2, 9, 1.0),
        (2, at(DAY, "12:00:01", 37), 1, 9, 1.0),
    ]
    write_days(warehouse, earlier, labels={1: 0, 2: 1})
    today = transactions([(10, at(DAY, "12:00:00"), 7, 9, 10.0)])

    values = features_of(today, store)[10]

    assert values["terminal_tx_count_30d"] == 1
    assert values["terminal_fraud_share_30d"] == 1.0


def test_no_history_gives_fill_values(store, caplog):
    today = transactions([(1, at(DAY, "03:00:00"), 5, 9, 25.0)])

    with caplog.at_level(logging.WARNING, logger="metaguard.history"):
        values = features_of(today, store)[1]

    assert values["customer_tx_count_30d"] == 1
    assert values["customer_mean_amount_30d"] == 25.0
    assert values["customer_amount_ratio_30d"] == 1.0
    assert values["terminal_tx_count_30d"] == 0.0
    assert values["terminal_fraud_share_30d"] == 0.0
    assert "37 of the 37 history days" in caplog.text


def test_rows_without_keys_get_fill_values(store):
    today = transactions([(1, at(DAY), 5, 9, 25.0), (2, at(DAY), 5, 9, 30.0)])
    today["customer_id"] = today["customer_id"].astype("Int64")
    today.loc[1, "customer_id"] = pd.NA

    values = features_of(today, store)

    assert values[1]["customer_tx_count_1d"] == 1
    assert values[2]["customer_tx_count_1d"] == 1
    assert values[2]["customer_mean_amount_1d"] == 30.0
    assert values[2]["terminal_tx_count_1d"] == 0.0


@pytest.mark.parametrize(
    ("moment", "weekend", "night"),
    [
        ("2024-03-30 06:59:59", 1.0, 1.0),
        ("2024-04-01 07:00:00", 0.0, 0.0),
        ("2024-03-31 23:59:59", 1.0, 0.0),
        ("2024-03-29 00:00:00", 0.0, 1.0),
    ],
    ids=["saturday-06h", "monday-07h", "sunday-23h", "friday-00h"],
)
def test_calendar_flags(store, moment, weekend, night):
    stamp = pd.Timestamp(moment, tz="UTC")
    frame = transactions([(1, stamp, 1, 1, 1.0)])

    result = add_history_features(frame, stamp.date(), store)

    assert result["is_weekend"].tolist() == [weekend]
    assert result["is_night"].tolist() == [night]


def test_output_keeps_rows_index_and_dtypes(warehouse, store):
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])
    today = transactions(
        [(10 + i, at(DAY, f"{i:02d}:30:00"), 5 + i % 2, 9, 1.0 + i) for i in range(8)]
    )
    shuffled = today.sample(frac=1.0, random_state=0)
    shuffled.index = [f"row-{i}" for i in range(len(shuffled))]

    ordered = add_history_features(today, DAY, store)
    result = add_history_features(shuffled, DAY, store)

    assert list(result.index) == list(shuffled.index)
    assert result["transaction_id"].tolist() == shuffled["transaction_id"].tolist()
    assert all(result[name].dtype == np.float64 for name in HISTORY_FEATURES)
    expected = ordered.set_index("transaction_id").loc[result["transaction_id"]]
    assert_allclose(result[list(HISTORY_FEATURES)], expected[list(HISTORY_FEATURES)])


def test_chunk_with_day_rows_matches_whole_day(warehouse, store):
    today = transactions(
        [(i, at(DAY, f"{i:02d}:00:00"), i % 3, i % 2, float(i + 1)) for i in range(12)]
    )

    whole = add_history_features(today, DAY, store)
    chunk = add_history_features(today.iloc[6:], DAY, store, day_rows=today)

    names = list(HISTORY_FEATURES)
    assert_allclose(chunk[names], whole.iloc[6:][names])


def test_empty_frame_gets_empty_columns(store):
    result = add_history_features(transactions([]), DAY, store)

    assert len(result) == 0
    assert all(name in result.columns for name in HISTORY_FEATURES)


def test_missing_required_column_raises(store):
    today = transactions([(1, at(DAY), 5, 9, 25.0)]).drop(columns="terminal_id")

    with pytest.raises(ModelFeatureError, match=r"lack column\(s\) \['terminal_id'\]"):
        add_history_features(today, DAY, store)


@pytest.mark.parametrize("delay", [0, -3], ids=["zero", "negative"])
def test_label_delay_below_one_raises(tmp_path, delay):
    with pytest.raises(ValueError, match="expected at least 1"):
        HistoryStore(tmp_path / "state", tmp_path / "warehouse", label_delay_days=delay)


def random_warehouse(warehouse: Path, days: list[dt.date], seed: int) -> pd.DataFrame:
    """Write random transactions and labels for ``days``; return all rows."""
    rng = np.random.default_rng(seed)
    frames, next_id = [], 0
    for day in days:
        count = int(rng.integers(5, 25))
        seconds = np.sort(rng.integers(0, 86_400, count))
        start = pd.Timestamp(day.isoformat(), tz="UTC")
        rows = [
            (
                next_id + i,
                start + pd.Timedelta(seconds=int(seconds[i])),
                int(rng.integers(0, 6)),
                int(rng.integers(0, 4)),
                float(rng.integers(1, 10_000)) / 100,
            )
            for i in range(count)
        ]
        fraud = (rng.random(count) < 0.2).astype(int)
        labels = {row[0]: int(flag) for row, flag in zip(rows, fraud, strict=True)}
        frame = write_day(warehouse, rows, labels, day)
        frames.append(frame.assign(is_fraud=fraud))
        next_id += count
    return pd.concat(frames, ignore_index=True)


def brute_force(history_rows: pd.DataFrame, row: pd.Series, delay: int) -> dict:
    """Compute one row's window features by scanning every earlier row."""
    values = {}
    times, t = history_rows["event_time"], row["event_time"]
    for w in (1, 7, 30):
        window = pd.Timedelta(days=w)
        mine = history_rows[
            (history_rows["customer_id"] == row["customer_id"])
            & (times > t - window)
            & (times <= t)
        ]
        values[f"customer_tx_count_{w}d"] = len(mine)
        values[f"customer_mean_amount_{w}d"] = mine["amount"].mean()
        lag = pd.Timedelta(days=delay)
        terminal = history_rows[
            (history_rows["terminal_id"] == row["terminal_id"])
            & (times > t - lag - window)
            & (times <= t - lag)
        ]
        values[f"terminal_tx_count_{w}d"] = len(terminal)
        values[f"terminal_fraud_share_{w}d"] = (
            terminal["is_fraud"].mean() if len(terminal) else 0.0
        )
    return values


@pytest.mark.parametrize("delay", [7, 3], ids=["delay-7", "delay-3"])
def test_random_warehouse_matches_brute_force(tmp_path, delay):
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(45)]
    everything = random_warehouse(tmp_path / "warehouse", days, seed=7)
    store = HistoryStore(tmp_path / "state", tmp_path / "warehouse", delay)

    for day in days[-3:]:
        today = everything[everything["event_time"].dt.date == day]
        result = add_history_features(today.drop(columns="is_fraud"), day, store)
        for position, (_, row) in enumerate(today.iterrows()):
            expected = brute_force(everything, row, delay)
            for name, value in expected.items():
                got = result[name].iloc[position]
                assert got == pytest.approx(value, rel=1e-12), (day, name)


def test_state_layout_and_types(warehouse, store):
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)], labels={1: 1})
    yesterday = DAY - dt.timedelta(days=1)

    store.ensure_day(yesterday)

    customers = pq.read_table(store.state_path("customers", yesterday))
    terminals = pq.read_table(store.state_path("terminals", yesterday))
    events = pq.read_table(store.state_path("customer_events", yesterday))
    assert customers.column_names == ["customer_id", "tx_count", "amount_sum"]
    assert terminals.to_pylist() == [
        {"terminal_id": 9, "tx_count": 1, "fraud_count": 1}
    ]
    assert events.schema.field("event_time").type == pa.timestamp("us", tz="UTC")


def test_state_rebuilt_when_deleted(warehouse, store):
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])
    today = transactions([(2, at(DAY), 5, 9, 30.0)])
    before = features_of(today, store)
    path = store.state_path("customers", DAY - dt.timedelta(days=1))
    path.unlink()

    after = features_of(today, store)

    assert path.exists()
    assert after == before


def test_state_reused_when_present(warehouse, store, monkeypatch):
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])
    today = transactions([(2, at(DAY), 5, 9, 30.0)])
    before = features_of(today, store)

    def fail(*args, **kwargs):
        raise AssertionError("the warehouse was read although the state is current")

    monkeypatch.setattr(history_state, "_read_history_rows", fail)
    after = features_of(today, store)

    assert after == before


@pytest.mark.parametrize("id_type", ["int", "string"])
def test_labels_arriving_refresh_fraud_counts(warehouse, store, id_type):
    day = DAY - dt.timedelta(days=7)
    tid = 1 if id_type == "int" else "tx-1"
    write_day(warehouse, [(tid, at(DAY, "10:00:00", 7), 5, 9, 10.0)])
    first = store.ensure_day_state(day)
    write_labels(warehouse, day, {tid: 1})

    second = store.ensure_day_state(day)

    assert (first.status, first.labelled) == ("built", False)
    assert (second.status, second.labelled) == ("built", True)
    assert store.read_aggregates(TERMINALS, day)["fraud_count"].tolist() == [1]
    assert store.ensure_day_state(day).status == "reused"


def test_unlabelled_old_day_is_warned(warehouse, store, caplog):
    write_day(warehouse, [(1, at(DAY, "10:00:00", 7), 5, 9, 10.0)])
    today = transactions([(2, at(DAY), 5, 9, 30.0)])

    with caplog.at_level(logging.WARNING, logger="metaguard.history"):
        features_of(today, store)

    assert "1 terminal history days" in caplog.text


def test_rewritten_partition_rebuilds_state(warehouse, store):
    day = DAY - dt.timedelta(days=1)
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])
    store.ensure_day(day)
    for path in (warehouse / "transactions" / f"dt={day}").iterdir():
        path.unlink()
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 99.0)], day=day)

    state = store.ensure_day_state(day)

    assert state.status == "built"
    assert store.read_aggregates(CUSTOMERS, day)["amount_sum"].tolist() == [99.0]


def test_state_kept_when_partition_removed(warehouse, store):
    day = DAY - dt.timedelta(days=1)
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])
    store.ensure_day(day)
    for path in (warehouse / "transactions" / f"dt={day}").iterdir():
        path.unlink()

    state = store.ensure_day_state(day)

    assert state.status == "reused"
    assert store.read_aggregates(CUSTOMERS, day)["tx_count"].tolist() == [1]


def test_markers_and_hidden_files_ignored(warehouse, store):
    day = DAY - dt.timedelta(days=1)
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])
    folder = warehouse / "transactions" / f"dt={day}"
    (folder / "_SUCCESS").write_text("")
    (folder / ".p.parquet.tmp").write_text("not parquet")

    state = store.ensure_day_state(day)

    assert state.status == "built"
    assert store.read_aggregates(CUSTOMERS, day)["tx_count"].tolist() == [1]


def test_partition_without_history_columns_raises(warehouse, store):
    day = DAY - dt.timedelta(days=1)
    frame = write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])
    folder = warehouse / "transactions" / f"dt={day}"
    without = frame.drop(columns="terminal_id")
    table = pa.Table.from_pandas(without, preserve_index=False)
    pq.write_table(table, folder / "p.parquet")

    with pytest.raises(SchemaMismatch, match=r"column\(s\) \['terminal_id'\]"):
        store.ensure_day(day)


def test_failed_write_leaves_no_file(warehouse, store, monkeypatch):
    day = DAY - dt.timedelta(days=1)
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(history_state.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.ensure_day(day)

    folder = store.state_path("customer_events", day).parent
    assert list(folder.iterdir()) == []


def test_build_leaves_no_temporary_files(warehouse, store):
    day = DAY - dt.timedelta(days=1)
    write_day(warehouse, [(1, at(DAY, "10:00:00", 1), 5, 9, 10.0)])

    store.ensure_day(day)

    names = {p.name for p in store.state_dir.rglob("*") if p.is_file()}
    assert names == {"part.parquet"}
    assert len(list(store.state_dir.rglob("*.parquet"))) == 4


def test_write_replaces_whole_file(tmp_path, monkeypatch):
    target = tmp_path / "dt=2024-01-01" / "part.parquet"
    history_state._write_atomic(pa.table({"a": [1]}), target)
    calls = []
    original = os.replace

    def recording_replace(source, destination):
        calls.append((Path(source).name, Path(destination)))
        original(source, destination)

    monkeypatch.setattr(history_state.os, "replace", recording_replace)
    history_state._write_atomic(pa.table({"a": [2, 3]}), target)

    assert pq.read_table(target).column("a").to_pylist() == [2, 3]
    assert calls[0][0].startswith(".")
    assert calls[0][1] == target


def test_string_ids_supported(warehouse, store):
    earlier = [
        ("a", at(DAY, "10:00:00", 1), "card-5", "pos-9", 10.0),
        ("b", at(DAY, "10:00:00", 7), "card-5", "pos-9", 20.0),
    ]
    write_days(warehouse, earlier, labels={"a": 0, "b": 1})
    today = transactions([("c", at(DAY), "card-5", "pos-9", 30.0)])

    values = features_of(today, store)["c"]

    assert values["customer_tx_count_7d"] == 2
    assert values["customer_mean_amount_7d"] == pytest.approx(20.0)
    assert values["terminal_tx_count_1d"] == 1
    assert values["terminal_fraud_share_1d"] == 1.0
