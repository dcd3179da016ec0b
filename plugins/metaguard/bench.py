"""Benchmark four ways of scoring one partition with one model.

``metaguard bench --rows N`` writes a seeded partition of N transactions as
Parquet files of at most 1,000,000 rows and trains one small contract-feature
random forest. It then runs each path below in its own Python process and
records its wall time, CPU time, throughput and peak resident set size:

``per_transaction``
    A single-transaction fraud API: check one record with plain Python
    comparisons against the contract bounds, build a one-row frame and
    predict. GX is not used here because one GX validation of a one-row
    frame took about 80 ms with GX 1.24, ten times the prediction. Run on a
    sample of rows; the clock covers the request loop only, as a service
    loads its model once.
``straightforward``
    Read the whole partition into pandas, validate it with GX as one frame,
    drop the failing rows, predict and write Parquet with pandas.
``metaguard``
    The nightly DAG's task code, ``locate`` -> ``validate`` -> ``score_chunk``
    for each chunk -> ``publish``, run one after another in one process.
    Airflow runs the chunks as mapped tasks, several at a time.
``floor``
    Read with pyarrow, predict, write with pyarrow, nothing else.

Each process imports its libraries before its clock starts. Model loading
and GX setup are inside the clock of the batch paths. Every path predicts
single-threaded, as :func:`metaguard.scoring.predict_scores` does.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from metaguard.config import REPO_ROOT, Settings, load_settings
from metaguard.contract import COLUMNS
from metaguard.exceptions import ConfigError, MetaGuardError
from metaguard.features import CONTRACT_FEATURES

log = logging.getLogger(__name__)

PATHS = ("per_transaction", "straightforward", "metaguard", "floor")
BENCH_DAY = dt.date(2024, 1, 1)
DOCS_PATH = REPO_ROOT / "docs" / "benchmarks.md"
# A generated partition is split into files of at most FILE_ROWS rows, each
# in row groups of ROW_GROUP_ROWS rows.
FILE_ROWS = 1_000_000
ROW_GROUP_ROWS = 250_000
# Every BAD_ROW_EVERY-th transaction gets amount 0, which breaks amount_in_range.
BAD_ROW_EVERY = 2_000
TRAINING_ROWS = 50_000
DEFAULT_SAMPLE_ROWS = 1_000
CHILD_TIMEOUT_SECONDS = 3 * 3600
# Targets for the metaguard path, checked in the generated docs.
MAX_TIME_OVER_FLOOR = 1.25
MAX_PEAK_MB_AT_10M = 1500.0
MAX_PEAK_GROWTH_1M_TO_10M = 1.3
MAX_TIME_GROWTH_1M_TO_10M = 11.0
# A 1-minute load average above this, taken before a size's paths run, is
# reported as a shared machine. The benchmark's own work before that point
# runs in one thread, so it adds at most 1.
SHARED_LOAD_AVERAGE = 1.5


def transaction_table(
    rng: np.random.Generator, first_id: int, rows: int, bad_every: int
) -> pa.Table:
    """Draw ``rows`` transactions in the contract's columns and types.

    Ids run from ``first_id`` up. When ``bad_every`` is set, every id that is
    a multiple of it gets amount 0, so those rows are quarantined.
    """
    ids = np.arange(first_id, first_id + rows, dtype=np.int64)
    amount = np.round(rng.lognormal(mean=3.5, sigma=1.2, size=rows), 2) + 0.01
    if bad_every:
        amount[ids % bad_every == 0] = 0.0
    return pa.table(
        {
            "transaction_id": ids,
            "amount": amount,
            "hour": rng.integers(0, 24, rows, dtype=np.int64),
            "user_age_days": rng.integers(1, 3650, rows, dtype=np.int64),
            "transaction_count": rng.poisson(8.0, rows).astype(np.int64),
        }
    )


def write_partition(
    warehouse: Path, day: dt.date, rows: int, seed: int = 0, file_rows: int = FILE_ROWS
) -> list[Path]:
    """Write ``rows`` seeded transactions as the Parquet files of one partition.

    File ``i`` is drawn from the seed ``(seed, i)``, so the content depends
    on ``rows``, ``seed`` and ``file_rows`` only. Returns the file paths.
    """
    folder = warehouse / "transactions" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, first in enumerate(range(0, rows, file_rows)):
        count = min(file_rows, rows - first)
        rng = np.random.default_rng([seed, index])
        table = transaction_table(rng, first + 1, count, BAD_ROW_EVERY)
        path = folder / f"part-{index:05d}.parquet"
        pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS)
        paths.append(path)
    return paths


def train_model(models: Path, seed: int = 0) -> str:
    """Train the benchmark's random forest and register it as the champion.

    The labels follow a seeded noisy rule on large amounts, night hours, new
    accounts and frequent buyers. Returns the registered version.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    from metaguard import registry
    from metaguard.features import feature_frame

    rng = np.random.default_rng([seed, 1_000_000])
    frame = transaction_table(rng, 1, TRAINING_ROWS, bad_every=0).to_pandas()
    logit = (
        -6.0
        + 2.0 * (frame["amount"] > 500)
        + 2.0 * (frame["hour"] < 6)
        + 1.5 * (frame["user_age_days"] < 30)
        + 1.0 * (frame["transaction_count"] > 20)
    )
    labels = rng.random(len(frame)) < 1.0 / (1.0 + np.exp(-logit))
    model = RandomForestClassifier(
        n_estimators=50,
        max_depth=10,
        min_samples_leaf=5,
        class_weight="balanced_subsample",
        n_jobs=1,
        random_state=seed,
    )
    pipeline = Pipeline([("model", model)])
    features = list(CONTRACT_FEATURES)
    pipeline.fit(feature_frame(frame, features), labels.astype(np.int8))
    metadata = {
        "estimator": "random_forest",
        "parameters": {k: str(v) for k, v in model.get_params().items()},
        "feature_set": "contract",
        "features": features,
        "seed": seed,
        "training": {"rows": len(frame), "fraud": int(labels.sum())},
        "purpose": "benchmark",
    }
    version = registry.register(models, pipeline, metadata)
    registry.set_champion(models, version, "benchmark model")
    return version


