"""Measure the history features on the handbook warehouse.

Four commands, each printing Markdown tables for docs/history-features.md:

- ``agreement``: share of rows per feature that match the handbook's
  reference features, over all 21 reference days;
- ``boundaries``: the same share for day-granular windows, which sum whole
  earlier days and would need no event rows;
- ``cost``: seconds to compute one day's features with cold, warm and
  nightly state, and the size of the state folder;
- ``models``: AUC ROC, average precision and Card Precision@100 of
  scikit-learn estimators on the handbook's Chapter 3 split.

Run from the repository root, for example::

    PYTHONPATH=plugins .venv/bin/python docs/history_experiments.py cost

The state is written to a temporary folder and deleted afterwards; nothing is
written to the handbook or the repository.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from metaguard.history import HISTORY_FEATURES, HistoryStore, add_history_features
from metaguard.history_state import CUSTOMERS, TERMINALS

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO.parent / "shared" / "data" / "handbook"
REFERENCE_DAYS = pd.date_range("2018-07-25", "2018-08-14").date
TRAIN_DAYS = pd.date_range("2018-07-25", "2018-07-31").date
TEST_DAYS = pd.date_range("2018-08-08", "2018-08-14").date
CONTRACT = ["amount", "hour", "user_age_days", "transaction_count"]
HANDBOOK_NAMES = {"is_weekend": "TX_DURING_WEEKEND", "is_night": "TX_DURING_NIGHT"}
for _w in (1, 7, 30):
    HANDBOOK_NAMES |= {
        f"customer_tx_count_{_w}d": f"CUSTOMER_ID_NB_TX_{_w}DAY_WINDOW",
        f"customer_mean_amount_{_w}d": f"CUSTOMER_ID_AVG_AMOUNT_{_w}DAY_WINDOW",
        f"terminal_tx_count_{_w}d": f"TERMINAL_ID_NB_TX_{_w}DAY_WINDOW",
        f"terminal_fraud_share_{_w}d": f"TERMINAL_ID_RISK_{_w}DAY_WINDOW",
    }


def read_partition(table: str, day: dt.date) -> pd.DataFrame:
    """Read one day of a handbook table."""
    return pd.read_parquet(HANDBOOK / table / f"dt={day.isoformat()}")


def featured_day(store: HistoryStore, day: dt.date) -> pd.DataFrame:
    """Return a day's transactions with history features and labels."""
    frame = add_history_features(read_partition("transactions", day), day, store)
    labels = read_partition("labels", day)[["transaction_id", "is_fraud"]]
    return frame.merge(labels, on="transaction_id").assign(day=day)


def agreement(state_dir: Path) -> None:
    """Print the share of rows per feature equal to the reference, all 21 days."""
    store = HistoryStore(state_dir, HANDBOOK)
    matches: dict[str, list[np.ndarray]] = {name: [] for name in HANDBOOK_NAMES}
    for day in REFERENCE_DAYS:
        ours = add_history_features(read_partition("transactions", day), day, store)
        reference = pd.read_parquet(HANDBOOK / "reference-features" / f"{day}.parquet")
        reference = reference.set_index("TRANSACTION_ID").loc[ours["transaction_id"]]
        for name, column in HANDBOOK_NAMES.items():
            same = np.isclose(ours[name], reference[column], rtol=1e-9, atol=1e-12)
            matches[name].append(same)
    rows = sum(len(m) for m in matches["is_night"])
    print(f"{len(REFERENCE_DAYS)} days, {rows} rows\n")
    print("| feature | rows equal to the reference | share |")
    print("| --- | --- | --- |")
    for name, parts in matches.items():
        same = np.concatenate(parts)
        print(f"| {name} | {int(same.sum())} of {len(same)} | {same.mean():.6f} |")


def day_granular(store: HistoryStore, frame: pd.DataFrame, day: dt.date) -> dict:
    """Compute count features from whole earlier days plus the same day so far.

    A customer window of ``w`` days is the same day up to the transaction and
    the ``w - 1`` days before it. A terminal window is the ``w`` whole days
    ending 7 days (the default label delay) before the transaction's day.
    """
    ordered = frame.sort_values(["event_time", "transaction_id"])
    same_day = ordered.groupby("customer_id").cumcount().reindex(frame.index) + 1
    values = {}
    for w in (1, 7, 30):
        customers = _summed(store, CUSTOMERS, day, range(1, w))
        terminals = _summed(store, TERMINALS, day, range(7, 7 + w))
        values[f"customer_tx_count_{w}d"] = (
            same_day.to_numpy()
            + customers.reindex(frame["customer_id"])["tx_count"].fillna(0).to_numpy()
        )
        values[f"terminal_tx_count_{w}d"] = (
            terminals.reindex(frame["terminal_id"])["tx_count"].fillna(0).to_numpy()
        )
    return values


