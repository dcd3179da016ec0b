"""Generate a demo warehouse of labelled card transactions.

:func:`simulate_warehouse` writes one ``dt=YYYY-MM-DD`` partition per day under
``<out>/transactions`` and ``<out>/labels``. Customers and terminals sit on a
100 x 100 map. Each customer buys at the 20 nearest terminals, mostly in the
daytime, with amounts spread around a personal median. Every account has an
opening date, either before the start date or during the simulation, and
``user_age_days`` counts the opening day as day 1.

Fraud patterns, by ``fraud_scenario`` code (0 is genuine):

1. New account: an account opened for fraud buys big at night for 5 to 10 days.
2. Compromised terminal: 60% of a terminal's sales are fraud for 14 to 28 days.
3. Leaked card: a burst of buys at 3-6x the usual amount for 2 to 7 days.
4. Card testing: 8 to 20 buys of at most 2.00 on one card at one terminal in minutes.

About 12% of the accounts opened during the simulation, or in the week before
it, are fraud accounts. Patterns 1 to 3 can begin before the start date, so the
first day already has fraud in progress. On some days up to 3 rows, and at most
0.5% of the day, break the input contract: a zero, negative or null amount,
hour 24, or user_age_days 0. Those rows keep their label row.
"""

from __future__ import annotations

import datetime
import logging
import numbers
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.spatial import KDTree

logger = logging.getLogger("metaguard.simulate")

GENUINE, NEW_ACCOUNT, COMPROMISED_TERMINAL, LEAKED_CARD, CARD_TESTING = range(5)
FRAUD_SCENARIOS: dict[int, str] = {
    GENUINE: "genuine",
    NEW_ACCOUNT: "new_account",
    COMPROMISED_TERMINAL: "compromised_terminal",
    LEAKED_CARD: "leaked_card",
    CARD_TESTING: "card_testing",
}

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
PART_NAME = "part-00000.parquet"
SUCCESS_MARKER = "_SUCCESS"

_SECONDS_PER_DAY = 86_400
_MAP_SIZE = 100.0
_NEAREST_TERMINALS = 20
# Fraud event rates are given for this daily volume and scale with the real one.
_REFERENCE_VOLUME = 4000
# Genuine purchase times: normal around 13:00, wrapped into the day.
_MIDDAY_SECONDS = 13 * 3600
_DAYTIME_SPREAD_SECONDS = 4.5 * 3600
_MEAN_ACCOUNT_AGE_DAYS = 900
_MAX_ACCOUNT_AGE_DAYS = 7300
_NEW_ACCOUNTS_PER_CUSTOMER_DAY = 0.003
# Share of the accounts opened in this window before the start date, or later,
# that are fraud accounts.
_FRAUD_ACCOUNT_SHARE = 0.12
_FRAUD_ACCOUNT_LOOKBACK_DAYS = 7
_FRAUD_ACCOUNT_DAILY_BUYS = 2.0
_FRAUD_ACCOUNT_MEDIAN_AMOUNT = 900.0
_COMPROMISES_PER_TERMINAL_DAY = 1 / 4000
_COMPROMISED_FRAUD_SHARE = 0.6
_LEAKS_PER_DAY = 0.4
_CARD_TESTS_PER_DAY = 0.5
_WARM_UP_DAYS = 28
# Item k is the chance that k rows of a day break the contract. The count is then
# capped at _MAX_BROKEN_SHARE of the day's rows.
_BROKEN_ROW_PROBABILITIES = (0.4, 0.3, 0.2, 0.1)
_MAX_BROKEN_SHARE = 0.005


@dataclass(frozen=True)
class _Population:
    """Customer attributes, indexed by customer_id."""

    open_day: np.ndarray  # day index of the account opening, 0 being the start date
    weight: np.ndarray  # relative rate of genuine purchases, 0 for fraud accounts
    median_amount: np.ndarray
    nearby: np.ndarray  # (customers, k) ids of the nearest terminals
    fraud_account: np.ndarray
    fraud_days: np.ndarray  # how long a fraud account stays active
    prior_count: np.ndarray  # transactions before the start date
    terminals: int
    transactions_per_day: int


