"""Evaluate estimators under the Fraud Detection Handbook's protocol.

The protocol of Le Borgne, Siblini, Lebichot and Bontempi, *Reproducible
Machine Learning for Credit Card Fraud Detection - Practical Handbook* (2022),
chapters 3 and 5:

- a fold trains on 7 days, skips 7 days (the label delay) and tests on the
  next 7 days;
- on each test day ``t`` the test set leaves out every card (``customer_id``)
  with a fraud on any day from the first training day to ``t - 8`` days,
  because such cards are already known to be compromised;
- AUC ROC and average precision are computed over all remaining test rows;
- Card Precision@100 is computed per test day, in order, on each card's
  highest score and whether it had any fraud that day. Cards found
  fraudulent in an earlier day's top 100 leave the later days, and the
  result is the mean over the 7 days.

Data and models come from MetaGuard's own code path:
:func:`metaguard.labelled.load_labelled` with the ``history`` feature set,
which validates each day with the GX suite and adds the history features,
and :func:`metaguard.training.build_estimator`. The figures therefore
describe the models that the retraining DAG would produce. Rows that the
contract quarantines (the handbook's transactions of amount 0.00) are neither
trained on nor tested, but their fraud labels still mark cards as known
compromised, as in the handbook.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metaguard.config import REPO_ROOT, Settings, load_settings
from metaguard.exceptions import ConfigError, TrainingDataError
from metaguard.training import ESTIMATORS, Windows, build_estimator, windows_ending

log = logging.getLogger(__name__)

TOP_CARDS = 100
# A fraud on day d marks its card as known from test day d + 8 on, which is
# the label delay plus one day.
KNOWN_AFTER_DAYS = 8
CHAPTER_3_END = dt.date(2018, 8, 14)
# The four weekly test folds of the handbook's chapter 5 model selection.
TEST_FOLD_ENDS: tuple[dt.date, ...] = (
    dt.date(2018, 8, 14),
    dt.date(2018, 8, 21),
    dt.date(2018, 8, 28),
    dt.date(2018, 9, 4),
)
# Folds whose test weeks end before the first test fold's test week starts,
# used to choose hyperparameters without looking at the test weeks.
VALIDATION_FOLD_ENDS: tuple[dt.date, ...] = (
    dt.date(2018, 7, 17),
    dt.date(2018, 7, 24),
    dt.date(2018, 7, 31),
    dt.date(2018, 8, 7),
)
METRICS = ("auc_roc", "average_precision", "card_precision_at_100")
DOCS_PATH = REPO_ROOT / "docs" / "model-quality.md"
# The generated parts of DOCS_PATH lie between "<!-- {name}:start -->" and
# "<!-- {name}:end -->", one part for the test folds and one for the
# validation folds. The text around them is written by hand.
TEST_SECTION = "test-folds"
VALIDATION_SECTION = "validation-folds"


def fold_windows(test_end: dt.date) -> Windows:
    """Return the 7-day training and test windows of the fold ending ``test_end``."""
    return windows_ending(test_end, train_days=7, gap_days=7, valid_days=7)


def known_cards_per_day(frauds: pd.DataFrame, windows: Windows) -> dict[dt.date, set]:
    """Return, per test day, the cards whose fraud is known by that day.

    ``frauds`` has one row per fraudulent transaction, with ``day`` and
    ``customer_id``. A card is known on test day ``t`` when it has a fraud on
    a day from ``windows.train_start`` to ``t - 8`` days.
    """
    known = {}
    test_day = windows.valid_start
    while test_day <= windows.valid_end:
        last = test_day - dt.timedelta(days=KNOWN_AFTER_DAYS)
        seen = frauds[(frauds["day"] >= windows.train_start) & (frauds["day"] <= last)]
        known[test_day] = set(seen["customer_id"])
        test_day += dt.timedelta(days=1)
    return known


def drop_known_cards(test: pd.DataFrame, known: dict[dt.date, set]) -> pd.DataFrame:
    """Remove the test rows of cards known to be compromised on the row's day."""
    keep = np.ones(len(test), dtype=bool)
    days = test["day"].to_numpy()
    for day, cards in known.items():
        today = days == day
        keep[today] = ~test.loc[today, "customer_id"].isin(cards).to_numpy()
    return test.loc[keep]


