"""Glue between Airflow task contexts and MetaGuard's steps.

DAG files stay wiring: they call these helpers to resolve the run's date and
settings, to turn contract violations into failures without retries, and to
log a one-line summary when a task fails.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from metaguard.config import Settings, load_settings, parse_date
from metaguard.exceptions import (
    ConfigError,
    ContractViolation,
    ModelIntegrityError,
    PathOutsideRoot,
)

log = logging.getLogger(__name__)

# Settings that a DAG Param may override for one run. Paths are not among
# them: they come from the environment only, so no run can redirect reads or
# writes outside the configured roots.
PARAM_SETTINGS = ("risk_threshold", "max_bad_row_share", "log_level")

# Failures that a retry cannot fix: bad input, bad configuration, a model
# that fails its integrity check. Anything else (I/O errors, a lost worker)
# goes through the task's retries with exponential backoff.
NOT_RETRYABLE = (ContractViolation, ConfigError, ModelIntegrityError, PathOutsideRoot)

RETRY_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
}


def task_defaults() -> dict:
    """Return the DAGs' ``default_args``: retries, failure log and pool.

    ``METAGUARD_POOL`` names the Airflow pool whose slots cap MetaGuard's
    running tasks across all runs (the compose deployment creates
    ``metaguard``); without it tasks use ``default_pool``.
    """
    return {
        **RETRY_ARGS,
        "pool": os.environ.get("METAGUARD_POOL") or "default_pool",
        "on_failure_callback": log_failure,
    }


def run_settings(params: Mapping[str, object]) -> Settings:
    """Load settings from the environment with this run's Params applied."""
    with no_retry():
        return load_settings(overrides={k: params.get(k) for k in PARAM_SETTINGS})


def run_date(params: Mapping[str, object], context: Mapping[str, object]) -> dt.date:
    """Return the partition date: the ``date`` Param, else the logical date.

    Manually triggered Airflow 3 runs may have no logical date; they fall back
    to the run's ``run_after`` time.
    """
    with no_retry():
        if params.get("date"):
            return parse_date(params["date"], "Param 'date'")
        logical = context.get("logical_date")
        if logical is None:
            logical = getattr(context.get("dag_run"), "run_after", None)
        if logical is None:
            raise ConfigError("the run has no logical date; set the 'date' Param")
        return parse_date(logical, "logical date")


@contextmanager
def no_retry() -> Iterator[None]:
    """Re-raise failures that a retry cannot fix as ``AirflowFailException``."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except NOT_RETRYABLE as error:
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error


def log_failure(context: Mapping[str, object]) -> None:
    """Log one line per failed task: DAG, task, date and the reason."""
    task_instance = context.get("task_instance") or context.get("ti")
    params = context.get("params") or {}
    logical = context.get("logical_date")
    date = params.get("date") or (logical.date().isoformat() if logical else "?")
    error = context.get("exception")
    log.error(
        "MetaGuard task failed: dag=%s task=%s date=%s try=%s reason=%s",
        getattr(task_instance, "dag_id", "?"),
        getattr(task_instance, "task_id", "?"),
        date,
        getattr(task_instance, "try_number", "?"),
        str(error).splitlines()[0] if error else "unknown",
    )
