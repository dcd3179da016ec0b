"""Faults in real processes: a crash mid-publish, concurrent runs, reruns, retries."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from metaguard import nightly
from metaguard.config import load_settings
from metaguard.dagkit import RETRY_ARGS, no_retry
from metaguard.exceptions import (
    BadRowShareExceeded,
    ConfigError,
    ContractViolation,
    ModelIntegrityError,
    PartitionNotFound,
    PathOutsideRoot,
    SchemaMismatch,
    UnreadableFile,
)
from tests.builders import good_rows, write_partition
from tests.conftest import load_dag
from tests.integration.test_bad_input import register_champion

DAY = dt.date(2024, 3, 2)
DATE = DAY.isoformat()

# Runs the nightly steps, but stalls in os.replace when the risk report is
# about to be renamed into place. The file being renamed is complete by then:
# the single scored staging chunk, or a hidden temporary file when several
# chunks were merged. The child writes its path to argv[2], which signals the
# parent to send SIGKILL.
STALL_BEFORE_REPORT_RENAME = """
import datetime as dt
import os
import sys
import time
from pathlib import Path

from metaguard import nightly
from metaguard.config import load_settings

signal_file = Path(sys.argv[2])
real_replace = os.replace


def stalling_replace(source, target):
    if Path(target).parent.parent.name == "risk_reports":
        signal_file.write_text(str(source))
        time.sleep(300)
    real_replace(source, target)