def bench_settings(workdir: Path) -> Settings:
    """Return settings whose warehouse, output and model roots are in ``workdir``.

    Other values, such as ``METAGUARD_BATCH_ROWS``, come from the environment.
    The generated partition has no pass-through columns.
    """
    settings = load_settings(
        overrides={
            "warehouse": str(workdir / "warehouse"),
            "output": str(workdir / "output"),
            "models": str(workdir / "models"),
        }
    )
    return replace(settings, passthrough_columns=())


def _partition_files(settings: Settings) -> list[Path]:
    from metaguard.warehouse import data_files, partition_path

    return data_files(partition_path(settings.warehouse, "transactions", BENCH_DAY))


def _load_champion(settings: Settings):
    from metaguard import registry

    return registry.load_champion(settings.models)


class Clock:
    """Wall time and this process's CPU time since the clock was made."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def seconds(self) -> float:
        """Return the wall seconds elapsed."""
        return time.perf_counter() - self._wall

    def reading(self) -> dict:
        """Return the wall and CPU seconds elapsed."""
        return {
            "seconds": self.seconds(),
            "cpu_seconds": time.process_time() - self._cpu,
        }


def record_problems(record: dict) -> list[str]:
    """Return the codes of the contract rules that one record breaks.

    Uses plain comparisons, as a single-transaction service would. Uniqueness
    of ``transaction_id`` needs the other records, so it is not checked.
    """
    problems = []
    for column in COLUMNS:
        value = record.get(column.name)
        if value is None or value != value:
            problems.append(f"{column.name}_not_null")
            continue
        if column.kind == "id":
            continue
        above_min = column.minimum is None or (
            value > column.minimum if column.exclusive_min else value >= column.minimum
        )
        below_max = column.maximum is None or value <= column.maximum
        if not (above_min and below_max):
            problems.append(f"{column.name}_in_range")
    return problems


def run_per_transaction(settings: Settings, sample_rows: int) -> dict:
    """Check and score the first ``sample_rows`` records of the partition one by one."""
    import pandas as pd

    records = pq.read_table(_partition_files(settings)[0]).slice(0, sample_rows)
    records = records.to_pylist()
    model = _load_champion(settings)
    clock = Clock()
    for record in records:
        if record_problems(record):
            continue
        row = pd.DataFrame([record], columns=model.features, dtype="float64")
        model.pipeline.predict_proba(row)
    return {"rows": len(records), **clock.reading()}


def run_straightforward(settings: Settings) -> dict:
    """Read the partition into pandas, validate it with GX, predict and write it."""
    import pandas as pd

    from metaguard.validation import BatchValidator, flags_from_result

    clock = Clock()
    frame = pd.read_parquet(_partition_files(settings)[0].parent)
    result = BatchValidator().validate(frame)
    bad = flags_from_result(result, len(frame)).mask().to_numpy()
    valid = frame.loc[~bad].reset_index(drop=True)
    model = _load_champion(settings)
    features = valid[model.features].astype("float64")
    valid["risk_score"] = model.pipeline.predict_proba(features)[:, 1]
    target = settings.output / "straightforward" / "report.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    valid.to_parquet(target, index=False)
    return {"rows": len(frame), **clock.reading()}


def run_metaguard(settings: Settings) -> dict:
    """Run the nightly DAG's task code for the benchmark day, timing each step."""
    from metaguard import nightly

    steps = {}
    clock = Clock()
    located = nightly.locate(settings, BENCH_DAY)
    steps["locate"] = clock.seconds()
    validated = nightly.validate(settings, located)
    steps["validate"] = clock.seconds() - sum(steps.values())
    scored = [
        nightly.score_chunk(settings, located, chunk) for chunk in validated["chunks"]
    ]
    steps["score_chunk"] = clock.seconds() - sum(steps.values())
    summary = nightly.publish(settings, located, validated, scored)
    steps["publish"] = clock.seconds() - sum(steps.values())
    return {
        "rows": int(summary["rows_in"]),
        **clock.reading(),
        "chunks": len(scored),
        "steps": {name: round(seconds, 3) for name, seconds in steps.items()},
    }


