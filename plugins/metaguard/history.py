"""Point-in-time history features, computed from compact per-day state.

For a transaction at time ``t`` on day ``D`` the features are:

- per customer, for ``w`` in 1, 7 and 30 days: the number of transactions and
  their mean amount in the window ``(t - w days, t]``, and the transaction's
  amount divided by that mean;
- per terminal, for the same ``w``: the number of transactions and the share
  of fraud among them in ``(t - delay - w days, t - delay]``, so that only
  labels at least ``label_delay_days`` old are used;
- per terminal, over the 30 whole days ending ``label_delay_days`` before
  ``D``: the number of days with a fraud, and the days from the first and
  from the last of them to ``D``;
- calendar flags: Saturday or Sunday, and hour 0 to 6, both in UTC.

The windowed counts, means and shares are the definitions of the Fraud
Detection Handbook (Le Borgne et al., 2022), to the timestamp, with one
difference. Other rows of the customer at the same timestamp as the
transaction count as earlier rows, whatever their order, while the handbook's
rolling windows count only those sorted before it. The fraud-day features are
MetaGuard's own; they tell a terminal whose compromise began long ago from one
whose compromise began recently.

The per-day state that the windows read is kept by
:class:`~metaguard.history_state.HistoryStore`. A window sums the per-day
aggregates of the days that lie wholly inside it and reads event rows only for
its two boundary days.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np
import pandas as pd

from metaguard.exceptions import ModelFeatureError
from metaguard.history_state import (
    CUSTOMERS,
    DAY_MICROSECONDS,
    REQUIRED_COLUMNS,
    TERMINALS,
    WINDOW_DAYS,
    DayState,
    HistoryEntity,
    HistoryStore,
    count_outside_day,
    dense_keys,
    normalized_keys,
)

__all__ = [
    "HISTORY_FEATURES",
    "REQUIRED_COLUMNS",
    "WINDOW_DAYS",
    "DayState",
    "HistoryStore",
    "add_history_features",
]

log = logging.getLogger("metaguard.history")

NIGHT_LAST_HOUR = 6
# Length of the run of whole days whose terminal frauds the fraud-day features
# summarise. A terminal without fraud in it gets this many days plus the delay
# as its days since a fraud, one more than any day inside the run.
FRAUD_DAYS_WINDOW = 30
HISTORY_FEATURES: tuple[str, ...] = (
    "is_weekend",
    "is_night",
    *(
        f"customer_{name}_{w}d"
        for w in WINDOW_DAYS
        for name in ("tx_count", "mean_amount", "amount_ratio")
    ),
    *(
        f"terminal_{name}_{w}d"
        for w in WINDOW_DAYS
        for name in ("tx_count", "fraud_share")
    ),
    f"terminal_fraud_days_{FRAUD_DAYS_WINDOW}d",
    f"terminal_days_since_first_fraud_{FRAUD_DAYS_WINDOW}d",
    f"terminal_days_since_last_fraud_{FRAUD_DAYS_WINDOW}d",
)


def add_history_features(
    frame: pd.DataFrame,
    day: dt.date,
    store: HistoryStore,
    *,
    day_rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add the :data:`HISTORY_FEATURES` columns to one day's transactions.

    ``frame`` contains valid transactions of ``day`` in any order. The result
    has the same rows, index and order, plus the feature columns as float64.
    The same-day part of a customer window counts the rows of ``day_rows``
    (default: ``frame``) at or before the transaction, so pass the whole day
    as ``day_rows`` when ``frame`` is one chunk of it. State of the
    ``30 + label_delay_days`` days before ``day`` is built where missing.

    A row without ``customer_id``, ``terminal_id``, ``event_time`` or a finite
    amount gets the values of a transaction without history: customer count 1,
    mean amount equal to its amount, ratio 1, terminal count, share and fraud
    days 0. Its days since a terminal fraud are those of a terminal without
    fraud.

    Raises :class:`ModelFeatureError` when ``frame`` or ``day_rows`` lacks a
    needed column, and :class:`SchemaMismatch` when a warehouse partition does.
    """
    started = time.perf_counter()
    _check_columns(frame)
    queries = _queries(frame)
    same_day = queries
    if day_rows is not None:
        _check_columns(day_rows)
        same_day = _queries(day_rows)

    states = {
        offset: store.ensure_day_state(day - dt.timedelta(days=offset))
        for offset in store.history_offsets
    }
    _warn_about_gaps(states, store.label_delay_days, day)
    _warn_about_other_days(queries, day)

    history = _History(store, day, _complete_rows(same_day))
    complete = _complete_rows(queries)
    values = _customer_features(complete, history)
    values.update(_terminal_features(complete, history, store.label_delay_days))
    values.update(_fraud_day_features(complete, history, store.label_delay_days))
    result = frame.copy()
    for name, column in _assemble(queries, values, store.label_delay_days).items():
        result[name] = column

    statuses = [state.status for state in states.values()]
    log.info(
        "history features for %s: %d rows (%d without history keys) in %.2f s; "
        "state days built %d, reused %d",
        day,
        len(frame),
        int((~queries["complete"]).sum()),
        time.perf_counter() - started,
        statuses.count("built"),
        statuses.count("reused"),
    )
    return result