@dataclass(frozen=True)
class _FraudPlan:
    """Compromised terminals and leaked cards, each active on [start, end)."""

    terminal: np.ndarray
    terminal_start: np.ndarray
    terminal_end: np.ndarray
    leak_customer: np.ndarray
    leak_start: np.ndarray
    leak_end: np.ndarray
    leak_rate: np.ndarray  # expected fraudulent purchases per day
    leak_inflation: np.ndarray  # factor on the customer's median amount


@dataclass(frozen=True)
class _Rows:
    """Unsorted transactions of one day, before ids and history fields."""

    customer: np.ndarray
    terminal: np.ndarray
    seconds: np.ndarray  # seconds after midnight UTC
    amount: np.ndarray
    scenario: np.ndarray

    @classmethod
    def make(
        cls,
        customer: np.ndarray,
        terminal: np.ndarray,
        seconds: np.ndarray,
        amount: np.ndarray,
        scenario: int,
    ) -> _Rows:
        """Build rows that all share one fraud scenario code."""
        return cls(
            customer.astype(np.int64),
            terminal.astype(np.int64),
            seconds.astype(np.int64),
            amount.astype(np.float64),
            np.full(customer.size, scenario, dtype=np.int8),
        )

    @classmethod
    def concat(cls, parts: list[_Rows]) -> _Rows:
        """Join the rows of several sources in order."""
        return cls(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls))
        )

    def take(self, order: np.ndarray) -> _Rows:
        """Return the rows at the positions in ``order``."""
        return _Rows(*(getattr(self, f.name)[order] for f in fields(self)))


@dataclass
class _Totals:
    """Running counters of a simulation, updated after each day."""

    next_id: int
    counts: np.ndarray  # per customer, the transactions before the next day
    scenarios: np.ndarray  # rows per fraud scenario code
    broken: int = 0

    def add_day(self, rows: _Rows, broken: int) -> None:
        """Add one finished day's rows to the counters."""
        self.next_id += rows.customer.size
        self.counts += np.bincount(rows.customer, minlength=self.counts.size)
        self.scenarios += np.bincount(rows.scenario, minlength=self.scenarios.size)
        self.broken += broken

    @property
    def rows(self) -> int:
        """Number of rows simulated so far."""
        return int(self.scenarios.sum())

    @property
    def frauds(self) -> int:
        """Number of fraudulent rows simulated so far."""
        return int(self.scenarios[GENUINE + 1 :].sum())


def simulate_warehouse(
    out: Path,
    days: int,
    start: datetime.date = datetime.date(2024, 1, 1),
    seed: int = 7,
    customers: int = 2000,
    terminals: int = 4000,
    transactions_per_day: int = 4000,
) -> dict:
    """Write a simulated warehouse of ``days`` daily partitions and summarise it.

    ``transactions_per_day`` is the expected number of genuine purchases a day.
    At the default sizes about 1% of the rows are fraud, as measured on seeded
    30-day runs. The same arguments give byte-identical files. A rerun replaces
    each partition it writes, including any other ``.parquet`` file in it, and
    leaves partitions of other dates alone. The summary contains the dates, the
    row, fraud and contract-breaking row counts, and the two dataset folders.
    Raises ValueError naming the argument when an argument is invalid.
    """
    out = Path(out)
    _check_arguments(out, days, start, seed, customers, terminals, transactions_per_day)
    began = time.perf_counter()
    logger.info(
        "Simulating %d day(s) from %s with seed %d into %s", days, start, seed, out
    )

    rng = np.random.default_rng(seed)
    population = _make_population(rng, customers, terminals, days, transactions_per_day)
    plan = _plan_fraud(rng, population, days)
    totals = _Totals(
        next_id=0,
        counts=population.prior_count.copy(),
        scenarios=np.zeros(len(FRAUD_SCENARIOS), dtype=np.int64),
    )

    for day in range(days):
        date = start + datetime.timedelta(days=day)
        transactions, labels = _simulate_day(rng, population, plan, day, date, totals)
        _write_partition(out / "transactions", date, transactions)
        _write_partition(out / "labels", date, labels)
        if (day + 1) % 10 == 0 or day + 1 == days:
            logger.info(
                "Wrote %d/%d day(s) up to dt=%s: %d rows, %d frauds so far",
                day + 1,
                days,
                date,
                totals.rows,
                totals.frauds,
            )

    _warn_foreign_partitions(out, start, days)
    summary = _summarise(out, start, days, totals)
    logger.info(
        "Simulated %d rows with %d frauds (%.2f%%) and %d contract-breaking rows "
        "in %.1f s",
        summary["rows"],
        summary["frauds"],
        100 * summary["fraud_rate"],
        summary["contract_breaking_rows"],
        time.perf_counter() - began,
    )
    return summary