os.replace = stalling_replace
nightly.run(load_settings(), dt.date.fromisoformat(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    register_champion(root)
    return root


@pytest.fixture
def environ(tmp_path, models) -> dict[str, str]:
    return {
        "METAGUARD_WAREHOUSE": str(tmp_path / "warehouse"),
        "METAGUARD_OUTPUT": str(tmp_path / "output"),
        "METAGUARD_MODELS": str(models),
    }


@pytest.fixture
def settings(environ):
    return load_settings(environ)


def write_day(settings, rows: int, files: int = 1) -> None:
    """Write ``rows`` rows over ``files`` files, with two bad rows in the first."""
    per_file = rows // files
    for index in range(files):
        frame = good_rows(per_file, start_id=1 + index * per_file, seed=index)
        if index == 0:
            frame.loc[0, "hour"] = 24
            frame.loc[1, "amount"] = -1.0
        write_partition(settings.warehouse, DAY, frame, f"part-{index:05d}.parquet")


def report_path(settings) -> Path:
    return settings.output / "risk_reports" / f"dt={DATE}" / "part-00000.parquet"


def child_env(environ: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **environ, "PYTHONPATH": str(Path(__file__).parents[2])}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def kill_during_report_rename(environ: dict[str, str], tmp_path: Path) -> Path:
    """Start a run, SIGKILL it between writing the report and renaming it.

    Return the temporary report file that the killed run left behind.
    """
    signal_file = tmp_path / "stalled"
    child = subprocess.Popen(
        [sys.executable, "-c", STALL_BEFORE_REPORT_RENAME, DATE, str(signal_file)],
        env=child_env(environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not signal_file.exists():
            if child.poll() is not None:
                pytest.fail(
                    f"child exited early: {child.stderr.read().decode()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("child did not reach the report rename within 120 s")
            time.sleep(0.1)
        time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return Path(signal_file.read_text())


def test_kill_before_rename_leaves_no_report(environ, settings, tmp_path):
    write_day(settings, 2000)

    temporary = kill_during_report_rename(environ, tmp_path)

    assert temporary.parent.name == "scored"
    assert temporary.name == "chunk-00000.parquet"
    assert pq.read_table(temporary).num_rows == 1998
    assert not report_path(settings).exists()
    assert not (settings.output / "runs" / f"dt={DATE}" / "summary.json").exists()
    summary = nightly.run(settings, DAY)
    assert summary["scored"] == 1998
    assert pq.read_table(report_path(settings)).num_rows == 1998
    visible = [
        f
        for f in files_under(settings.output)
        if not f.startswith("_staging/") and "/." not in f
    ]
    assert len(visible) == 4


def test_kill_before_rename_keeps_old_report(environ, settings, tmp_path):
    write_day(settings, 1000)
    old_summary = nightly.run(settings, DAY)
    old_report = pq.read_table(report_path(settings))
    write_day(settings, 2000)

    kill_during_report_rename(environ, tmp_path)

    assert pq.read_table(report_path(settings)).equals(old_report)
    visible = [
        p.name
        for p in report_path(settings).parent.iterdir()
        if not p.name.startswith(".")
    ]
    assert visible == ["part-00000.parquet"]
    summary = nightly.run(settings, DAY)
    assert summary["run_key"] != old_summary["run_key"]
    assert pq.read_table(report_path(settings)).num_rows == 1998


def test_concurrent_runs_do_not_interleave(environ, settings):
    write_day(settings, 24_000, files=3)
    environ = {**environ, "METAGUARD_BATCH_ROWS": "4000"}
    command = [
        str(Path(sys.executable).with_name("metaguard")),
        "score",
        "--date",
        DATE,
    ]

    children = [
        subprocess.Popen(
            command,
            env=child_env(environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [child.communicate(timeout=240) for child in children]

    assert [child.returncode for child in children] == [0, 0], results
    run_keys = {json.loads(stdout)["run_key"] for stdout, _ in results}
    assert len(run_keys) == 2
    summary_path = settings.output / "runs" / f"dt={DATE}" / "summary.json"
    assert json.loads(summary_path.read_text())["run_key"] in run_keys
    concurrent = pq.read_table(report_path(settings))
    quarantine = settings.output / "quarantine" / f"dt={DATE}" / "part-00000.parquet"
    concurrent_quarantine = pq.read_table(quarantine)
    assert files_under(settings.output) == [
        f"quarantine/dt={DATE}/part-00000.parquet",
        f"risk_reports/dt={DATE}/part-00000.parquet",
        f"runs/dt={DATE}/summary.json",
        f"validation/dt={DATE}/validation_result.json",
    ]
    nightly.run(settings, DAY)
    assert concurrent.equals(pq.read_table(report_path(settings)))
    assert concurrent_quarantine.equals(pq.read_table(quarantine))
    assert concurrent.num_rows == 23_998


def test_rerun_gives_same_report(settings):
    write_day(settings, 3000, files=2)
    quarantine = settings.output / "quarantine" / f"dt={DATE}" / "part-00000.parquet"

    first_summary = nightly.run(settings, DAY)
    first = pq.read_table(report_path(settings))
    first_quarantine = pq.read_table(quarantine)
    second_summary = nightly.run(settings, DAY)

    assert pq.read_table(report_path(settings)).equals(first)
    assert pq.read_table(quarantine).equals(first_quarantine)
    for key in ("rows_in", "scored", "quarantined", "suspicious", "risk_levels"):
        assert second_summary[key] == first_summary[key], key
    assert first.column("transaction_id").to_pylist() == list(range(3, 3001))


def test_dag_tasks_retry_with_backoff():
    dag = load_dag("metaguard_nightly_scoring")

    for task in dag.tasks:
        assert task.retries == RETRY_ARGS["retries"], task.task_id
        assert task.retry_delay == dt.timedelta(seconds=30), task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.max_retry_delay == dt.timedelta(minutes=10), task.task_id


@pytest.mark.parametrize(
    "error",
    [
        PartitionNotFound("partition folder missing"),
        SchemaMismatch("column 'hour' has type string"),
        UnreadableFile("file is not Parquet"),
        BadRowShareExceeded("5 of 100 rows"),
        ContractViolation("contract broken"),
        ConfigError("METAGUARD_RISK_THRESHOLD='x' is not a number"),
        ModelIntegrityError("sha256 mismatch"),
        PathOutsideRoot("outside the root"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_no_retry_fails_contract_errors(error):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(
        AirflowFailException, match=re.escape(f"{type(error).__name__}: {error}")
    ):
        with no_retry():
            raise error


@pytest.mark.parametrize(
    "error",
    [OSError(5, "Input/output error"), TimeoutError("read timed out")],
    ids=["OSError", "TimeoutError"],
)
def test_no_retry_passes_io_errors(error):
    with pytest.raises(type(error)) as raised:
        with no_retry():
            raise error

    assert raised.value is error
