"""Data quality: validate, profile and drift-check each day's transaction partition.

The run for day D starts at 03:00 UTC on D + 1, an hour after the nightly
scoring run, so the trend chart can include D's suspicious share. Set the
``start`` and ``end`` Params to check a range of days: one mapped ``check``
task runs per day. Each day's quality table goes to
``<output>/quality/dt=D/part-00000.parquet``; ``publish`` then rebuilds the
GX Data Docs in ``<output>/data_docs/`` and ``<output>/quality/trend.png``.
A missing or broken partition is reported in the table instead of failing the
run. A run fails when a report cannot be written or a Param is invalid. All
logic lives in ``metaguard.quality``; this file is wiring.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import (
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from metaguard.assets import QUALITY_REPORTS
from metaguard.dagkit import no_retry, run_date, run_settings, task_defaults


def _settings():
    from metaguard.quality import load_quality_settings

    context = get_current_context()
    params = context["params"]
    with no_retry():
        return run_settings(params), load_quality_settings(params), context


@dag(
    dag_id="metaguard_data_quality",
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    default_args=task_defaults(),
    params={
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="First partition date YYYY-MM-DD; empty uses the logical date",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last partition date YYYY-MM-DD; empty uses the logical date",
        ),
        "psi_warn": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="Warn at or above this PSI (METAGUARD_PSI_WARN, default 0.1)",
        ),
        "psi_flag": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="Flag at or above this PSI (METAGUARD_PSI_FLAG, default 0.25)",
        ),
    },
    tags=["metaguard"],
    doc_md=__doc__,
)
def metaguard_data_quality():
    @task
    def plan() -> list[str]:
        from metaguard import quality

        _, _, context = _settings()
        params = context["params"]
        with no_retry():
            fallback = run_date(params, context)
            days = quality.requested_days(
                params.get("start"), params.get("end"), fallback
            )
        return [day.isoformat() for day in days]

    @task(
        outlets=[QUALITY_REPORTS],
        map_index_template="{{ quality_day }}",
        max_active_tis_per_dagrun=2,
    )
    def check(day: str) -> dict:
        import datetime as dt

        from metaguard import quality

        settings, quality_settings, context = _settings()
        context["quality_day"] = day
        with no_retry():
            day_date = dt.date.fromisoformat(day)
            summary = quality.check_day(
                settings, quality_settings, day_date, context["run_id"]
            )
        context["outlet_events"][QUALITY_REPORTS].extra = quality.asset_extra(summary)
        return summary

    # Runs after failed days too, so the index and chart show the days that
    # worked. It then fails the run when a day has no report from this run.
    @task(trigger_rule="all_done_min_one_success")
    def publish(days: list[str]) -> dict:
        import datetime as dt

        from airflow.sdk.exceptions import AirflowFailException

        from metaguard import quality

        settings, quality_settings, context = _settings()
        dates = [dt.date.fromisoformat(day) for day in days]
        with no_retry():
            result = quality.publish_range(
                settings, quality_settings, dates, context["run_id"]
            )
        if result["days_without_report"]:
            raise AirflowFailException(
                f"no quality table was written for {result['days_without_report']} "
                "in this run; see the failed 'check' tasks"
            )
        return result

    days = plan()
    checked = check.expand(day=days)
    checked >> publish(days)


dag = metaguard_data_quality()