def _summed(store: HistoryStore, entity, day: dt.date, offsets: range) -> pd.DataFrame:
    days = [day - dt.timedelta(days=o) for o in offsets]
    frames = [store.read_aggregates(entity, d) for d in days]
    frames = [f for f in frames if f is not None]
    if not frames:
        return pd.DataFrame(columns=["tx_count"], dtype="float64")
    return pd.concat(frames).groupby(entity.key)[["tx_count"]].sum()


def boundaries(state_dir: Path) -> None:
    """Print the share of rows whose day-granular counts equal the reference."""
    store = HistoryStore(state_dir, HANDBOOK)
    equal: dict[str, list[np.ndarray]] = {}
    for day in REFERENCE_DAYS:
        frame = read_partition("transactions", day)
        add_history_features(frame, day, store)
        reference = pd.read_parquet(HANDBOOK / "reference-features" / f"{day}.parquet")
        reference = reference.set_index("TRANSACTION_ID").loc[frame["transaction_id"]]
        for name, values in day_granular(store, frame, day).items():
            same = values == reference[HANDBOOK_NAMES[name]].to_numpy()
            equal.setdefault(name, []).append(same)
    print("| feature, day-granular | rows equal to the reference | share |")
    print("| --- | --- | --- |")
    for name, parts in equal.items():
        same = np.concatenate(parts)
        print(f"| {name} | {int(same.sum())} of {len(same)} | {same.mean():.3f} |")


def read_partitions(day: dt.date, offsets: range) -> list[pd.DataFrame]:
    """Read the whole transaction partitions of the days before ``day``."""
    return [read_partition("transactions", day - dt.timedelta(days=o)) for o in offsets]


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def cost(state_dir: Path, repeats: int) -> None:
    """Print feature timings for 2018-08-14 with cold, nightly and warm state."""
    day = dt.date(2018, 8, 14)
    frame = read_partition("transactions", day)
    previous = day - dt.timedelta(days=1)
    offsets = HistoryStore(state_dir, HANDBOOK).history_offsets
    cold, nightly, warm, full_read = [], [], [], []
    for attempt in range(repeats):
        folder = state_dir / f"run-{attempt}"
        features = functools.partial(
            add_history_features, frame, day, HistoryStore(folder, HANDBOOK)
        )
        cold.append(timed(features))
        for path in folder.glob(f"*/dt={previous}/*"):
            path.unlink()
        nightly.append(timed(features))
        warm.append(timed(features))
        full_read.append(timed(functools.partial(read_partitions, day, offsets)))
    print(f"median of {repeats} runs, {len(frame)} rows on {day}\n")
    print("| state | seconds |")
    print("| --- | --- |")
    print(f"| cold: {len(offsets)} days built | {statistics.median(cold):.2f} |")
    print(f"| nightly: day before built | {statistics.median(nightly):.2f} |")
    print(f"| warm: all present | {statistics.median(warm):.2f} |")
    reading = statistics.median(full_read)
    print(f"| reading {len(offsets)} whole partitions, for scale | {reading:.2f} |")
    state_sizes(state_dir / "run-0", day, offsets)


def state_sizes(folder: Path, day: dt.date, offsets: range) -> None:
    """Print the state bytes per folder for the days before ``day``."""
    days = [day - dt.timedelta(days=o) for o in offsets]
    print("\n| state folder | bytes for the days read | per day |")
    print("| --- | --- | --- |")
    total = 0
    for kind in sorted(p.name for p in folder.iterdir()):
        size = sum(_size(folder / kind / f"dt={d}") for d in days)
        total += size
        print(f"| {kind} | {size:,} | {size // len(days):,} |")
    source = sum(
        _size(HANDBOOK / table / f"dt={d}")
        for d in days
        for table in ("transactions", "labels")
    )
    print(f"| all | {total:,} | {total // len(days):,} |")
    print(f"| warehouse transactions + labels | {source:,} | {source // len(days):,} |")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*") if p.is_file())