def run_floor(settings: Settings) -> dict:
    """Read with pyarrow, predict, and write with pyarrow, nothing else."""
    import warnings

    clock = Clock()
    table = pa.concat_tables(pq.read_table(path) for path in _partition_files(settings))
    model = _load_champion(settings)
    features = np.column_stack(
        [table.column(name).to_numpy().astype(np.float64) for name in model.features]
    )
    with warnings.catch_warnings():
        # The model was fitted on a DataFrame, so scikit-learn warns about an
        # array without column names; the columns are in the model's order.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        scores = model.pipeline.predict_proba(features)[:, 1]
    target = settings.output / "floor" / "report.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.append_column("risk_score", pa.array(scores)), target)
    return {"rows": table.num_rows, **clock.reading()}


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB (10^6 bytes).

    Linux reports ``ru_maxrss`` in KiB.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _import_libraries(path_name: str) -> None:
    """Import the libraries that a path uses, so that its clock leaves them out."""
    import joblib  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    if path_name != "floor":
        import pandas  # noqa: F401
    if path_name in ("straightforward", "metaguard"):
        import great_expectations  # noqa: F401


def measure_in_this_process(path_name: str, workdir: Path, sample_rows: int) -> dict:
    """Run one path in this process and return its measurement."""
    logging.basicConfig(level=logging.WARNING)
    _import_libraries(path_name)
    settings = bench_settings(workdir)
    if path_name == "per_transaction":
        result = run_per_transaction(settings, sample_rows)
    elif path_name == "straightforward":
        result = run_straightforward(settings)
    elif path_name == "metaguard":
        result = run_metaguard(settings)
    elif path_name == "floor":
        result = run_floor(settings)
    else:
        raise ValueError(f"unknown path {path_name!r}; expected one of {PATHS}")
    seconds = result.pop("seconds")
    return {
        "seconds": round(seconds, 3),
        "rows_per_second": round(result["rows"] / seconds, 1) if seconds else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpu_seconds": round(result.pop("cpu_seconds"), 3),
        **result,
    }


