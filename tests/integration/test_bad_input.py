"""Bad input through the real nightly steps, one Parquet partition per case.

Every case either quarantines the offending rows with the rules they broke, or
fails the run with an error that names the file, the column, what was found
and what was expected. ``docs/bad-input.md`` lists the outcome of each case.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from metaguard import nightly, registry
from metaguard.config import load_settings
from metaguard.contract import COLUMN_NAMES
from metaguard.exceptions import (
    BadRowShareExceeded,
    ConfigError,
    ModelIntegrityError,
    PartitionNotFound,
    SchemaMismatch,
    UnreadableFile,
)
from metaguard.features import CONTRACT_FEATURES
from metaguard.scoring import SCORE_COLUMNS
from tests.builders import good_rows
from tests.conftest import load_dag

DAY = dt.date(2024, 3, 1)
ROWS = 1000
FIRST = "part-00000.parquet"
SECOND = "part-00001.parquet"
REPORT_COLUMNS = list(COLUMN_NAMES) + [name for name, _ in SCORE_COLUMNS]


def register_champion(models: Path) -> str:
    """Register a small contract-feature pipeline as champion and return the version.

    A logistic regression on 400 rows fits far faster than the training code's
    random forest, so each test module builds its own registry.
    """
    frame = good_rows(400, seed=11)
    features = list(CONTRACT_FEATURES)
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=500))]
    )
    pipeline.fit(frame[features].astype("float64"), frame["amount"] > 1500)
    metadata = {
        "estimator": "logistic_regression",
        "feature_set": "contract",
        "features": features,
    }
    version = registry.register(models, pipeline, metadata)
    registry.set_champion(models, version, "test champion")
    return version


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    register_champion(root)
    return root


@pytest.fixture
def warehouse(tmp_path) -> Path:
    path = tmp_path / "warehouse"
    (path / "transactions").mkdir(parents=True)
    return path


@pytest.fixture
def settings(warehouse, models, tmp_path):
    return load_settings(
        {
            "METAGUARD_WAREHOUSE": str(warehouse),
            "METAGUARD_OUTPUT": str(tmp_path / "output"),
            "METAGUARD_MODELS": str(models),
        }
    )


def partition_folder(warehouse: Path) -> Path:
    folder = warehouse / "transactions" / f"dt={DAY.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def to_table(
    frame: pd.DataFrame, nulls: dict[str, list[int]] | None = None
) -> pa.Table:
    """Convert ``frame`` to Arrow, keeping NaN as NaN rather than null.

    ``nulls`` lists, per column, the row positions to store as null.
    """
    arrays = {}
    for name in frame.columns:
        mask = np.zeros(len(frame), dtype=bool)
        mask[(nulls or {}).get(name, [])] = True
        arrays[name] = pa.array(
            frame[name].to_numpy(), mask=mask if mask.any() else None
        )
    return pa.table(arrays)


def write_file(
    warehouse: Path, table: pa.Table | pd.DataFrame, name: str = FIRST
) -> Path:
    if isinstance(table, pd.DataFrame):
        table = to_table(table)
    path = partition_folder(warehouse) / name
    pq.write_table(table, path)
    return path


def outputs(settings, kind: str, name: str = FIRST) -> Path:
    return settings.output / kind / f"dt={DAY.isoformat()}" / name


def read_summary(settings) -> dict:
    return json.loads(outputs(settings, "runs", "summary.json").read_text())


def quarantine_rows(settings) -> list[tuple[str, int, list[str]]]:
    table = pq.read_table(outputs(settings, "quarantine"))
    return list(
        zip(
            table.column("source_file").to_pylist(),
            table.column("source_row").to_pylist(),
            table.column("failed_rules").to_pylist(),
            strict=True,
        )
    )


# Rows that break a rule -------------------------------------------------------


@dataclass(frozen=True)
class RowCase:
    """Edits to 1000 good rows and the quarantine rows they must produce.

    Row ``i`` starts with ``transaction_id`` ``i + 1``. ``expected`` lists
    (source file, source row, rules broken) in quarantine order. With
    ``split_at`` the rows go to two files, the second starting at that row.
    """

    id: str
    expected: list[tuple[str, int, list[str]]]
    edits: dict[int, dict[str, object]] = field(default_factory=dict)
    nulls: dict[str, list[int]] = field(default_factory=dict)
    casts: dict[str, str] = field(default_factory=dict)
    split_at: int | None = None


def in_first_file(row: int, *rules: str) -> list[tuple[str, int, list[str]]]:
    return [(FIRST, row, list(rules))]


ROW_CASES = [
    RowCase("null-amount", in_first_file(1, "amount_not_null"), nulls={"amount": [1]}),
    RowCase(
        "nan-amount", in_first_file(1, "amount_not_null"), edits={1: {"amount": np.nan}}
    ),
    RowCase("null-hour", in_first_file(1, "hour_not_null"), nulls={"hour": [1]}),
    RowCase(
        "nan-hour-stored-as-float",
        in_first_file(1, "hour_not_null"),
        casts={"hour": "float64"},
        edits={1: {"hour": np.nan}},
    ),
    RowCase(
        "null-user-age-days",
        in_first_file(1, "user_age_days_not_null"),
        nulls={"user_age_days": [1]},
    ),
    RowCase(
        "null-transaction-count",
        in_first_file(1, "transaction_count_not_null"),
        nulls={"transaction_count": [1]},
    ),
    RowCase(
        "plus-inf-amount",
        in_first_file(1, "amount_in_range"),
        edits={1: {"amount": np.inf}},
    ),
    RowCase(
        "minus-inf-amount",
        in_first_file(1, "amount_in_range"),
        edits={1: {"amount": -np.inf}},
    ),
    RowCase(
        "zero-amount", in_first_file(1, "amount_in_range"), edits={1: {"amount": 0.0}}
    ),
    RowCase(
        "negative-amount",
        in_first_file(1, "amount_in_range"),
        edits={1: {"amount": -5.0}},
    ),
    RowCase(
        "amount-above-10m",
        in_first_file(1, "amount_in_range"),
        edits={1: {"amount": 10_000_000.01}},
    ),
    RowCase("hour-24", in_first_file(1, "hour_in_range"), edits={1: {"hour": 24}}),
    RowCase("hour-minus-1", in_first_file(1, "hour_in_range"), edits={1: {"hour": -1}}),
    RowCase(
        "user-age-days-0",
        in_first_file(1, "user_age_days_in_range"),
        edits={1: {"user_age_days": 0}},
    ),
    RowCase(
        "user-age-days-negative",
        in_first_file(1, "user_age_days_in_range"),
        edits={1: {"user_age_days": -3}},
    ),
    RowCase(
        "negative-transaction-count",
        in_first_file(1, "transaction_count_in_range"),
        edits={1: {"transaction_count": -1}},
    ),
    RowCase(
        "null-transaction-id",
        in_first_file(1, "transaction_id_not_null"),
        nulls={"transaction_id": [1]},
    ),
    RowCase(
        "duplicate-transaction-id",
        in_first_file(2, "transaction_id_unique")
        + in_first_file(5, "transaction_id_unique"),
        edits={5: {"transaction_id": 3}},
    ),
    RowCase(
        "duplicate-id-across-files",
        in_first_file(2, "transaction_id_unique")
        + [(SECOND, 200, ["transaction_id_unique"])],
        edits={700: {"transaction_id": 3}},
        split_at=500,
    ),
    RowCase(
        "duplicate-string-id",
        in_first_file(2, "transaction_id_unique")
        + in_first_file(5, "transaction_id_unique"),
        casts={"transaction_id": "str"},
        edits={5: {"transaction_id": "3"}},
    ),
    RowCase(
        "several-rules-in-one-row",
        in_first_file(1, "amount_in_range", "hour_in_range"),
        edits={1: {"amount": -1.0, "hour": 24}},
    ),
]


def write_row_case(warehouse: Path, case: RowCase) -> None:
    frame = good_rows(ROWS)
    for column, dtype in case.casts.items():
        frame[column] = frame[column].astype(dtype)
    for row, values in case.edits.items():
        for column, value in values.items():
            frame.loc[row, column] = value
    table = to_table(frame, case.nulls)
    if case.split_at is None:
        write_file(warehouse, table)
        return
    write_file(warehouse, table.slice(0, case.split_at), FIRST)
    write_file(warehouse, table.slice(case.split_at), SECOND)


@pytest.mark.parametrize("case", ROW_CASES, ids=[c.id for c in ROW_CASES])
def test_bad_rows_are_quarantined(case, warehouse, settings):
    write_row_case(warehouse, case)

    summary = nightly.run(settings, DAY)

    report = pq.read_table(outputs(settings, "risk_reports"))
    quarantined = quarantine_rows(settings)
    assert quarantined == case.expected
    assert summary["rows_in"] == ROWS
    assert summary["quarantined"] == len(case.expected)
    assert summary["rows_in"] == summary["scored"] + summary["quarantined"]
    assert report.num_rows == summary["scored"]
    quarantined_ids = set(
        pq.read_table(outputs(settings, "quarantine"))
        .column("transaction_id")
        .drop_null()
        .to_pylist()
    )
    assert quarantined_ids.isdisjoint(report.column("transaction_id").to_pylist())


def test_nan_case_stores_nan_not_null(warehouse):
    case = next(c for c in ROW_CASES if c.id == "nan-amount")
    write_row_case(warehouse, case)
    amount = pq.read_table(partition_folder(warehouse) / FIRST).column("amount")
    assert amount.null_count == 0
    assert np.isnan(amount.to_numpy()).sum() == 1


# Variations the contract accepts ---------------------------------------------


def write_whole_float_hour(warehouse: Path) -> int:
    frame = good_rows(ROWS)
    frame["hour"] = frame["hour"].astype("float64")
    write_file(warehouse, frame)
    return ROWS


def write_extra_columns_other_order(warehouse: Path) -> int:
    frame = good_rows(ROWS)
    frame["channel"] = "web"
    frame["note"] = np.arange(ROWS, dtype=np.int64)
    write_file(warehouse, frame[list(reversed(frame.columns))])
    return ROWS


def write_mixed_widths(warehouse: Path) -> int:
    narrow = pa.Table.from_pandas(good_rows(300), preserve_index=False)
    narrow = narrow.cast(
        pa.schema(
            [
                ("transaction_id", pa.int32()),
                ("amount", pa.float32()),
                ("hour", pa.int8()),
                ("user_age_days", pa.int16()),
                ("transaction_count", pa.uint16()),
            ]
        )
    )
    write_file(warehouse, narrow, FIRST)
    write_file(warehouse, good_rows(700, start_id=301, seed=1), SECOND)
    return ROWS


def write_markers_and_hidden_files(warehouse: Path) -> int:
    path = write_file(warehouse, good_rows(ROWS))
    for name in (
        "_SUCCESS",
        "part-00000.parquet.crc",
        ".part-00000.parquet.crc",
        ".hidden.parquet",
        "_committed_0001",
    ):
        (path.parent / name).write_bytes(b"not parquet")
    return ROWS


def write_contract_bounds(warehouse: Path) -> int:
    frame = good_rows(ROWS)
    frame.loc[0, "amount"] = 10_000_000.0
    frame.loc[1, "amount"] = 0.01
    frame.loc[2, "hour"] = 0
    frame.loc[3, "hour"] = 23
    frame.loc[4, "user_age_days"] = 1
    frame.loc[5, "transaction_count"] = 0
    write_file(warehouse, frame)
    return ROWS


def write_string_ids(warehouse: Path) -> int:
    frame = good_rows(ROWS)
    frame["transaction_id"] = "tx-" + frame["transaction_id"].astype(str)
    write_file(warehouse, frame)
    return ROWS


def write_empty_file_beside_rows(warehouse: Path) -> int:
    write_file(warehouse, good_rows(0), FIRST)
    write_file(warehouse, good_rows(ROWS), SECOND)
    return ROWS


ACCEPTED = [
    pytest.param(write_whole_float_hour, id="hour-as-whole-float"),
    pytest.param(write_extra_columns_other_order, id="extra-columns-other-order"),
    pytest.param(write_mixed_widths, id="mixed-widths-across-files"),
    pytest.param(write_markers_and_hidden_files, id="markers-crc-hidden-ignored"),
    pytest.param(write_contract_bounds, id="values-on-contract-bounds"),
    pytest.param(write_string_ids, id="string-transaction-ids"),
    pytest.param(write_empty_file_beside_rows, id="empty-file-beside-rows"),
]


@pytest.mark.parametrize("write", ACCEPTED)
def test_accepted_variations_score_every_row(write, warehouse, settings):
    rows = write(warehouse)

    summary = nightly.run(settings, DAY)

    report = pq.read_table(outputs(settings, "risk_reports"))
    assert summary["quarantined"] == 0
    assert summary["scored"] == rows
    assert summary["rows_in"] == summary["scored"] + summary["quarantined"]
    assert report.schema.names == REPORT_COLUMNS
    assert report.schema.field("hour").type == pa.int64()
    assert report.schema.field("amount").type == pa.float64()
    assert all(Path(f).name.startswith("part-") for f in summary["input_files"])


def test_empty_partition_gives_empty_report(warehouse, settings):
    empty = good_rows(0)
    empty["customer_id"] = pd.Series([], dtype="int64")
    write_file(warehouse, empty)

    summary = nightly.run(settings, DAY)

    report = pq.read_table(outputs(settings, "risk_reports"))
    assert report.num_rows == 0
    assert report.schema.names == (
        list(COLUMN_NAMES) + ["customer_id"] + [name for name, _ in SCORE_COLUMNS]
    )
    assert summary["rows_in"] == 0
    assert summary["scored"] == 0
    assert summary["quarantined"] == 0
    assert read_summary(settings)["run_key"] == summary["run_key"]
    assert pq.read_table(outputs(settings, "quarantine")).num_rows == 0


# Files and partitions that fail the run --------------------------------------


def write_nothing(warehouse: Path) -> None:
    pass


def write_only_markers(warehouse: Path) -> None:
    folder = partition_folder(warehouse)
    (folder / "_SUCCESS").touch()
    (folder / ".part-00000.parquet.crc").write_bytes(b"crc")


def write_without_hour(warehouse: Path) -> None:
    write_file(warehouse, good_rows(ROWS).drop(columns=["hour"]))


def write_amount_as_text(warehouse: Path) -> None:
    frame = good_rows(ROWS)
    frame["amount"] = frame["amount"].astype(str)
    write_file(warehouse, pa.Table.from_pandas(frame, preserve_index=False))


def write_fractional_hour(warehouse: Path) -> None:
    frame = good_rows(ROWS)
    frame["hour"] = frame["hour"].astype("float64")
    frame.loc[7, "hour"] = 3.5
    write_file(warehouse, frame)


def write_float_ids(warehouse: Path) -> None:
    frame = good_rows(ROWS)
    frame["transaction_id"] = frame["transaction_id"].astype("float64")
    write_file(warehouse, frame)


def write_truncated(warehouse: Path) -> None:
    path = write_file(warehouse, good_rows(ROWS))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def write_corrupt_pages(warehouse: Path) -> None:
    """Overwrite the start of the data pages but keep the footer intact."""
    path = write_file(warehouse, good_rows(5000))
    data = bytearray(path.read_bytes())
    data[100:3000] = b"\xab" * 2900
    path.write_bytes(bytes(data))


def write_csv_named_parquet(warehouse: Path) -> None:
    write_file(warehouse, good_rows(ROWS), FIRST)
    (partition_folder(warehouse) / SECOND).write_text("transaction_id,amount\n1,2.5\n")


@dataclass(frozen=True)
class FailCase:
    """A partition that must fail the run, and the parts its error must name."""

    id: str
    write: Callable[[Path], None]
    error: type[Exception]
    message: list[str]


FAIL_CASES = [
    FailCase(
        "missing-partition-folder",
        write_nothing,
        PartitionNotFound,
        [
            r"transactions/dt=2024-03-01 not found",
            r"expected Parquet files for 2024-03-01",
        ],
    ),
    FailCase(
        "folder-without-data-files",
        write_only_markers,
        PartitionNotFound,
        [
            r"transactions/dt=2024-03-01 contains no data files",
            r"markers, \.crc and hidden",
        ],
    ),
    FailCase(
        "missing-required-column",
        write_without_hour,
        SchemaMismatch,
        [FIRST, r"required column 'hour' is missing", r"found columns \["],
    ),
    FailCase(
        "amount-as-strings",
        write_amount_as_text,
        SchemaMismatch,
        [
            FIRST,
            r"column 'amount'",
            r"has type (large_)?string",
            r"expected a float > 0 and <= 10000000",
        ],
    ),
    FailCase(
        "hour-as-fractional-float",
        write_fractional_hour,
        SchemaMismatch,
        [
            FIRST,
            r"column 'hour'",
            r"non-integer value 3\.5",
            r"type double",
            r"expected an integer >= 0 and <= 23",
        ],
    ),
    FailCase(
        "transaction-id-as-float",
        write_float_ids,
        SchemaMismatch,
        [
            FIRST,
            r"column 'transaction_id'",
            r"has type double",
            r"expected int64 or string",
        ],
    ),
    FailCase(
        "truncated-file",
        write_truncated,
        UnreadableFile,
        [FIRST, r"is not a readable Parquet file", r"replace or remove it"],
    ),
    FailCase(
        "corrupt-data-pages",
        write_corrupt_pages,
        UnreadableFile,
        [FIRST, r"could not be read", r"replace or remove it"],
    ),
    FailCase(
        "csv-with-parquet-name",
        write_csv_named_parquet,
        UnreadableFile,
        [SECOND, r"is not a readable Parquet file"],
    ),
]


@pytest.mark.parametrize("case", FAIL_CASES, ids=[c.id for c in FAIL_CASES])
def test_bad_files_fail_the_run(case, warehouse, settings):
    case.write(warehouse)

    with pytest.raises(case.error, match=case.message[0]) as failure:
        nightly.run(settings, DAY)

    for part in case.message[1:]:
        assert re.search(part, str(failure.value)), part
    assert not outputs(settings, "risk_reports").exists()
    assert not outputs(settings, "runs", "summary.json").exists()


def test_bad_share_fails_after_writing_results(warehouse, settings):
    frame = good_rows(100)
    frame.loc[:4, "hour"] = 30
    write_file(warehouse, frame)

    with pytest.raises(
        BadRowShareExceeded, match=r"5 of 100 rows \(5\.00%\)"
    ) as failure:
        nightly.run(settings, DAY)

    message = str(failure.value)
    assert "above the maximum of 1.00% (METAGUARD_MAX_BAD_ROW_SHARE)" in message
    assert "{'hour_in_range': 5}" in message
    assert str(outputs(settings, "quarantine")) in message
    assert str(outputs(settings, "validation", "validation_result.json")) in message
    assert pq.read_table(outputs(settings, "quarantine")).num_rows == 5
    validation = json.loads(
        outputs(settings, "validation", "validation_result.json").read_text()
    )
    assert validation["quarantined"] == 5
    assert not outputs(settings, "risk_reports").exists()
    summary = json.loads(outputs(settings, "runs", "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["scored"] == 0
    assert summary["quarantined"] == 5


def test_failed_rerun_withdraws_old_report(warehouse, settings):
    write_file(warehouse, good_rows(100))
    assert nightly.run(settings, DAY)["status"] == "succeeded"
    assert outputs(settings, "risk_reports").exists()
    frame = good_rows(100)
    frame.loc[:4, "hour"] = 30
    write_file(warehouse, frame)

    with pytest.raises(BadRowShareExceeded):
        nightly.run(settings, DAY)

    assert not outputs(settings, "risk_reports").exists()
    summary = json.loads(outputs(settings, "runs", "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["quarantined"] == 5


# Configuration ---------------------------------------------------------------


CONFIG_CASES = [
    pytest.param(
        {"METAGUARD_LOG_LEVEL": "LOUD"},
        {},
        r"METAGUARD_LOG_LEVEL='LOUD' is invalid",
        id="log-level-unknown",
    ),
    pytest.param(
        {"METAGUARD_RISK_THRESHOLD": "high"},
        {},
        r"'high' is not a number",
        id="threshold-not-a-number",
    ),
    pytest.param(
        {"METAGUARD_RISK_THRESHOLD": "1.5"},
        {},
        r"'1.5' is out of range; expected 0 to 1",
        id="threshold-above-1",
    ),
    pytest.param(
        {"METAGUARD_RISK_THRESHOLD": "nan"},
        {},
        r"'nan' is out of range",
        id="threshold-nan",
    ),
    pytest.param(
        {"METAGUARD_MAX_BAD_ROW_SHARE": "-0.01"},
        {},
        r"'-0.01' is out of range",
        id="bad-share-negative",
    ),
    pytest.param(
        {"METAGUARD_BATCH_ROWS": "many"},
        {},
        r"'many' is not an integer",
        id="batch-rows-text",
    ),
    pytest.param(
        {"METAGUARD_PASSTHROUGH_COLUMNS": "customer_id,ssn"},
        {},
        r"unknown column\(s\) \['ssn'\]",
        id="passthrough-unknown-column",
    ),
    pytest.param(
        {"METAGUARD_MEDIUM_RISK_FROM": "0.8", "METAGUARD_HIGH_RISK_FROM": "0.3"},
        {},
        r"METAGUARD_MEDIUM_RISK_FROM=0.8 must be below",
        id="risk-levels-reversed",
    ),
    pytest.param(
        {},
        {"risk_threshold": 2},
        r"Param 'risk_threshold'=2 is out of range",
        id="param-threshold-above-1",
    ),
    pytest.param(
        {},
        {"colour": "red"},
        r"unknown setting\(s\) \['colour'\]",
        id="unknown-setting",
    ),
]


@pytest.mark.parametrize(("environ", "overrides", "message"), CONFIG_CASES)
def test_invalid_config_is_rejected(environ, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ, overrides=overrides)


def test_missing_warehouse_fails_the_run(tmp_path, models):
    settings = load_settings(
        {
            "METAGUARD_WAREHOUSE": str(tmp_path / "absent"),
            "METAGUARD_OUTPUT": str(tmp_path / "output"),
            "METAGUARD_MODELS": str(models),
        }
    )
    with pytest.raises(
        PartitionNotFound, match=r"warehouse folder .*absent does not exist"
    ):
        nightly.run(settings, DAY)


def test_missing_registry_fails_the_run(warehouse, tmp_path):
    write_file(warehouse, good_rows(ROWS))
    settings = load_settings(
        {
            "METAGUARD_WAREHOUSE": str(warehouse),
            "METAGUARD_OUTPUT": str(tmp_path / "output"),
            "METAGUARD_MODELS": str(tmp_path / "absent"),
        }
    )
    with pytest.raises(ModelIntegrityError, match=r"no champion model in .*absent"):
        nightly.run(settings, DAY)


# The same cases through Airflow -----------------------------------------------


@pytest.fixture
def dag_env(warehouse, models, tmp_path, monkeypatch, airflow_db) -> Path:
    output = tmp_path / "output"
    monkeypatch.setenv("METAGUARD_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("METAGUARD_OUTPUT", str(output))
    monkeypatch.setenv("METAGUARD_MODELS", str(models))
    return output


def run_dag(conf: dict | None = None):
    dag = load_dag("metaguard_nightly_scoring")
    return dag.test(logical_date=dt.datetime(2024, 3, 1, tzinfo=dt.UTC), run_conf=conf)


def task_states(run) -> dict[str, tuple[str, int]]:
    return {
        ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()
    }


@pytest.mark.airflow
def test_dag_quarantines_duplicates_across_files(dag_env, warehouse, settings):
    case = next(c for c in ROW_CASES if c.id == "duplicate-id-across-files")
    write_row_case(warehouse, case)

    run = run_dag()

    assert str(run.state) == "success"
    assert quarantine_rows(settings) == case.expected
    summary = read_summary(settings)
    assert summary["rows_in"] == summary["scored"] + summary["quarantined"]
    assert summary["quarantined"] == 2


@pytest.mark.airflow
def test_dag_empty_partition_succeeds(dag_env, warehouse, settings):
    write_file(warehouse, good_rows(0))

    run = run_dag()

    assert str(run.state) == "success"
    assert pq.read_table(outputs(settings, "risk_reports")).num_rows == 0
    assert read_summary(settings)["rows_in"] == 0


@pytest.mark.airflow
def test_dag_wrong_type_fails_without_retry(dag_env, warehouse, settings):
    write_amount_as_text(warehouse)

    run = run_dag()

    assert str(run.state) == "failed"
    assert task_states(run)["locate"] == ("failed", 1)
    assert not outputs(settings, "risk_reports").exists()


@pytest.mark.airflow
def test_dag_bad_share_fails_after_writing(dag_env, warehouse, settings):
    frame = good_rows(100)
    frame.loc[:4, "hour"] = 30
    write_file(warehouse, frame)

    run = run_dag()

    assert str(run.state) == "failed"
    assert task_states(run)["validate"] == ("failed", 1)
    assert pq.read_table(outputs(settings, "quarantine")).num_rows == 5
    assert outputs(settings, "validation", "validation_result.json").is_file()
    assert not outputs(settings, "risk_reports").exists()


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("conf", "message"),
    [
        pytest.param(
            {"date": "not-a-date"}, r"'not-a-date' is not a 'date'", id="date"
        ),
        pytest.param(
            {"risk_threshold": 2}, r"2 is greater than the maximum", id="threshold"
        ),
    ],
)
def test_dag_rejects_invalid_params(conf, message, dag_env, warehouse, settings):
    from airflow.sdk.definitions.param import ParamValidationError

    write_file(warehouse, good_rows(ROWS))

    with pytest.raises(ParamValidationError, match=message):
        run_dag(conf)

    assert not settings.output.exists()