def card_precision_at_k(
    frame: pd.DataFrame, scores: np.ndarray, k: int = TOP_CARDS
) -> tuple[float, list[float]]:
    """Compute the handbook's Card Precision@k and its value per day.

    ``frame`` needs ``day``, ``customer_id`` and ``is_fraud``. Per day, in
    date order, a card's score is its highest transaction score and it is
    fraudulent when any of its transactions that day is. The day's value is
    the number of fraudulent cards among the ``k`` highest scores divided by
    ``k``, even when fewer than ``k`` cards remain. Fraudulent cards of a
    day's top ``k`` are left out of the later days. Equal scores are ranked
    by ascending ``customer_id``, so the result does not depend on row order.
    Returns the mean over the days and the per-day values.
    """
    scored = pd.DataFrame(
        {
            "day": frame["day"].to_numpy(),
            "customer_id": frame["customer_id"].to_numpy(),
            "fraud": frame["is_fraud"].to_numpy(),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    detected: set = set()
    per_day = []
    for _, rows in scored.groupby("day", sort=True):
        cards = rows.groupby("customer_id", sort=True).agg(
            score=("score", "max"), fraud=("fraud", "max")
        )
        cards = cards.loc[~cards.index.isin(detected)]
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        found = top.index[top["fraud"] > 0]
        per_day.append(len(found) / k)
        detected.update(found)
    mean = float(np.mean(per_day)) if per_day else float("nan")
    return mean, per_day


def protocol_metrics(frame: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """Return AUC ROC, average precision and Card Precision@100 of test scores."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = frame["is_fraud"].to_numpy()
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "card_precision_at_100": card_precision_at_k(frame, scores)[0],
    }


@dataclass(frozen=True)
class FoldResult:
    """Metrics of one estimator on one fold, with the fold's row counts."""

    estimator: str
    windows: Windows
    train_rows: int
    train_frauds: int
    test_rows: int
    test_frauds: int
    metrics: dict[str, float]
    fit_seconds: float


def card_frauds(warehouse: Path, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Return ``day`` and ``customer_id`` of every labelled fraud in ``start..end``.

    Reads the raw partitions, so a fraud on a row that the contract
    quarantines still marks its card as known.
    """
    from metaguard.warehouse import read_table

    frames = []
    day = start
    while day <= end:
        transactions = read_table(
            warehouse, "transactions", day, ["transaction_id", "customer_id"]
        )
        labels = read_table(warehouse, "labels", day, ["transaction_id", "is_fraud"])
        if transactions is not None and labels is not None:
            labelled = transactions.to_pandas().merge(
                labels.to_pandas().drop_duplicates("transaction_id"),
                on="transaction_id",
            )
            frauds = labelled.loc[labelled["is_fraud"] == 1, ["customer_id"]]
            frames.append(frauds.assign(day=day))
        day += dt.timedelta(days=1)
    if not frames:
        return pd.DataFrame({"day": [], "customer_id": []})
    return pd.concat(frames, ignore_index=True)


def fold_frames(
    frame: pd.DataFrame, frauds: pd.DataFrame, windows: Windows
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a fold's training rows and its test rows without known cards."""
    days = frame["day"]
    train = frame.loc[(days >= windows.train_start) & (days <= windows.train_end)]
    test = frame.loc[(days >= windows.valid_start) & (days <= windows.valid_end)]
    test = drop_known_cards(test, known_cards_per_day(frauds, windows))
    for label, rows in (("training", train), ("test", test)):
        if rows.empty or int(rows["is_fraud"].sum()) == 0:
            raise TrainingDataError(
                f"the {label} rows of the fold ending {windows.valid_end} contain "
                f"{len(rows)} transactions and no fraud, so the fold cannot be "
                "evaluated. Check that the warehouse has transactions and labels "
                "for those days"
            )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def evaluate_fold(
    estimator: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    windows: Windows,
    features: list[str],
    seed: int,
) -> FoldResult:
    """Fit ``estimator`` on a fold's training rows and score its test rows."""
    from metaguard.features import feature_frame
    from metaguard.scoring import predict_scores

    pipeline = build_estimator(estimator, seed)
    started = time.perf_counter()
    pipeline.fit(feature_frame(train, features), train["is_fraud"])
    fit_seconds = time.perf_counter() - started
    scores = predict_scores(pipeline, test, features)
    result = FoldResult(
        estimator=estimator,
        windows=windows,
        train_rows=len(train),
        train_frauds=int(train["is_fraud"].sum()),
        test_rows=len(test),
        test_frauds=int(test["is_fraud"].sum()),
        metrics=protocol_metrics(test, scores),
        fit_seconds=fit_seconds,
    )
    log.info(
        "%s, test %s..%s: %s in %.1f s",
        estimator,
        windows.valid_start,
        windows.valid_end,
        {k: round(v, 3) for k, v in result.metrics.items()},
        fit_seconds,
    )
    return result


def run_protocol(
    settings: Settings,
    estimators: list[str],
    fold_ends: tuple[dt.date, ...] = TEST_FOLD_ENDS,
    seed: int = 0,
) -> list[FoldResult]:
    """Evaluate each estimator on each fold, with data read once for all folds.

    The rows come from :func:`metaguard.labelled.load_labelled` with history
    features, so history state is built under ``settings.output``.
    """
    from metaguard.features import feature_names
    from metaguard.labelled import load_labelled

    for name in estimators:
        if name not in ESTIMATORS:
            raise ConfigError(
                f"estimator {name!r} is unknown; expected one of {ESTIMATORS}"
            )
    windows = [fold_windows(end) for end in sorted(fold_ends)]
    first, last = windows[0].train_start, windows[-1].valid_end
    frame = load_labelled(settings, first, last, "history").frame
    frauds = card_frauds(
        settings.warehouse, first, last - dt.timedelta(days=KNOWN_AFTER_DAYS)
    )
    features = feature_names("history")
    results = []
    for fold in windows:
        train, test = fold_frames(frame, frauds, fold)
        for name in estimators:
            results.append(evaluate_fold(name, train, test, fold, features, seed))
    return results


# Published results of the handbook on the same data: AUC ROC, average
# precision and Card Precision@100.
PUBLISHED_CHAPTER_3 = {
    "logistic regression": (0.871, 0.606, 0.291),
    "random forest": (0.867, 0.658, 0.287),
    "XGBoost": (0.862, 0.639, 0.273),
}
PUBLISHED_CHAPTER_5 = {
    "XGBoost": (0.869, 0.687, 0.303),
    "random forest": (0.870, 0.678, 0.299),
}


def mean_metrics(results: list[FoldResult]) -> dict[str, float]:
    """Return the mean of each metric over the given fold results."""
    return {m: float(np.mean([r.metrics[m] for r in results])) for m in METRICS}


def _figures(values) -> str:
    return " | ".join(f"{v:.3f}" for v in values)


def fold_table(results: list[FoldResult]) -> str:
    """Format one row per fold and estimator, and each estimator's mean, as Markdown."""
    lines = [
        "| estimator | test week | train rows (frauds) | test rows (frauds) "
        "| AUC ROC | average precision | Card Precision@100 | fit seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in dict.fromkeys(r.estimator for r in results):
        mine = [r for r in results if r.estimator == name]
        for r in mine:
            week = f"{r.windows.valid_start:%m-%d}..{r.windows.valid_end:%m-%d}"
            lines.append(
                f"| {name} | {week} | {r.train_rows:,} ({r.train_frauds}) "
                f"| {r.test_rows:,} ({r.test_frauds}) "
                f"| {_figures(r.metrics[m] for m in METRICS)} | {r.fit_seconds:.1f} |"
            )
        mean = mean_metrics(mine)
        lines.append(
            f"| **{name}** | **mean of {len(mine)}** | | "
            f"| {_figures(mean[m] for m in METRICS)} | |"
        )
    return "\n".join(lines)


def comparison_table(results: list[FoldResult]) -> str:
    """Format MetaGuard's results next to the handbook's published ones, as Markdown."""
    lines = [
        "| model | folds | AUC ROC | average precision | Card Precision@100 |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = list(dict.fromkeys(r.estimator for r in results))
    folds = sorted({r.windows.valid_end for r in results})
    for name in names:
        mean = mean_metrics([r for r in results if r.estimator == name])
        row = _figures(mean[m] for m in METRICS)
        lines.append(f"| MetaGuard {name} | mean of {len(folds)} | {row} |")
    if folds == sorted(TEST_FOLD_ENDS):
        for name, values in PUBLISHED_CHAPTER_5.items():
            lines.append(f"| handbook {name}, best | mean of 4 | {_figures(values)} |")
    if CHAPTER_3_END in folds:
        for name in names:
            (only,) = [
                r
                for r in results
                if r.estimator == name and r.windows.valid_end == CHAPTER_3_END
            ]
            row = _figures(only.metrics[m] for m in METRICS)
            lines.append(f"| MetaGuard {name} | chapter 3 | {row} |")
        for name, values in PUBLISHED_CHAPTER_3.items():
            lines.append(f"| handbook {name} | chapter 3 | {_figures(values)} |")
    return "\n".join(lines)


def render_section(
    results: list[FoldResult], command: str, name: str, load_average: float
) -> str:
    """Render one generated part of docs/model-quality.md from one run.

    ``load_average`` is the 1-minute load average when the run started.
    """
    import platform

    import sklearn

    now = dt.datetime.now(dt.UTC)
    summary = textwrap.fill(
        f"Measured on {now:%Y-%m-%d %H:%M} UTC by one run of the command below, "
        f"with Python {platform.python_version()}, scikit-learn "
        f"{sklearn.__version__} and pandas {pd.__version__} on {os.cpu_count()} "
        f"CPUs, 1-minute load average {load_average:.2f} at the start. Fit "
        "seconds are the wall time of fitting on the 7 training days and grow "
        "when other jobs share the machine.",
        width=88,
    )
    return "\n".join(
        [
            f"<!-- {name}:start -->",
            summary,
            "",
            "```bash",
            command,
            "```",
            "",
            comparison_table(results),
            "",
            fold_table(results),
            f"<!-- {name}:end -->",
        ]
    )


def write_docs(section: str, name: str, path: Path = DOCS_PATH) -> None:
    """Replace one generated part of the quality page, or add it at the end."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.is_file() else "# Model quality\n"
    if start in text and end in text:
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    log.info("wrote %s", path)


def run_command(
    warehouse: str | None,
    estimators: list[str] | None = None,
    output: str | None = None,
    validation: bool = False,
    seed: int = 0,
    docs: bool = False,
) -> int:
    """Run the protocol, print the tables and optionally update the quality page.

    History state goes under ``output``, or a temporary folder removed
    afterwards.
    """
    estimators = list(ESTIMATORS) if estimators is None else estimators
    load_average = os.getloadavg()[0]
    folder = Path(output) if output else Path(tempfile.mkdtemp(prefix="mg-protocol-"))
    try:
        settings = load_settings(
            overrides={
                "warehouse": warehouse,
                "output": str(folder),
                "models": str(folder / "models"),
            }
        )
        fold_ends = VALIDATION_FOLD_ENDS if validation else TEST_FOLD_ENDS
        results = run_protocol(settings, estimators, fold_ends, seed)
    finally:
        if not output:
            shutil.rmtree(folder, ignore_errors=True)
    print(comparison_table(results) + "\n\n" + fold_table(results))
    if docs:
        command = ".venv/bin/metaguard evaluate"
        if warehouse:
            command += f" --warehouse {warehouse}"
        if estimators != list(ESTIMATORS):
            command += " --estimators " + ",".join(estimators)
        if validation:
            command += " --validation"
        if seed:
            command += f" --seed {seed}"
        name = VALIDATION_SECTION if validation else TEST_SECTION
        command += " --write-docs"
        write_docs(render_section(results, command, name, load_average), name)
    return 0