def measure(path_name: str, workdir: Path, sample_rows: int) -> dict:
    """Run one path in a fresh Python process and return its measurement.

    Raises :class:`MetaGuardError` with the end of the process's log when it fails.
    """
    result_path = workdir / f"result-{path_name}.json"
    log_path = workdir / f"log-{path_name}.txt"
    result_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "metaguard.bench",
        path_name,
        str(workdir),
        str(sample_rows),
        str(result_path),
    ]
    with open(log_path, "w") as log_file:
        completed = subprocess.run(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
    if completed.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise MetaGuardError(
            f"benchmark path {path_name} failed with exit status "
            f"{completed.returncode}; end of its log {log_path}:\n{tail}"
        )
    return json.loads(result_path.read_text())


def run_benchmark(
    rows: int,
    workdir: Path,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> dict:
    """Generate the partition and model under ``workdir`` and measure every path.

    The model is trained once per ``workdir`` and reused by later calls. The
    partition and all outputs are replaced on every call.
    """
    if rows < 1:
        raise ConfigError(f"--rows {rows} is invalid; expected at least 1")
    if sample_rows < 1:
        raise ConfigError(f"--sample {sample_rows} is invalid; expected at least 1")
    workdir.mkdir(parents=True, exist_ok=True)
    settings = bench_settings(workdir)
    if not (settings.models / "champion.json").is_file():
        train_model(settings.models, seed)
    shutil.rmtree(settings.warehouse, ignore_errors=True)
    shutil.rmtree(settings.output, ignore_errors=True)
    write_partition(settings.warehouse, BENCH_DAY, rows, seed)
    result: dict = {"rows": rows}
    load_before = os.getloadavg()[0]
    for path_name in PATHS:
        log.info("benchmark: %d rows, measuring path %s", rows, path_name)
        result[path_name] = measure(path_name, workdir, min(sample_rows, rows))
    result["batch_rows"] = settings.batch_rows
    result["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    return result


def ratios(result: dict) -> dict:
    """Return the comparison ratios of one run.

    The ``_over_`` ratios divide wall times and their ``_cpu`` twins divide
    CPU times, except ``metaguard_over_per_transaction``, which divides
    throughputs.
    """
    metaguard, floor = result["metaguard"], result["floor"]
    straightforward = result["straightforward"]
    return {
        "metaguard_over_floor": metaguard["seconds"] / floor["seconds"],
        "metaguard_over_floor_cpu": metaguard["cpu_seconds"] / floor["cpu_seconds"],
        "straightforward_over_metaguard": straightforward["seconds"]
        / metaguard["seconds"],
        "straightforward_over_metaguard_cpu": straightforward["cpu_seconds"]
        / metaguard["cpu_seconds"],
        "metaguard_over_per_transaction": metaguard["rows_per_second"]
        / result["per_transaction"]["rows_per_second"],
    }


def format_table(result: dict) -> str:
    """Render one run as a Markdown table followed by its ratios."""
    lines = [
        "| path | rows | seconds | CPU seconds | rows/s | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in PATHS:
        entry = result[name]
        lines.append(
            f"| {name} | {entry['rows']:,} | {entry['seconds']:.2f} "
            f"| {entry['cpu_seconds']:.2f} | {entry['rows_per_second']:,.0f} "
            f"| {entry['peak_rss_mb']:,.0f} |"
        )
    comparison = ratios(result)
    lines += [
        "",
        f"- metaguard / floor: {comparison['metaguard_over_floor']:.2f}x wall time, "
        f"{comparison['metaguard_over_floor_cpu']:.2f}x CPU time",
        "- straightforward / metaguard: "
        f"{comparison['straightforward_over_metaguard']:.2f}x wall time, "
        f"{comparison['straightforward_over_metaguard_cpu']:.2f}x CPU time",
        "- metaguard / per_transaction, rows/s: "
        f"{comparison['metaguard_over_per_transaction']:.0f}x",
    ]
    steps = result["metaguard"].get("steps")
    if steps:
        listed = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.items())
        lines.append(
            f"- metaguard steps ({result['metaguard']['chunks']} chunk(s), batches of "
            f"{result['batch_rows']:,} rows): {listed}"
        )
    return "\n".join(
        _wrap(line[2:], bullet=True) if line.startswith("- ") else line
        for line in lines
    )


def json_result(result: dict) -> dict:
    """Return a run as the ``--json`` object: rows, then each path's figures."""
    keys = ("seconds", "rows_per_second", "peak_rss_mb", "cpu_seconds")
    output = {"rows": result["rows"]}
    for name in PATHS:
        output[name] = {key: result[name][key] for key in keys}
    output["per_transaction"]["sample_rows"] = result["per_transaction"]["rows"]
    output["metaguard"]["steps"] = result["metaguard"].get("steps", {})
    return output


def machine_facts() -> dict:
    """Return this machine's core count, memory, CPU model and library versions."""
    import great_expectations
    import pandas
    import sklearn

    memory_kib = 0
    cpu = platform.processor() or platform.machine()
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kib * 1024 / 1e9, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pa.__version__,
        "scikit-learn": sklearn.__version__,
        "great_expectations": great_expectations.__version__,
    }


def target_checks(results: list[dict]) -> list[dict]:
    """Check the metaguard path's targets against the runs that they need.

    A time target is judged on the worse of its wall-time and CPU-time
    figures, because on a shared machine wall time also counts waiting for a
    core. Growth targets compare a 1,000,000-row run with a 10,000,000-row
    run and are skipped unless both are present.
    """
    by_rows = {r["rows"]: r for r in results}
    checks = []
    for result in results:
        rows = result["rows"]
        comparison = ratios(result)
        wall, cpu = (
            comparison["metaguard_over_floor"],
            comparison["metaguard_over_floor_cpu"],
        )
        worst = max(wall, cpu)
        checks.append(
            {
                "target": f"time at most {MAX_TIME_OVER_FLOOR}x the floor's "
                f"({rows:,} rows)",
                "measured": f"wall {wall:.2f}x, CPU {cpu:.2f}x",
                "met": worst <= MAX_TIME_OVER_FLOOR,
                "miss": f"{worst / MAX_TIME_OVER_FLOOR - 1:.0%} over the limit",
            }
        )
        wall = comparison["straightforward_over_metaguard"]
        cpu = comparison["straightforward_over_metaguard_cpu"]
        worst = min(wall, cpu)
        checks.append(
            {
                "target": f"faster than straightforward ({rows:,} rows)",
                "measured": f"straightforward / metaguard: wall {wall:.2f}x, "
                f"CPU {cpu:.2f}x",
                "met": worst > 1.0,
                "miss": f"{1 / worst - 1:.0%} slower",
            }
        )
    small, large = by_rows.get(1_000_000), by_rows.get(10_000_000)
    if large:
        peak = large["metaguard"]["peak_rss_mb"]
        checks.append(
            {
                "target": f"peak RSS under {MAX_PEAK_MB_AT_10M:,.0f} MB at 10M rows",
                "measured": f"{peak:,.0f} MB",
                "met": peak < MAX_PEAK_MB_AT_10M,
                "miss": f"{peak - MAX_PEAK_MB_AT_10M:,.0f} MB over the limit",
            }
        )
    if small and large:
        checks += _growth_checks(small["metaguard"], large["metaguard"])
    return checks


def _growth_checks(small: dict, large: dict) -> list[dict]:
    memory = large["peak_rss_mb"] / small["peak_rss_mb"]
    wall = large["seconds"] / small["seconds"]
    cpu = large["cpu_seconds"] / small["cpu_seconds"]
    worst = max(wall, cpu)
    return [
        {
            "target": f"peak RSS 1M -> 10M at most {MAX_PEAK_GROWTH_1M_TO_10M}x",
            "measured": f"{memory:.2f}x",
            "met": memory <= MAX_PEAK_GROWTH_1M_TO_10M,
            "miss": f"{memory / MAX_PEAK_GROWTH_1M_TO_10M - 1:.0%} over the limit",
        },
        {
            "target": f"time 1M -> 10M at most {MAX_TIME_GROWTH_1M_TO_10M:.0f}x",
            "measured": f"wall {wall:.2f}x, CPU {cpu:.2f}x",
            "met": worst <= MAX_TIME_GROWTH_1M_TO_10M,
            "miss": f"{worst / MAX_TIME_GROWTH_1M_TO_10M - 1:.0%} over the limit",
        },
    ]


def _wrap(text: str, bullet: bool = False) -> str:
    if bullet:
        return textwrap.fill(text, 88, initial_indent="- ", subsequent_indent="  ")
    return textwrap.fill(text, 88)


def render_docs(results: list[dict], command: str, facts: dict) -> str:
    """Render docs/benchmarks.md from the runs of one command."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        _wrap(
            f"Measured on {when} by one run of the command below. Every figure "
            "on this page comes from that run; run the command again to refresh "
            "the page. `make bench` runs it for 1,000,000 and 10,000,000 rows."
        ),
        "",
        "```bash",
        command,
        "```",
        "",
        *_machine_section(results, facts),
        "",
        *_method_section(),
        "",
    ]
    for result in results:
        lines += [f"## {result['rows']:,} rows", "", format_table(result), ""]
    lines += ["## Targets for the metaguard path", ""]
    lines += [
        _wrap(
            "A time target is judged on the worse of its wall-time and CPU-time "
            "figures, because on a shared machine wall time also counts waiting "
            "for a core."
        ),
        "",
    ]
    lines += ["| target | measured | met |", "| --- | --- | --- |"]
    for check in target_checks(results):
        verdict = "yes" if check["met"] else f"no, {check['miss']}"
        lines.append(f"| {check['target']} | {check['measured']} | {verdict} |")
    lines.append("")
    for paragraph in why_missed(results):
        lines += [_wrap(paragraph), ""]
    return "\n".join(lines)


def _machine_section(results: list[dict], facts: dict) -> list[str]:
    versions = ", ".join(
        f"{name} {facts[name]}"
        for name in ("numpy", "pandas", "pyarrow", "scikit-learn")
    )
    loads = "; ".join(
        f"{r['rows']:,} rows: {r['load_average']['before']:.2f} before, "
        f"{r['load_average']['after']:.2f} after"
        for r in results
    )
    lines = [
        "## Machine",
        "",
        _wrap(
            f"{facts['cores']} cores ({facts['cpu']}), {facts['memory_gb']} GB memory",
            bullet=True,
        ),
        _wrap(
            f"Python {facts['python']}, {versions}, "
            f"Great Expectations {facts['great_expectations']}",
            bullet=True,
        ),
        _wrap(
            f"1-minute load average from `os.getloadavg()`: {loads}. On 2 cores a "
            "value well above 1 means that other jobs shared the machine, which "
            "stretches wall time more than CPU time.",
            bullet=True,
        ),
    ]
    if any(r["load_average"]["before"] > SHARED_LOAD_AVERAGE for r in results):
        lines.append(
            _wrap(
                f"The load average was above {SHARED_LOAD_AVERAGE} before the first "
                "path of a size started, so other jobs shared the machine during "
                "this run.",
                bullet=True,
            )
        )
    return lines


def _method_section() -> list[str]:
    return [
        "## What runs",
        "",
        _wrap(
            "The command writes one seeded partition of N rows as Parquet files of "
            f"at most {FILE_ROWS:,} rows (row groups of {ROW_GROUP_ROWS:,}) with the "
            f"five contract columns. One row in {BAD_ROW_EVERY:,} has amount 0 and "
            "is quarantined. One model serves every path: a scikit-learn random "
            "forest of 50 trees, max depth 10, on the four contract features, "
            f"trained on {TRAINING_ROWS:,} seeded rows. Each path runs in its own "
            "Python process and predicts single-threaded. Wall time and CPU time "
            "(user plus system, `time.process_time`) leave out library imports. "
            "Peak RSS is the process's `ru_maxrss`, so it includes the imported "
            "libraries."
        ),
        "",
        _wrap(
            "`per_transaction`: a single-transaction API. Plain Python checks of "
            "the contract bounds (not GX), a one-row DataFrame and `predict_proba`, "
            "once per record, on a sample of the first rows. The clock covers the "
            "request loop, not the model load.",
            bullet=True,
        ),
        _wrap(
            "`straightforward`: `pandas.read_parquet` of the whole partition, one "
            "GX validation of the whole frame, `predict_proba`, "
            "`DataFrame.to_parquet`.",
            bullet=True,
        ),
        _wrap(
            "`metaguard`: the nightly DAG's task code, `locate` -> `validate` -> "
            "`score_chunk` per chunk -> `publish`, run one after another in one "
            "process. Airflow runs up to 4 mapped `score_chunk` tasks at a time; "
            "this benchmark does not measure that.",
            bullet=True,
        ),
        _wrap(
            "`floor`: `pyarrow.parquet.read_table`, `predict_proba`, "
            "`pyarrow.parquet.write_table`, nothing else.",
            bullet=True,
        ),
    ]


def why_missed(results: list[dict]) -> list[str]:
    """Explain, with the measured step times, why targets were missed."""
    paragraphs = []
    for result in results:
        comparison = ratios(result)
        over_floor = max(
            comparison["metaguard_over_floor"], comparison["metaguard_over_floor_cpu"]
        )
        if over_floor > MAX_TIME_OVER_FLOOR:
            paragraphs.append(_slower_than_floor(result))
        under_straightforward = min(
            comparison["straightforward_over_metaguard"],
            comparison["straightforward_over_metaguard_cpu"],
        )
        if under_straightforward <= 1.0:
            paragraphs.append(_slower_than_straightforward(result))
    by_rows = {r["rows"]: r for r in results}
    small, large = by_rows.get(1_000_000), by_rows.get(10_000_000)
    if small and large:
        floor_small = small["floor"]["cpu_seconds"]
        floor_large = large["floor"]["cpu_seconds"] / 10
        paragraphs.append(
            "The floor took {:.2f} CPU s per million rows at 1,000,000 rows and "
            "{:.2f} s at 10,000,000 rows. It predicts all rows in one call, while "
            "the metaguard path predicts batches of {:,} rows, and the gap between "
            "the two paths narrows as the partition grows.".format(
                floor_small, floor_large, large["batch_rows"]
            )
        )
        growth = large["metaguard"]["peak_rss_mb"] / small["metaguard"]["peak_rss_mb"]
        if growth > MAX_PEAK_GROWTH_1M_TO_10M:
            paragraphs.append(
                "Of the metaguard path's steps, only the duplicate check grows "
                "with the partition: it keeps every transaction_id, about 20 bytes "
                "per row at its peak. Validation, scoring and publishing work in "
                f"batches of {large['batch_rows']:,} rows."
            )
    return paragraphs


def _slower_than_floor(result: dict) -> str:
    metaguard, floor = result["metaguard"], result["floor"]
    steps = metaguard["steps"]
    if metaguard.get("chunks", 0) == 1:
        publish = "renames the single scored chunk into place as the report"
    else:
        publish = "reads the scored chunks back and writes them into one report"
    return (
        f"At {result['rows']:,} rows the metaguard path took "
        f"{metaguard['seconds']:.1f} s ({metaguard['cpu_seconds']:.1f} CPU s) "
        f"against the floor's {floor['seconds']:.1f} s "
        f"({floor['cpu_seconds']:.1f} CPU s). The floor only reads, predicts and "
        "writes. The metaguard path also checks ids for duplicates, validates "
        f"every batch of {result['batch_rows']:,} rows with GX and stages the "
        f"valid rows (validate: {steps['validate']:.1f} s). It writes each scored "
        f"chunk to staging (score_chunk, which also predicts: "
        f"{steps['score_chunk']:.1f} s), then {publish} "
        f"(publish: {steps['publish']:.2f} s). Its "
        "chunks ran one after another here."
    )


def _slower_than_straightforward(result: dict) -> str:
    metaguard, straightforward = result["metaguard"], result["straightforward"]
    return (
        f"At {result['rows']:,} rows the straightforward pipeline took "
        f"{straightforward['seconds']:.1f} s "
        f"({straightforward['cpu_seconds']:.1f} CPU s) and "
        f"{straightforward['peak_rss_mb']:,.0f} MB at its peak, against "
        f"{metaguard['seconds']:.1f} s ({metaguard['cpu_seconds']:.1f} CPU s) and "
        f"{metaguard['peak_rss_mb']:,.0f} MB for the metaguard path. It calls GX "
        "once for the whole frame and writes Parquet once, so it pays GX's fixed "
        "cost per call once and skips staging, but its memory grows with the "
        "partition."
    )


def run_command(
    rows: list[int],
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    workdir: str | None = None,
    as_json: bool = False,
    write_docs: bool = False,
) -> int:
    """Run the benchmark for each size, print the results, optionally write docs.

    Without ``workdir`` the data lives in a temporary folder that is removed
    afterwards.
    """
    for count in rows:
        if count < 1:
            raise ConfigError(f"--rows {count} is invalid; expected at least 1")
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mg-bench-"))
    results = []
    try:
        for count in rows:
            result = run_benchmark(count, folder, sample_rows)
            results.append(result)
            if as_json:
                print(json.dumps(json_result(result)), flush=True)
            else:
                print(f"{count:,} rows\n\n{format_table(result)}\n", flush=True)
    finally:
        if not workdir:
            shutil.rmtree(folder, ignore_errors=True)
    if write_docs:
        command = "metaguard bench --rows " + " ".join(str(r) for r in rows)
        if sample_rows != DEFAULT_SAMPLE_ROWS:
            command += f" --sample {sample_rows}"
        command += " --write-docs"
        DOCS_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOCS_PATH.write_text(render_docs(results, command, machine_facts()))
        log.info("wrote %s", DOCS_PATH)
    return 0


def _child_main(argv: list[str]) -> int:
    path_name, workdir, sample_rows, result_path = argv
    measurement = measure_in_this_process(path_name, Path(workdir), int(sample_rows))
    Path(result_path).write_text(json.dumps(measurement))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
