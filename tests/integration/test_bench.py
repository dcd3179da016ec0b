"""``metaguard bench``: the JSON it prints, the page it writes, its record checks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from metaguard import bench

FIGURES = ("seconds", "rows_per_second", "peak_rss_mb")


@pytest.mark.slow
def test_bench_json_at_tiny_size(tmp_path):
    command = [
        sys.executable,
        "-m",
        "metaguard.cli",
        "bench",
        "--rows",
        "20000",
        "--sample",
        "50",
        "--json",
        "--workdir",
        str(tmp_path),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    summary_path = tmp_path / "output" / "runs" / "dt=2024-01-01" / "summary.json"
    summary = json.loads(summary_path.read_text())

    assert list(result)[:5] == ["rows", *bench.PATHS]
    assert result["rows"] == 20_000
    for path in bench.PATHS:
        for figure in FIGURES:
            assert result[path][figure] > 0, (path, figure)
    assert result["per_transaction"]["sample_rows"] == 50
    assert set(result["metaguard"]["steps"]) == {
        "locate",
        "validate",
        "score_chunk",
        "publish",
    }
    assert summary["rows_in"] == 20_000
    assert summary["quarantined"] == 20_000 // bench.BAD_ROW_EVERY


def fake_run(rows: int, metaguard_seconds: float, metaguard_mb: float) -> dict:
    """Return a benchmark result with made-up figures for rendering tests."""

    def entry(seconds: float, mb: float, count: int = rows) -> dict:
        return {
            "rows": count,
            "seconds": seconds,
            "cpu_seconds": seconds,
            "rows_per_second": count / seconds,
            "peak_rss_mb": mb,
        }

    metaguard = entry(metaguard_seconds, metaguard_mb)
    metaguard["chunks"] = max(rows // 1_000_000, 1)
    metaguard["steps"] = {
        "locate": 0.1,
        "validate": 1.0,
        "score_chunk": 2.0,
        "publish": 0.5,
    }
    return {
        "rows": rows,
        "per_transaction": entry(5.0, 300.0, count=1_000),
        "straightforward": entry(3.0, 600.0),
        "metaguard": metaguard,
        "floor": entry(2.0, 400.0),
        "batch_rows": 250_000,
        "load_average": {"before": 0.5, "after": 1.5},
    }


def test_docs_list_every_path_and_target():
    small = fake_run(1_000_000, 4.0, 500.0)
    large = fake_run(10_000_000, 40.0, 560.0)
    page = bench.render_docs(
        [small, large],
        "metaguard bench --rows 1000000 10000000",
        {
            "cores": 2,
            "memory_gb": 25.3,
            "cpu": "test CPU",
            "python": "3.11",
            "numpy": "2",
            "pandas": "3",
            "pyarrow": "26",
            "scikit-learn": "1.9",
            "great_expectations": "1.24",
        },
    )

    assert "\nmetaguard bench --rows 1000000 10000000\n" in page
    assert "## 1,000,000 rows" in page
    assert "## 10,000,000 rows" in page
    for path in bench.PATHS:
        assert f"| {path} |" in page
    assert (
        "| time at most 1.25x the floor's (1,000,000 rows) | wall 2.00x, CPU 2.00x "
        "| no, 60% over the limit |" in page
    )
    assert "| peak RSS 1M -> 10M at most 1.3x | 1.12x | yes |" in page
    assert "| time 1M -> 10M at most 11x | wall 10.00x, CPU 10.00x | yes |" in page
    assert "| peak RSS under 1,500 MB at 10M rows | 560 MB | yes |" in page
    assert "validate: 1.0 s" in page


def test_time_target_judged_on_worse_figure():
    run = fake_run(1_000_000, 2.4, 500.0)
    run["metaguard"]["cpu_seconds"] = 3.0
    checks = {c["target"]: c for c in bench.target_checks([run])}
    over_floor = checks["time at most 1.25x the floor's (1,000,000 rows)"]

    assert over_floor["measured"] == "wall 1.20x, CPU 1.50x"
    assert not over_floor["met"]
    assert over_floor["miss"] == "20% over the limit"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, []),
        ({"amount": 0.0}, ["amount_in_range"]),
        ({"amount": 10_000_000.0}, []),
        ({"amount": float("nan")}, ["amount_not_null"]),
        ({"hour": 24}, ["hour_in_range"]),
        (
            {"user_age_days": 0, "transaction_count": -1},
            ["user_age_days_in_range", "transaction_count_in_range"],
        ),
        ({"transaction_id": None}, ["transaction_id_not_null"]),
    ],
    ids=[
        "valid",
        "zero-amount",
        "max-amount",
        "nan-amount",
        "hour-24",
        "two-rules",
        "null-id",
    ],
)
def test_record_problems(change, expected):
    record = {
        "transaction_id": 1,
        "amount": 5.0,
        "hour": 0,
        "user_age_days": 1,
        "transaction_count": 0,
    }
    assert bench.record_problems({**record, **change}) == expected