def _check_arguments(
    out: Path,
    days: int,
    start: datetime.date,
    seed: int,
    customers: int,
    terminals: int,
    transactions_per_day: int,
) -> None:
    for name, value, minimum in (
        ("days", days, 1),
        ("seed", seed, 0),
        ("customers", customers, 1),
        ("terminals", terminals, 1),
        ("transactions_per_day", transactions_per_day, 1),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < minimum
        ):
            raise ValueError(
                f"{name}={value!r} is invalid; expected an integer >= {minimum}"
            )
    if not isinstance(start, datetime.date) or isinstance(start, datetime.datetime):
        raise ValueError(
            f"start={start!r} is invalid; expected a datetime.date, "
            "such as datetime.date(2024, 1, 1)"
        )
    if days > (datetime.date.max - start).days + 1:
        raise ValueError(
            f"days={days} is invalid for start={start}; the last day would be "
            f"after {datetime.date.max}"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is a file; expected a directory path")


def _make_population(
    rng: np.random.Generator,
    customers: int,
    terminals: int,
    days: int,
    transactions_per_day: int,
) -> _Population:
    """Draw every customer's account, habits and nearby terminals."""
    age_at_start = 1 + rng.exponential(_MEAN_ACCOUNT_AGE_DAYS, customers)
    open_day = -np.minimum(age_at_start, _MAX_ACCOUNT_AGE_DAYS).astype(np.int64)
    new_count = min(
        round(_NEW_ACCOUNTS_PER_CUSTOMER_DAY * customers * days), customers // 2
    )
    new_accounts = rng.choice(customers, new_count, replace=False)
    open_day[new_accounts] = rng.integers(0, days, new_count)

    recent = open_day >= -_FRAUD_ACCOUNT_LOOKBACK_DAYS
    fraud_account = recent & (rng.random(customers) < _FRAUD_ACCOUNT_SHARE)
    fraud_days = rng.integers(5, 11, customers)
    weight = np.where(fraud_account, 0.0, rng.uniform(0.1, 2.0, customers))
    median_amount = rng.uniform(5.0, 150.0, customers)
    nearby = _nearest_terminals(
        rng.uniform(0, _MAP_SIZE, (customers, 2)),
        rng.uniform(0, _MAP_SIZE, (terminals, 2)),
    )

    return _Population(
        open_day=open_day,
        weight=weight,
        median_amount=median_amount,
        nearby=nearby,
        fraud_account=fraud_account,
        fraud_days=fraud_days,
        prior_count=_prior_counts(
            rng, open_day, weight, fraud_account, fraud_days, transactions_per_day
        ),
        terminals=terminals,
        transactions_per_day=transactions_per_day,
    )


def _prior_counts(
    rng: np.random.Generator,
    open_day: np.ndarray,
    weight: np.ndarray,
    fraud_account: np.ndarray,
    fraud_days: np.ndarray,
    transactions_per_day: int,
) -> np.ndarray:
    """Draw each customer's number of transactions before the start date.

    Genuine accounts are assumed to have bought at the rate they have on day 0.
    """
    days_before = np.maximum(-open_day, 0)
    active_weight = weight[open_day <= 0].sum()
    daily_rate = weight * transactions_per_day / max(active_weight, 1e-9)
    expected = np.where(
        fraud_account,
        _FRAUD_ACCOUNT_DAILY_BUYS * np.minimum(days_before, fraud_days),
        daily_rate * days_before,
    )
    return rng.poisson(expected).astype(np.int64)


def _nearest_terminals(customer_xy: np.ndarray, terminal_xy: np.ndarray) -> np.ndarray:
    """Return the ids of each customer's nearest terminals, nearest first."""
    k = min(_NEAREST_TERMINALS, len(terminal_xy))
    _, nearest = KDTree(terminal_xy).query(customer_xy, k=k)
    return nearest.reshape(len(customer_xy), k).astype(np.int64)


def _plan_fraud(rng: np.random.Generator, pop: _Population, days: int) -> _FraudPlan:
    """Schedule compromised terminals and leaked cards, some before the start."""
    scale = pop.transactions_per_day / _REFERENCE_VOLUME
    # Each terminal gets about transactions_per_day / terminals purchases a day, so
    # compromised-terminal fraud already grows with the volume and needs no scale.
    terminal_start = _event_days(
        rng, days, _COMPROMISES_PER_TERMINAL_DAY * pop.terminals
    )
    terminal = rng.integers(0, pop.terminals, terminal_start.size)
    terminal_end = terminal_start + rng.integers(14, 29, terminal_start.size)

    genuine = np.flatnonzero(~pop.fraud_account)
    leak_rate = _LEAKS_PER_DAY * scale if genuine.size else 0.0
    leak_start = _event_days(rng, days, leak_rate)
    leak_customer = rng.choice(genuine, leak_start.size)
    # A leak drawn before its account opens starts on the opening day instead.
    leak_start = np.maximum(leak_start, pop.open_day[leak_customer])
    leak_end = leak_start + rng.integers(2, 8, leak_start.size)
    return _FraudPlan(
        terminal=terminal,
        terminal_start=terminal_start,
        terminal_end=terminal_end,
        leak_customer=leak_customer,
        leak_start=leak_start,
        leak_end=leak_end,
        leak_rate=rng.uniform(3.0, 8.0, leak_start.size),
        leak_inflation=rng.uniform(3.0, 6.0, leak_start.size),
    )


def _event_days(rng: np.random.Generator, days: int, rate: float) -> np.ndarray:
    """Draw the start days of events that happen ``rate`` times a day on average."""
    first = -_WARM_UP_DAYS
    counts = rng.poisson(rate, days - first)
    return np.repeat(np.arange(first, days, dtype=np.int64), counts)


def _simulate_day(
    rng: np.random.Generator,
    pop: _Population,
    plan: _FraudPlan,
    day: int,
    date: datetime.date,
    totals: _Totals,
) -> tuple[pa.Table, pa.Table]:
    """Simulate one day and return its transactions and labels tables."""
    rows = _Rows.concat(
        [
            _genuine_rows(rng, pop, day),
            _new_account_rows(rng, pop, day),
            _leaked_card_rows(rng, pop, plan, day),
            _card_testing_rows(rng, pop, day),
        ]
    )
    _mark_compromised_terminals(rng, rows, plan, day, pop.terminals)
    rows = rows.take(np.argsort(rows.seconds, kind="stable"))

    ids = totals.next_id + np.arange(rows.customer.size, dtype=np.int64)
    count = totals.counts[rows.customer] + _rank_within(rows.customer)
    columns = {
        "transaction_id": ids,
        "event_time": _epoch_micros(date) + rows.seconds * 1_000_000,
        "customer_id": rows.customer,
        "terminal_id": rows.terminal,
        "amount": np.maximum(np.round(rows.amount, 2), 0.01),
        "hour": rows.seconds // 3600,
        "user_age_days": day - pop.open_day[rows.customer] + 1,
        "transaction_count": count,
    }
    amount_null, broken = _break_contract(rng, columns)
    totals.add_day(rows, broken)
    return _tables(columns, amount_null, rows.scenario)


def _genuine_rows(rng: np.random.Generator, pop: _Population, day: int) -> _Rows:
    """Draw the day's genuine purchases of every open account."""
    active = (pop.open_day <= day) & (pop.weight > 0)
    total_weight = pop.weight[active].sum()
    scale = pop.transactions_per_day / total_weight if total_weight > 0 else 0.0
    counts = rng.poisson(np.where(active, pop.weight * scale, 0.0))
    customer = np.repeat(np.arange(counts.size), counts)

    n = customer.size
    seconds = np.floor(rng.normal(_MIDDAY_SECONDS, _DAYTIME_SPREAD_SECONDS, n))
    seconds = seconds.astype(np.int64) % _SECONDS_PER_DAY
    terminal = pop.nearby[customer, rng.integers(0, pop.nearby.shape[1], n)]
    amount = pop.median_amount[customer] * rng.lognormal(0.0, 0.5, n)
    return _Rows.make(customer, terminal, seconds, amount, GENUINE)


def _new_account_rows(rng: np.random.Generator, pop: _Population, day: int) -> _Rows:
    """Draw large night-time purchases of fraud accounts in their first days."""
    age = day - pop.open_day
    active = pop.fraud_account & (age >= 0) & (age < pop.fraud_days)
    counts = rng.poisson(np.where(active, _FRAUD_ACCOUNT_DAILY_BUYS, 0.0))
    customer = np.repeat(np.arange(counts.size), counts)

    n = customer.size
    seconds = rng.integers(0, 5 * 3600, n)
    terminal = pop.nearby[customer, rng.integers(0, pop.nearby.shape[1], n)]
    amount = rng.lognormal(np.log(_FRAUD_ACCOUNT_MEDIAN_AMOUNT), 0.5, n)
    return _Rows.make(customer, terminal, seconds, amount, NEW_ACCOUNT)


def _leaked_card_rows(
    rng: np.random.Generator, pop: _Population, plan: _FraudPlan, day: int
) -> _Rows:
    """Draw bursts of inflated purchases on leaked cards, at any terminal or hour."""
    active = (plan.leak_start <= day) & (day < plan.leak_end)
    counts = rng.poisson(np.where(active, plan.leak_rate, 0.0))
    event = np.repeat(np.arange(counts.size), counts)
    customer = plan.leak_customer[event]

    n = customer.size
    seconds = rng.integers(0, _SECONDS_PER_DAY, n)
    terminal = rng.integers(0, pop.terminals, n)
    amount = (
        pop.median_amount[customer]
        * plan.leak_inflation[event]
        * rng.lognormal(0.0, 0.2, n)
    )
    return _Rows.make(customer, terminal, seconds, amount, LEAKED_CARD)


def _card_testing_rows(rng: np.random.Generator, pop: _Population, day: int) -> _Rows:
    """Draw runs of tiny purchases that test stolen cards at one terminal."""
    eligible = np.flatnonzero(~pop.fraud_account & (pop.open_day <= day))
    rate = _CARD_TESTS_PER_DAY * pop.transactions_per_day / _REFERENCE_VOLUME
    events = rng.poisson(rate) if eligible.size else 0
    sizes = rng.integers(8, 21, events)
    event = np.repeat(np.arange(events), sizes)
    customer = rng.choice(eligible, events)[event]

    n = event.size
    terminal = rng.integers(0, pop.terminals, events)[event]
    first_second = rng.integers(0, _SECONDS_PER_DAY - 1800, events)[event]
    elapsed = _cumsum_within(1 + rng.poisson(40, n), sizes)
    seconds = np.minimum(first_second + elapsed, _SECONDS_PER_DAY - 1)
    amount = rng.uniform(0.01, 2.0, n)
    return _Rows.make(customer, terminal, seconds, amount, CARD_TESTING)


def _cumsum_within(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Return running sums of ``values`` that restart at each group of ``sizes``."""
    total = np.cumsum(values)
    group_first = np.cumsum(sizes) - sizes
    return total - np.repeat(total[group_first] - values[group_first], sizes)


def _mark_compromised_terminals(
    rng: np.random.Generator, rows: _Rows, plan: _FraudPlan, day: int, terminals: int
) -> None:
    """Relabel a share of genuine purchases at today's compromised terminals."""
    compromised = np.zeros(terminals, dtype=bool)
    active = (plan.terminal_start <= day) & (day < plan.terminal_end)
    compromised[plan.terminal[active]] = True
    hit = compromised[rows.terminal] & (rows.scenario == GENUINE)
    hit &= rng.random(rows.terminal.size) < _COMPROMISED_FRAUD_SHARE
    rows.scenario[hit] = COMPROMISED_TERMINAL


def _rank_within(keys: np.ndarray) -> np.ndarray:
    """Return each element's position among the earlier elements with its key."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    position = np.arange(keys.size)
    group_start = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    first = np.maximum.accumulate(np.where(group_start, position, 0))
    rank = np.empty(keys.size, dtype=np.int64)
    rank[order] = position - first
    return rank


def _epoch_micros(date: datetime.date) -> int:
    """Return midnight UTC of ``date`` in microseconds since the Unix epoch."""
    days = date.toordinal() - datetime.date(1970, 1, 1).toordinal()
    return days * _SECONDS_PER_DAY * 1_000_000


def _break_contract(
    rng: np.random.Generator, columns: dict[str, np.ndarray]
) -> tuple[np.ndarray, int]:
    """Break the contract in a few rows in place, and return the null mask and count.

    The count is 0 to 3 rows, and at most 0.5% of the day's rows.
    """
    n = columns["transaction_id"].size
    drawn = rng.choice(len(_BROKEN_ROW_PROBABILITIES), p=_BROKEN_ROW_PROBABILITIES)
    broken = min(int(drawn), int(n * _MAX_BROKEN_SHARE))
    amount_null = np.zeros(n, dtype=bool)
    rows = rng.choice(n, broken, replace=False)
    kinds = rng.integers(0, 5, broken)
    amount = columns["amount"]
    amount[rows[kinds == 0]] = 0.0
    amount[rows[kinds == 1]] *= -1.0
    amount_null[rows[kinds == 2]] = True
    columns["hour"][rows[kinds == 3]] = 24
    columns["user_age_days"][rows[kinds == 4]] = 0
    return amount_null, broken


def _tables(
    columns: dict[str, np.ndarray], amount_null: np.ndarray, scenario: np.ndarray
) -> tuple[pa.Table, pa.Table]:
    """Build the transactions and labels tables of one day."""
    arrays = [
        pa.array(
            columns[field.name],
            type=field.type,
            mask=amount_null if field.name == "amount" else None,
        )
        for field in TRANSACTIONS_SCHEMA
    ]
    transactions = pa.Table.from_arrays(arrays, schema=TRANSACTIONS_SCHEMA)
    labels = pa.Table.from_arrays(
        [
            pa.array(columns["transaction_id"], type=pa.int64()),
            pa.array((scenario != GENUINE).astype(np.int8), type=pa.int8()),
            pa.array(scenario, type=pa.int8()),
        ],
        schema=LABELS_SCHEMA,
    )
    return transactions, labels


def _write_partition(root: Path, date: datetime.date, table: pa.Table) -> Path:
    """Replace the partition of ``date`` under ``root`` with ``table``.

    The file is written under a hidden name and renamed, so readers never see
    half a file, and the ``_SUCCESS`` marker appears only after the rename.
    """
    folder = root / f"dt={date.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / SUCCESS_MARKER
    marker.unlink(missing_ok=True)
    for other in folder.glob("*.parquet"):
        if other.name != PART_NAME:
            logger.warning("Removing %s, which this simulation did not write", other)
            other.unlink()

    target = folder / PART_NAME
    temporary = folder / f".{PART_NAME}.tmp"
    pq.write_table(table, temporary)
    os.replace(temporary, target)
    marker.write_bytes(b"")
    return target


def _warn_foreign_partitions(out: Path, start: datetime.date, days: int) -> None:
    """Log a warning when ``out`` has partitions outside this run's dates."""
    written = {f"dt={start + datetime.timedelta(days=day)}" for day in range(days)}
    for name in ("transactions", "labels"):
        others = sorted(
            p.name for p in (out / name).glob("dt=*") if p.name not in written
        )
        if others:
            logger.warning(
                "%s has %d partition(s) outside this run's dates, such as %s. "
                "Delete them to keep only this run's data.",
                out / name,
                len(others),
                others[0],
            )


def _summarise(out: Path, start: datetime.date, days: int, totals: _Totals) -> dict:
    """Build the summary that :func:`simulate_warehouse` returns."""
    return {
        "days": days,
        "start": start.isoformat(),
        "end": (start + datetime.timedelta(days=days - 1)).isoformat(),
        "rows": totals.rows,
        "frauds": totals.frauds,
        "fraud_rate": totals.frauds / totals.rows if totals.rows else 0.0,
        "frauds_by_scenario": {
            FRAUD_SCENARIOS[code]: int(totals.scenarios[code])
            for code in FRAUD_SCENARIOS
            if code != GENUINE
        },
        "contract_breaking_rows": totals.broken,
        "transactions": str(out / "transactions"),
        "labels": str(out / "labels"),
    }
