"""Tests for the demo warehouse simulator, on real Parquet files."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from metaguard.simulate import simulate_warehouse

SMALL = {"days": 6, "customers": 400, "terminals": 800, "transactions_per_day": 1000}
DEFAULT_DAYS = 14
START = datetime.date(2024, 1, 1)

TRANSACTIONS_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.int64()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("customer_id", pa.int64()),
        ("terminal_id", pa.int64()),
        ("amount", pa.float64()),
        ("hour", pa.int64()),
        ("user_age_days", pa.int64()),
        ("transaction_count", pa.int64()),
    ]
)
LABELS_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.int64()),
        ("is_fraud", pa.int8()),
        ("fraud_scenario", pa.int8()),
    ]
)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("small")
    return out, simulate_warehouse(out, **SMALL)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("default")
    return out, simulate_warehouse(out, days=DEFAULT_DAYS)


def _partition_dates(days: int) -> list[str]:
    return [(START + datetime.timedelta(days=d)).isoformat() for d in range(days)]


def _read(out: Path, dataset: str) -> pd.DataFrame:
    """Read every partition of ``dataset`` with its date and day index."""
    frames = []
    for folder in sorted((out / dataset).glob("dt=*")):
        frame = pq.read_table(folder / "part-00000.parquet").to_pandas()
        date = datetime.date.fromisoformat(folder.name.removeprefix("dt="))
        frame["dt"] = date
        frame["day"] = (date - START).days
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _contract_broken(frame: pd.DataFrame) -> pd.Series:
    """Flag rows that break the input contract."""
    return (
        frame["amount"].isna()
        | (frame["amount"] <= 0)
        | (frame["amount"] > 10_000_000)
        | ~frame["hour"].between(0, 23)
        | (frame["user_age_days"] < 1)
        | (frame["transaction_count"] < 0)
    )


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_identical_files(
    tmp_path: Path, small_run: tuple[Path, dict]
) -> None:
    out, summary = small_run
    again = simulate_warehouse(tmp_path, **SMALL)

    assert again == {
        **summary,
        "transactions": str(tmp_path / "transactions"),
        "labels": str(tmp_path / "labels"),
    }
    assert _files(tmp_path) == _files(out)


def test_different_seed_changes_data(
    tmp_path: Path, small_run: tuple[Path, dict]
) -> None:
    out, _ = small_run
    simulate_warehouse(tmp_path, seed=8, **SMALL)

    first = _read(out, "transactions")
    other = _read(tmp_path, "transactions")
    assert not first.equals(other)
    assert not first["amount"].head(100).equals(other["amount"].head(100))


def test_rerun_replaces_partitions(tmp_path: Path) -> None:
    arguments = {**SMALL, "days": 2}
    simulate_warehouse(tmp_path, **arguments)
    folder = tmp_path / "transactions" / f"dt={START}"
    stray = folder / "part-00001.parquet"
    stray.write_bytes(b"not from this run")
    before = _files(tmp_path)
    before.pop(str(stray.relative_to(tmp_path)))

    summary = simulate_warehouse(tmp_path, **arguments)

    assert not stray.exists()
    assert _files(tmp_path) == before
    assert len(_read(tmp_path, "transactions")) == summary["rows"]


def test_rerun_warns_about_other_dates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    simulate_warehouse(tmp_path, **{**SMALL, "days": 3})

    with caplog.at_level(logging.WARNING, logger="metaguard.simulate"):
        simulate_warehouse(tmp_path, **{**SMALL, "days": 2})

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "dt=2024-01-03" in warnings[0].getMessage()
    assert (tmp_path / "transactions" / "dt=2024-01-03").is_dir()


def test_layout_has_one_part_and_marker(small_run: tuple[Path, dict]) -> None:
    out, summary = small_run
    expected = [f"dt={date}" for date in _partition_dates(SMALL["days"])]

    for dataset in ("transactions", "labels"):
        folders = sorted(p.name for p in (out / dataset).iterdir())
        assert folders == expected
        for name in folders:
            files = sorted(p.name for p in (out / dataset / name).iterdir())
            assert files == ["_SUCCESS", "part-00000.parquet"]
            assert (out / dataset / name / "_SUCCESS").stat().st_size == 0
    assert summary["transactions"] == str(out / "transactions")
    assert summary["labels"] == str(out / "labels")


def test_schemas_match_layout(small_run: tuple[Path, dict]) -> None:
    out, _ = small_run
    for date in _partition_dates(SMALL["days"]):
        transactions = pq.read_schema(
            out / "transactions" / f"dt={date}" / "part-00000.parquet"
        )
        labels = pq.read_schema(out / "labels" / f"dt={date}" / "part-00000.parquet")
        assert transactions.remove_metadata() == TRANSACTIONS_SCHEMA
        assert labels.remove_metadata() == LABELS_SCHEMA


def test_transaction_ids_unique_in_time_order(small_run: tuple[Path, dict]) -> None:
    out, summary = small_run
    transactions = _read(out, "transactions")

    assert transactions["transaction_id"].is_unique
    assert transactions["transaction_id"].is_monotonic_increasing
    assert transactions["event_time"].is_monotonic_increasing
    assert len(transactions) == summary["rows"]


def test_labels_match_transactions(small_run: tuple[Path, dict]) -> None:
    out, _ = small_run
    transactions = _read(out, "transactions")
    labels = _read(out, "labels")

    assert labels["transaction_id"].tolist() == transactions["transaction_id"].tolist()
    assert labels["dt"].tolist() == transactions["dt"].tolist()
    assert ((labels["fraud_scenario"] != 0) == (labels["is_fraud"] == 1)).all()
    assert labels["fraud_scenario"].between(0, 4).all()


def test_event_time_and_hour_fit_partition(small_run: tuple[Path, dict]) -> None:
    out, _ = small_run
    transactions = _read(out, "transactions")
    valid = transactions[~_contract_broken(transactions)]

    event_date = transactions["event_time"].dt.date
    assert (event_date == transactions["dt"]).all()
    assert (valid["hour"] == valid["event_time"].dt.hour).all()


def test_transaction_count_adds_up_across_days(small_run: tuple[Path, dict]) -> None:
    out, _ = small_run
    transactions = _read(out, "transactions")
    by_customer = transactions.groupby("customer_id")["transaction_count"]

    steps = by_customer.diff().dropna()
    assert (steps == 1).all()
    assert (transactions["transaction_count"] >= 0).all()
    assert transactions["day"].groupby(transactions["customer_id"]).nunique().max() > 1


def test_user_age_days_grows_by_day(small_run: tuple[Path, dict]) -> None:
    out, _ = small_run
    transactions = _read(out, "transactions")
    valid = transactions[~_contract_broken(transactions)]

    opening = valid["day"] - valid["user_age_days"]
    assert opening.groupby(valid["customer_id"]).nunique().max() == 1
    assert (valid["user_age_days"] >= 1).all()


def test_new_accounts_open_during_run(small_run: tuple[Path, dict]) -> None:
    out, _ = small_run
    transactions = _read(out, "transactions")
    valid = transactions[~_contract_broken(transactions)]

    opened = valid[(valid["user_age_days"] == 1) & (valid["day"] > 0)]
    assert opened["customer_id"].nunique() > 0
    first_rows = valid.groupby("customer_id").first().loc[opened["customer_id"]]
    assert (first_rows["transaction_count"] == 0).all()


def test_fraud_rate_in_range(default_run: tuple[Path, dict]) -> None:
    out, summary = default_run
    labels = _read(out, "labels")
    rate = labels["is_fraud"].mean()

    assert 0.005 <= rate <= 0.02
    assert summary["frauds"] == labels["is_fraud"].sum()
    assert summary["fraud_rate"] == pytest.approx(rate)
    scenarios = labels.loc[labels["is_fraud"] == 1, "fraud_scenario"]
    assert sorted(scenarios.unique()) == [1, 2, 3, 4]


def test_fraud_patterns_show_in_contract_fields(
    default_run: tuple[Path, dict],
) -> None:
    out, _ = default_run
    rows = _read(out, "transactions").merge(
        _read(out, "labels")[["transaction_id", "fraud_scenario"]]
    )
    rows = rows[~_contract_broken(rows)]
    fields = ["amount", "hour", "user_age_days"]
    median = rows.groupby("fraud_scenario")[fields].median()

    assert median.loc[1, "amount"] > 5 * median.loc[0, "amount"]
    assert median.loc[1, "hour"] < 6
    assert median.loc[1, "user_age_days"] <= 10
    assert median.loc[3, "amount"] > 3 * median.loc[0, "amount"]
    assert median.loc[4, "amount"] <= 2.0


def test_contract_breaking_rows_are_rare(default_run: tuple[Path, dict]) -> None:
    out, summary = default_run
    transactions = _read(out, "transactions")
    broken = _contract_broken(transactions)
    per_day = broken.groupby(transactions["dt"]).agg(["sum", "size"])

    assert broken.sum() > 0
    assert broken.sum() == summary["contract_breaking_rows"]
    assert (per_day["sum"] <= 3).all()
    assert (per_day["sum"] < 0.01 * per_day["size"]).all()


def test_contract_breaking_rows_cover_each_kind(
    default_run: tuple[Path, dict],
) -> None:
    out, _ = default_run
    transactions = _read(out, "transactions")
    labels = _read(out, "labels")
    broken = transactions[_contract_broken(transactions)]

    assert broken["amount"].isna().any()
    assert (broken["amount"] == 0).any()
    assert (broken["amount"] < 0).any()
    assert (broken["hour"] == 24).any()
    assert (broken["user_age_days"] == 0).any()
    assert broken["transaction_id"].isin(labels["transaction_id"]).all()


def test_null_amount_is_arrow_null(default_run: tuple[Path, dict]) -> None:
    out, _ = default_run
    table = pq.read_table(out / "transactions")
    amount = table.column("amount")

    assert amount.null_count > 0
    assert not pc.any(pc.is_nan(amount)).as_py()


def test_progress_logged_every_ten_days(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="metaguard.simulate"):
        simulate_warehouse(tmp_path, **{**SMALL, "days": 12})

    messages = [r.getMessage() for r in caplog.records]
    assert any("Wrote 10/12 day(s)" in m for m in messages)
    assert any("Wrote 12/12 day(s)" in m for m in messages)
    assert "contract-breaking rows" in messages[-1]
    assert len(messages) == 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"days": 0}, r"days=0 is invalid; expected an integer >= 1"),
        ({"days": -3}, r"days=-3 is invalid; expected an integer >= 1"),
        ({"days": 2.5}, r"days=2\.5 is invalid; expected an integer >= 1"),
        ({"days": True}, r"days=True is invalid; expected an integer >= 1"),
        ({"seed": -1}, r"seed=-1 is invalid; expected an integer >= 0"),
        ({"customers": 0}, r"customers=0 is invalid; expected an integer >= 1"),
        ({"terminals": 0}, r"terminals=0 is invalid; expected an integer >= 1"),
        (
            {"transactions_per_day": 0},
            r"transactions_per_day=0 is invalid; expected an integer >= 1",
        ),
        (
            {"start": "2024-01-01"},
            r"start='2024-01-01' is invalid; expected a datetime\.date",
        ),
        (
            {"start": datetime.datetime(2024, 1, 1)},
            r"start=datetime\.datetime\(2024, 1, 1, 0, 0\) is invalid",
        ),
        (
            {"start": datetime.date(9999, 12, 30), "days": 3},
            r"days=3 is invalid for start=9999-12-30; the last day would be after",
        ),
    ],
    ids=[
        "days-zero",
        "days-negative",
        "days-float",
        "days-bool",
        "seed-negative",
        "customers-zero",
        "terminals-zero",
        "volume-zero",
        "start-string",
        "start-datetime",
        "end-after-max-date",
    ],
)
def test_invalid_argument_raises(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_warehouse(tmp_path, **{"days": 1, **arguments})
    assert list(tmp_path.iterdir()) == []


def test_out_file_raises(tmp_path: Path) -> None:
    out = tmp_path / "warehouse"
    out.write_text("not a directory")

    with pytest.raises(ValueError, match=r"out='.*warehouse' is a file"):
        simulate_warehouse(out, days=1)