class _History:
    """State reads for the features of one day, each day's file read once."""

    def __init__(self, store: HistoryStore, day: dt.date, same_day: pd.DataFrame):
        self._store = store
        self._day = day
        self._same_day = same_day.rename(columns={"time": "event_time"})
        self._cache: dict[tuple[str, int], pd.DataFrame | None] = {}

    def window(
        self,
        entity: HistoryEntity,
        keys: pd.Series,
        times: np.ndarray,
        far: int,
        near: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Count and sum the rows per key in ``(time - far days, time - near days]``."""
        if len(keys) == 0:
            return np.zeros(0), np.zeros(0)
        far_events, near_events = self._events(entity, far), self._events(entity, near)
        after = _sum_after(far_events, entity, keys, times - far * DAY_MICROSECONDS)
        upto = _sum_up_to(near_events, entity, keys, times - near * DAY_MICROSECONDS)
        inner = self._interior(entity, near + 1, far - 1).reindex(keys.to_numpy())
        counts = after[0] + upto[0] + inner["tx_count"].fillna(0).to_numpy()
        sums = after[1] + upto[1] + inner[entity.total].fillna(0).to_numpy()
        return counts, sums

    def _events(self, entity: HistoryEntity, offset: int) -> pd.DataFrame | None:
        if offset == 0:
            if entity is not CUSTOMERS:
                raise ValueError("only customer windows may reach the current day")
            return self._same_day[[entity.key, "event_time", entity.value]]
        cache_key = (entity.events_dir, offset)
        if cache_key not in self._cache:
            day = self._day - dt.timedelta(days=offset)
            self._cache[cache_key] = self._store.read_events(entity, day)
        return self._cache[cache_key]

    def _aggregates(self, entity: HistoryEntity, offset: int) -> pd.DataFrame | None:
        cache_key = (entity.aggregates_dir, offset)
        if cache_key not in self._cache:
            day = self._day - dt.timedelta(days=offset)
            self._cache[cache_key] = self._store.read_aggregates(entity, day)
        return self._cache[cache_key]

    def fraud_day_offsets(self, keys: pd.Series, first: int, last: int) -> pd.DataFrame:
        """Count each terminal's days with a fraud among offsets ``first..last``.

        Returns one row per key in ``keys`` order, with ``days`` (the count),
        ``nearest`` and ``farthest`` (the smallest and largest such offsets,
        NaN when there is none).
        """
        frames = []
        for offset in range(first, last + 1):
            aggregates = self._aggregates(TERMINALS, offset)
            if aggregates is None or aggregates.empty:
                continue
            fraud = aggregates.loc[aggregates[TERMINALS.total] > 0, [TERMINALS.key]]
            frames.append(fraud.assign(offset=offset))
        if not frames:
            columns = ["days", "nearest", "farthest"]
            found = pd.DataFrame(columns=columns, dtype="float64")
        else:
            offsets = pd.concat(frames).groupby(TERMINALS.key)["offset"]
            found = offsets.agg(days="size", nearest="min", farthest="max")
        return found.reindex(keys.to_numpy()).reset_index(drop=True)

    def _interior(self, entity: HistoryEntity, first: int, last: int) -> pd.DataFrame:
        """Sum the per-day aggregates of offsets ``first..last`` per key."""
        frames = [self._aggregates(entity, o) for o in range(first, last + 1)]
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame(columns=["tx_count", entity.total], dtype="float64")
        return pd.concat(frames).groupby(entity.key)[["tx_count", entity.total]].sum()


def _sum_up_to(
    events: pd.DataFrame | None,
    entity: HistoryEntity,
    keys: pd.Series,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum the event rows of each key with ``event_time <= bound``."""
    if events is None or events.empty:
        return np.zeros(len(keys)), np.zeros(len(keys))
    ordered = events.sort_values("event_time", kind="stable")
    grouped = ordered.groupby(entity.key, sort=False)
    running = pd.DataFrame(
        {
            entity.key: ordered[entity.key].to_numpy(),
            "at": ordered["event_time"].to_numpy(),
            "count": grouped.cumcount().to_numpy() + 1.0,
            "sum": grouped[entity.value].cumsum().to_numpy(dtype="float64"),
        }
    )
    requests = pd.DataFrame(
        {entity.key: keys.to_numpy(), "at": bounds, "row": np.arange(len(keys))}
    ).sort_values("at", kind="stable")
    # With ties on "at", merge_asof takes the last row, whose running sums
    # include every row at that time.
    matched = pd.merge_asof(requests, running, on="at", by=entity.key)
    matched = matched.sort_values("row")
    return (
        matched["count"].fillna(0).to_numpy(),
        matched["sum"].fillna(0).to_numpy(),
    )


def _sum_after(
    events: pd.DataFrame | None,
    entity: HistoryEntity,
    keys: pd.Series,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum the event rows of each key with ``event_time > bound``."""
    if events is None or events.empty:
        return np.zeros(len(keys)), np.zeros(len(keys))
    totals = events.groupby(entity.key)[entity.value].agg(["size", "sum"])
    totals = totals.reindex(keys.to_numpy()).fillna(0)
    upto_count, upto_sum = _sum_up_to(events, entity, keys, bounds)
    return (
        totals["size"].to_numpy(dtype="float64") - upto_count,
        totals["sum"].to_numpy(dtype="float64") - upto_sum,
    )


def _customer_features(queries: pd.DataFrame, history: _History) -> dict:
    """Compute the customer counts, mean amounts and amount ratios."""
    values = {}
    amounts = queries["amount"].to_numpy()
    for w in WINDOW_DAYS:
        counts, sums = history.window(
            CUSTOMERS, queries["customer_id"], queries["time"].to_numpy(), w, 0
        )
        # A window contains the transaction itself when day_rows does. The
        # fallbacks cover a day_rows without it, and windows of zero amounts.
        means = np.divide(sums, counts, out=amounts.copy(), where=counts > 0)
        ratios = np.divide(amounts, means, out=np.ones(len(means)), where=means > 0)
        values[f"customer_tx_count_{w}d"] = counts
        values[f"customer_mean_amount_{w}d"] = means
        values[f"customer_amount_ratio_{w}d"] = ratios
    return values


def _terminal_features(queries: pd.DataFrame, history: _History, delay: int) -> dict:
    """Compute the terminal counts and fraud shares, shifted back by ``delay``."""
    values = {}
    for w in WINDOW_DAYS:
        times = queries["time"].to_numpy()
        counts, frauds = history.window(
            TERMINALS, queries["terminal_id"], times, delay + w, delay
        )
        shares = np.divide(frauds, counts, out=np.zeros(len(counts)), where=counts > 0)
        values[f"terminal_tx_count_{w}d"] = counts
        values[f"terminal_fraud_share_{w}d"] = shares
    return values


def _fraud_day_features(queries: pd.DataFrame, history: _History, delay: int) -> dict:
    """Summarise each terminal's days with fraud among ``D - delay - 29..D - delay``.

    Whole days are used, because all labels of day ``D - delay`` are known on
    day ``D``. A terminal without fraud in them has 0 fraud days and
    ``delay + FRAUD_DAYS_WINDOW`` days since its first and its last fraud.
    """
    found = history.fraud_day_offsets(
        queries["terminal_id"], delay, delay + FRAUD_DAYS_WINDOW - 1
    )
    none = float(delay + FRAUD_DAYS_WINDOW)
    suffix = f"{FRAUD_DAYS_WINDOW}d"
    return {
        f"terminal_fraud_days_{suffix}": found["days"].fillna(0).to_numpy("float64"),
        f"terminal_days_since_first_fraud_{suffix}": (
            found["farthest"].fillna(none).to_numpy("float64")
        ),
        f"terminal_days_since_last_fraud_{suffix}": (
            found["nearest"].fillna(none).to_numpy("float64")
        ),
    }


def _assemble(queries: pd.DataFrame, values: dict, delay: int) -> dict[str, np.ndarray]:
    """Place feature values of complete rows and fills of the others, in row order."""
    complete = queries["complete"].to_numpy()
    amounts = queries["amount"].to_numpy(dtype="float64")
    stamps = pd.to_datetime(queries["time"], unit="us")
    present = queries["time_present"].to_numpy()
    columns = {
        "is_weekend": np.where(present, stamps.dt.dayofweek >= 5, False),
        "is_night": np.where(present, stamps.dt.hour <= NIGHT_LAST_HOUR, False),
    }
    for name in HISTORY_FEATURES[2:]:
        if name.startswith("customer_mean_amount"):
            fill = amounts.copy()
        elif name.startswith(("customer_tx_count", "customer_amount_ratio")):
            fill = np.ones(len(queries))
        elif name.startswith("terminal_days_since"):
            fill = np.full(len(queries), float(delay + FRAUD_DAYS_WINDOW))
        else:
            fill = np.zeros(len(queries))
        fill[complete] = values[name]
        columns[name] = fill
    return {name: columns[name].astype("float64") for name in HISTORY_FEATURES}


def _queries(frame: pd.DataFrame) -> pd.DataFrame:
    """Return keys, epoch microseconds and amounts of rows, with completeness flags."""
    micros, present = _series_micros(frame["event_time"])
    frame = frame.reset_index(drop=True)
    amounts = pd.to_numeric(frame["amount"], errors="coerce").to_numpy(dtype="float64")
    queries = pd.DataFrame(
        {
            "customer_id": normalized_keys(frame["customer_id"]),
            "terminal_id": normalized_keys(frame["terminal_id"]),
            "time": micros,
            "amount": amounts,
            "time_present": present,
        }
    )
    queries["complete"] = (
        queries["customer_id"].notna().to_numpy()
        & queries["terminal_id"].notna().to_numpy()
        & present
        & np.isfinite(amounts)
    )
    return queries


def _complete_rows(queries: pd.DataFrame) -> pd.DataFrame:
    rows = queries.loc[queries["complete"]].reset_index(drop=True)
    for column in ("customer_id", "terminal_id"):
        rows[column] = dense_keys(rows[column])
    return rows


def _check_columns(frame: pd.DataFrame) -> None:
    missing = [c for c in (*REQUIRED_COLUMNS, "amount") if c not in frame.columns]
    if missing:
        raise ModelFeatureError(
            f"the transactions lack column(s) {missing} that history features "
            f"need; expected {list(REQUIRED_COLUMNS)} and 'amount'. Pass them "
            "through from the warehouse or use features without history"
        )


def _warn_about_gaps(states: dict[int, DayState], delay: int, day: dt.date) -> None:
    """Log degraded history: days without data, and old days without labels."""
    missing = sum(state.status == "missing" for state in states.values())
    if missing:
        log.warning(
            "%d of the %d history days before %s have neither state nor a "
            "transactions partition; they count as days without transactions",
            missing,
            len(states),
            day,
        )
    unlabelled = [
        offset
        for offset, state in states.items()
        if offset >= delay and state.status != "missing" and not state.labelled
    ]
    if unlabelled:
        log.warning(
            "%d terminal history days before %s, all at least %d days old, have "
            "no labels yet; their fraud counts are taken as 0",
            len(unlabelled),
            day,
            delay,
        )


def _warn_about_other_days(queries: pd.DataFrame, day: dt.date) -> None:
    times = queries.loc[queries["time_present"], "time"].to_numpy()
    outside = count_outside_day(times, day)
    if outside:
        log.warning(
            "%d transactions for %s have an event_time on another UTC day; their "
            "windows are placed relative to %s",
            outside,
            day,
            day,
        )


def _series_micros(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return UTC epoch microseconds and a not-null mask of a time column."""
    stamps = pd.to_datetime(values, utc=True).dt.tz_convert(None).dt.as_unit("us")
    present = stamps.notna().to_numpy()
    micros = np.zeros(len(stamps), dtype=np.int64)
    micros[present] = stamps[present].to_numpy().astype("datetime64[us]").view("int64")
    return micros, present