def protocol_frames(state_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the featured training rows and the test rows of the Chapter 3 split."""
    store = HistoryStore(state_dir, HANDBOOK)
    train = pd.concat([featured_day(store, d) for d in TRAIN_DAYS], ignore_index=True)
    test = pd.concat([featured_day(store, d) for d in TEST_DAYS], ignore_index=True)
    return train, test[~known_compromised(test)].reset_index(drop=True)


def known_compromised(test: pd.DataFrame) -> np.ndarray:
    """Flag test rows of cards with a fraud from the first training day to t - 8."""
    days = pd.date_range(TRAIN_DAYS[0], TEST_DAYS[-1]).date
    labelled = pd.concat(
        [
            read_partition("transactions", d)[["transaction_id", "customer_id"]]
            .merge(read_partition("labels", d), on="transaction_id")
            .assign(day=d)
            for d in days
        ]
    )
    flags = np.zeros(len(test), dtype=bool)
    for day in TEST_DAYS:
        seen = labelled[(labelled["day"] <= day - dt.timedelta(days=8))]
        cards = set(seen.loc[seen["is_fraud"] == 1, "customer_id"])
        today = (test["day"] == day).to_numpy()
        flags[today] = test.loc[today, "customer_id"].isin(cards).to_numpy()
    return flags


def card_precision_at_100(test: pd.DataFrame, scores: np.ndarray) -> float:
    """Compute the mean over test days of the fraud share in the top 100 cards.

    Cards found fraudulent in an earlier day's top 100 are left out of later days.
    """
    scored = test.assign(score=scores)
    detected: set = set()
    precisions = []
    for day in TEST_DAYS:
        cards = scored[scored["day"] == day].groupby("customer_id")
        cards = cards.agg(score=("score", "max"), fraud=("is_fraud", "max"))
        cards = cards.drop(index=list(detected & set(cards.index)))
        top = cards.sort_values("score", ascending=False).head(100)
        precisions.append(top["fraud"].sum() / 100)
        detected |= set(top.index[top["fraud"] == 1])
    return float(np.mean(precisions))


def estimators(seed: int) -> dict:
    """Return the compared scikit-learn estimators by name."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "random forest": RandomForestClassifier(
            n_estimators=100, class_weight="balanced", random_state=seed, n_jobs=-1
        ),
        "random forest, unweighted": RandomForestClassifier(
            n_estimators=100, random_state=seed, n_jobs=-1
        ),
        "random forest, balanced, min 10 per leaf": RandomForestClassifier(
            n_estimators=300,
            min_samples_leaf=10,
            class_weight="balanced",
            random_state=seed,
            n_jobs=-1,
        ),
        "hist gradient boosting": HistGradientBoostingClassifier(
            class_weight="balanced", random_state=seed
        ),
        "hist gradient boosting, unweighted": HistGradientBoostingClassifier(
            random_state=seed
        ),
        "logistic regression": make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=2000),
        ),
    }


FEATURE_SETS = {
    "contract (4)": CONTRACT,
    "handbook (amount + 14)": ["amount", *HANDBOOK_NAMES],
    "amount + history (18)": ["amount", *HISTORY_FEATURES],
    "contract + history (21)": [*CONTRACT, *HISTORY_FEATURES],
}


def models(state_dir: Path, seeds: int) -> None:
    """Print AUC ROC, average precision and Card Precision@100 per model."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    train, test = protocol_frames(state_dir)
    print(f"train {len(train)} rows, {int(train['is_fraud'].sum())} frauds; ", end="")
    print(f"test {len(test)} rows, {int(test['is_fraud'].sum())} frauds")
    print(f"mean over {seeds} seeds where the estimator is random\n")
    print("| features | estimator | AUC ROC | average precision | Card Precision@100 |")
    print("| --- | --- | --- | --- | --- |")
    for set_name, columns in FEATURE_SETS.items():
        for name in estimators(0):
            results = []
            for seed in range(seeds if "logistic" not in name else 1):
                model = estimators(seed)[name].fit(train[columns], train["is_fraud"])
                scores = model.predict_proba(test[columns])[:, 1]
                results.append(
                    (
                        roc_auc_score(test["is_fraud"], scores),
                        average_precision_score(test["is_fraud"], scores),
                        card_precision_at_100(test, scores),
                    )
                )
            auc, ap, cp = np.mean(results, axis=0)
            print(f"| {set_name} | {name} | {auc:.3f} | {ap:.3f} | {cp:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=("agreement", "boundaries", "cost", "models")
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timing runs per state, for cost"
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="random seeds per estimator, for models"
    )
    arguments = parser.parse_args()
    if not HANDBOOK.is_dir():
        raise SystemExit(f"handbook data not found at {HANDBOOK}")
    with tempfile.TemporaryDirectory(prefix="metaguard-history-") as folder:
        if arguments.command == "agreement":
            agreement(Path(folder))
        elif arguments.command == "boundaries":
            boundaries(Path(folder))
        elif arguments.command == "cost":
            cost(Path(folder), arguments.repeats)
        else:
            models(Path(folder), arguments.seeds)


if __name__ == "__main__":
    main()
