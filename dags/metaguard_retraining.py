"""Weekly retraining: fit a challenger on labelled history, promote it if better.

A run dated D validates on the days ending at D, skips the label-delay gap
before them and trains on the days before the gap. The scheduled run for the
week starting D runs a week later, so those days have had time to collect
labels. The challenger becomes champion only when its average precision beats
the champion's, re-scored on the same validation rows, by the margin. The
nightly DAG keeps scoring with the old champion when this DAG fails.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from metaguard.assets import CHAMPION_MODEL
from metaguard.dagkit import no_retry, run_date, run_settings, task_defaults


@dag(
    dag_id="metaguard_retraining",
    schedule=CronDataIntervalTimetable("0 4 * * 1", timezone="UTC"),
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last validation day YYYY-MM-DD; empty uses the logical date",
        ),
        "train_days": Param(7, type="integer", minimum=1, description="Training days"),
        "gap_days": Param(
            7, type="integer", minimum=0, description="Label delay, days"
        ),
        "valid_days": Param(
            7, type="integer", minimum=1, description="Validation days"
        ),
        "estimator": Param(
            "random_forest",
            enum=[
                "random_forest",
                "hist_gradient_boosting",
                "logistic_regression",
                "ensemble",
            ],
        ),
        "feature_set": Param("auto", enum=["auto", "contract", "history"]),
        "promotion_margin": Param(
            0.0,
            type="number",
            minimum=0,
            maximum=1,
            description="Average precision the challenger must gain to be promoted",
        ),
        "seed": Param(0, type="integer", description="Random seed of the estimator"),
    },
    tags=["metaguard"],
    doc_md=__doc__,
)
def metaguard_retraining():
    @task
    def retrain() -> dict:
        from metaguard.training import train, windows_ending

        context = get_current_context()
        params = context["params"]
        settings = run_settings(params)
        with no_retry():
            day = run_date(params, context)
            windows = windows_ending(
                day, params["train_days"], params["gap_days"], params["valid_days"]
            )
            return train(
                settings,
                windows,
                estimator=params["estimator"],
                feature_set=params["feature_set"],
                seed=int(params["seed"]),
                margin=float(params["promotion_margin"]),
            )

    @task(outlets=[CHAMPION_MODEL])
    def announce_champion(decision: dict) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        if not decision["promoted"]:
            raise AirflowSkipException(
                f"challenger {decision['challenger']} not promoted: "
                f"{decision['reason']}"
            )
        get_current_context()["outlet_events"][CHAMPION_MODEL].extra = {
            "version": decision["challenger"],
            "metrics": decision["challenger_metrics"],
        }
        return decision["challenger"]

    announce_champion(retrain())


dag = metaguard_retraining()
