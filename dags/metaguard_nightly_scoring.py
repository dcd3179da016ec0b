"""Nightly scoring: validate a day's partition, score it, publish the risk report.

The logical date is the partition date: the run for day D starts at 02:00 UTC
on D + 1, once the partition has landed. Set the ``date`` Param to run any
other day. All logic lives in the ``metaguard`` package; this file is wiring.
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

from metaguard.assets import RISK_REPORTS
from metaguard.dagkit import no_retry, run_date, run_settings, task_defaults


def _context():
    context = get_current_context()
    params = context["params"]
    return run_settings(params), run_date(params, context)


@dag(
    dag_id="metaguard_nightly_scoring",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args=task_defaults(),
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Partition date YYYY-MM-DD; empty uses the logical date",
        ),
        "risk_threshold": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Suspicious above this score (METAGUARD_RISK_THRESHOLD)",
        ),
        "max_bad_row_share": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Fail when more rows than this share are quarantined",
        ),
    },
    tags=["metaguard"],
    doc_md=__doc__,
)
def metaguard_nightly_scoring():
    @task
    def locate() -> dict:
        from metaguard import nightly

        settings, day = _context()
        with no_retry():
            return nightly.locate(settings, day)

    @task
    def validate(located: dict) -> dict:
        from metaguard import nightly

        settings, _ = _context()
        with no_retry():
            return nightly.validate(settings, located)

    @task
    def chunks_of(validated: dict) -> list[str]:
        return validated["chunks"]

    @task(max_active_tis_per_dagrun=4)
    def score(located: dict, chunk: str) -> dict:
        from metaguard import nightly

        settings, _ = _context()
        with no_retry():
            return nightly.score_chunk(settings, located, chunk)

    # An empty partition stages no chunk, so the mapped score task is skipped.
    # none_failed still publishes the empty report then, and publish does not
    # run when an upstream task failed.
    @task(outlets=[RISK_REPORTS], trigger_rule="none_failed")
    def publish(located: dict, validated: dict, scored: list[dict]) -> dict:
        from metaguard import nightly

        settings, _ = _context()
        with no_retry():
            # Index the mapped results: iterating probes one past the end,
            # which the Task SDK logs as a missing XCom.
            results = [scored[i] for i in range(len(scored))]
            summary = nightly.publish(settings, located, validated, results)
        extra = {
            k: summary[k]
            for k in (
                "date",
                "rows_in",
                "scored",
                "quarantined",
                "suspicious",
                "model_version",
                "report_path",
            )
        }
        get_current_context()["outlet_events"][RISK_REPORTS].extra = extra
        return summary

    located = locate()
    validated = validate(located)
    scored = score.partial(located=located).expand(chunk=chunks_of(validated))
    publish(located, validated, scored)


dag = metaguard_nightly_scoring()
