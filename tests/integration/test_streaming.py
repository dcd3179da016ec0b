"""The nightly path streams: memory follows batch and chunk sizes, not the partition.

These tests run ``metaguard.nightly`` with small batch and chunk sizes, so
partitions of a few thousand to a million rows span many batches, files and
chunks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from metaguard import bench, nightly, registry
from metaguard.config import load_settings
from metaguard.features import CONTRACT_FEATURES, feature_frame
from metaguard.scoring import reason_codes
from tests.builders import good_rows, write_partition

DAY = bench.BENCH_DAY

# Runs the nightly path in a fresh process and prints its peak RSS growth.
# The libraries are imported and the kernel's peak RSS mark (VmHWM) is reset
# before the run, so the growth counts the run's own allocations.
MEMORY_PROBE = r"""
import json, sys
from pathlib import Path
import great_expectations, pandas, sklearn.linear_model
from metaguard import bench, nightly

def status_mb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024 / 1e6

nightly.CHUNK_ROWS = int(sys.argv[2])
settings = bench.bench_settings(Path(sys.argv[1]))
try:
    Path("/proc/self/clear_refs").write_text("5")
except OSError:
    print(json.dumps({"reset": False}))
    sys.exit(0)
before = status_mb("VmRSS:")
summary = nightly.run(settings, bench.BENCH_DAY)
growth = status_mb("VmHWM:") - before
print(json.dumps({"reset": True, "growth_mb": growth, "summary": summary}))
"""


def register_small_model(models: Path) -> str:
    """Register a logistic regression on the contract features as the champion.

    Prediction is cheap, so the tests' time goes to validation and I/O.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(3)
    frame = bench.transaction_table(rng, 1, 5_000, bad_every=0).to_pandas()
    labels = ((frame["amount"] > 300) & (frame["hour"] < 6)).astype(np.int8)
    pipeline = Pipeline([("model", LogisticRegression(max_iter=500))])
    features = list(CONTRACT_FEATURES)
    pipeline.fit(feature_frame(frame, features), labels)
    metadata = {"feature_set": "contract", "features": features}
    version = registry.register(models, pipeline, metadata)
    registry.set_champion(models, version, "test model")
    return version


def settings_for(root: Path, batch_rows: int, **extra):
    """Return settings whose roots are under ``root``, with small batches."""
    overrides = {
        "warehouse": str(root / "warehouse"),
        "output": str(root / "output"),
        "models": str(root / "models"),
        "batch_rows": batch_rows,
        **extra,
    }
    return replace(load_settings({}, overrides=overrides), passthrough_columns=())


def probe_memory(root: Path, rows: int, batch_rows: int, chunk_rows: int) -> dict:
    """Generate ``rows`` rows under ``root`` and run the memory probe on them."""
    settings = bench.bench_settings(root)
    register_small_model(settings.models)
    bench.write_partition(settings.warehouse, DAY, rows, file_rows=100_000)
    env = dict(os.environ, METAGUARD_BATCH_ROWS=str(batch_rows))
    completed = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(root), str(chunk_rows)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_flat_as_partition_grows(tmp_path):
    small = probe_memory(tmp_path / "small", 300_000, 20_000, 50_000)
    if not small["reset"]:
        pytest.skip("needs a writable /proc/self/clear_refs to reset the peak RSS")
    large = probe_memory(tmp_path / "large", 1_200_000, 20_000, 50_000)
    assert small["summary"]["rows_in"] == 300_000
    assert large["summary"]["rows_in"] == 1_200_000
    assert large["summary"]["scored"] == 1_200_000 - 1_200_000 // bench.BAD_ROW_EVERY
    # Four times the rows: the growth of the peak may rise by half at most.
    # Most of what grows is the id-only duplicate pass, about 20 bytes per
    # row (24 MB at 1.2M rows).
    assert large["growth_mb"] < 1.5 * small["growth_mb"], (small, large)


def test_streamed_scores_match_one_call(tmp_path, monkeypatch):
    monkeypatch.setattr(nightly, "CHUNK_ROWS", 8_000)
    settings = settings_for(tmp_path, batch_rows=3_000)
    version = register_small_model(settings.models)
    bench.write_partition(settings.warehouse, DAY, 25_000, file_rows=10_000)

    summary = nightly.run(settings, DAY)

    source = pd.concat(
        pq.read_table(path).to_pandas()
        for path in sorted((settings.warehouse / "transactions").rglob("*.parquet"))
    )
    bad = source["transaction_id"] % bench.BAD_ROW_EVERY == 0
    valid = source.loc[~bad].reset_index(drop=True)
    report = pq.read_table(summary["report_path"]).to_pandas()
    quarantine = pq.read_table(summary["quarantine_path"]).to_pandas()
    model = registry.load_model(settings.models, version)
    expected = model.pipeline.predict_proba(feature_frame(valid, model.features))[:, 1]

    assert summary["rows_in"] == 25_000
    assert summary["quarantined"] == int(bad.sum())
    assert summary["scored"] == len(valid)
    assert report["transaction_id"].tolist() == valid["transaction_id"].tolist()
    np.testing.assert_array_equal(report["risk_score"].to_numpy(), expected)
    assert [list(r) for r in report["reasons"]] == reason_codes(valid)
    assert sorted(quarantine["transaction_id"]) == sorted(
        source.loc[bad, "transaction_id"]
    )
    assert summary["suspicious"] == int(report["is_suspicious"].sum())
    assert sum(summary["risk_levels"].values()) == len(valid)


def test_duplicate_across_files_quarantines_both(tmp_path):
    settings = settings_for(tmp_path, batch_rows=50)
    register_small_model(settings.models)
    first = good_rows(300, start_id=1, seed=1)
    second = good_rows(300, start_id=1_001, seed=2)
    # Id 77 sits in the second batch of the first file and in the first batch
    # of the second file. Id 260 sits in the first and the sixth batch of the
    # first file.
    second.loc[10, "transaction_id"] = 77
    first.loc[40, "transaction_id"] = 260
    write_partition(settings.warehouse, DAY, first, name="part-00000.parquet")
    write_partition(settings.warehouse, DAY, second, name="part-00001.parquet")

    summary = nightly.run(settings, DAY)

    quarantine = pq.read_table(summary["quarantine_path"]).to_pandas()
    report = pq.read_table(summary["report_path"]).to_pandas()
    validation = json.loads(Path(summary["validation_path"]).read_text())
    unique_rule = {r["rule"]: r for r in validation["rules"]}["transaction_id_unique"]
    copies = quarantine.set_index(["source_file", "source_row"])

    assert summary["quarantined"] == 4
    assert summary["scored"] == 596
    assert sorted(quarantine["transaction_id"]) == [77, 77, 260, 260]
    assert sorted(copies.index) == [
        ("part-00000.parquet", 40),
        ("part-00000.parquet", 76),
        ("part-00000.parquet", 259),
        ("part-00001.parquet", 10),
    ]
    assert all("transaction_id_unique" in r for r in quarantine["failed_rules"])
    assert not report["transaction_id"].isin([77, 260]).any()
    assert unique_rule["unexpected_count"] == 4
    assert validation["duplicated_ids"] == 2
