"""Data-quality tables, PSI, Data Docs, trend chart and the ``quality`` command."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metaguard import quality, registry
from metaguard.cli import main
from metaguard.config import load_settings
from metaguard.evaluation import reference_histograms
from metaguard.exceptions import ConfigError
from metaguard.features import CONTRACT_FEATURES
from tests.builders import good_rows, write_partition

DAY = dt.date(2024, 2, 1)


def _settings(tmp_path, warehouse=None):
    return load_settings(
        {},
        overrides={
            "warehouse": str(warehouse or tmp_path / "warehouse"),
            "output": str(tmp_path / "output"),
            "models": str(tmp_path / "models"),
        },
    )


def _champion(models, frame: pd.DataFrame) -> str:
    """Register a champion whose metadata contains ``frame``'s reference histograms.

    The quality checks read only the metadata, so the model object is empty.
    """
    features = list(CONTRACT_FEATURES)
    metadata = {
        "features": features,
        "reference_histograms": reference_histograms(frame, features),
    }
    version = registry.register(models, {}, metadata)
    registry.set_champion(models, version, "test reference")
    return version


def _table(settings, day=DAY) -> pd.DataFrame:
    return pq.read_table(quality.quality_path(settings.output, day)).to_pandas()


def _one(table: pd.DataFrame, **match) -> pd.Series:
    selected = table
    for key, value in match.items():
        selected = selected[selected[key] == value]
    assert len(selected) == 1, f"{match}: {len(selected)} rows"
    return selected.iloc[0]


def _check(settings, day=DAY, run_id="test-run", **overrides) -> dict:
    settings_quality = quality.QualitySettings(**overrides)
    return quality.check_day(settings, settings_quality, day, run_id)


# PSI and settings ----------------------------------------------------------


def test_psi_zero_for_identical_distribution():
    frame = good_rows(5000, seed=4)
    histograms = reference_histograms(frame, list(CONTRACT_FEATURES))
    for name in CONTRACT_FEATURES:
        values = frame[name].to_numpy(dtype=np.float64)
        psi = quality.population_stability_index(histograms[name], values)
        assert psi == pytest.approx(0.0, abs=1e-12), name


def test_psi_large_for_shifted_distribution():
    reference = good_rows(5000, seed=4)
    histogram = reference_histograms(reference, ["amount"])["amount"]
    same_source = good_rows(5000, seed=5)["amount"].to_numpy(dtype=np.float64)
    shifted = same_source + 1500.0
    assert quality.population_stability_index(histogram, same_source) < 0.1
    assert quality.population_stability_index(histogram, shifted) > 1.0


def test_psi_of_empty_values_is_none():
    histogram = {"edges": [None, 1.0, None], "counts": [5, 5]}
    assert quality.population_stability_index(histogram, np.array([])) is None


def test_psi_status_thresholds():
    settings = quality.QualitySettings(psi_warn=0.1, psi_flag=0.25)
    assert quality.psi_status(0.0999, settings) == "ok"
    assert quality.psi_status(0.1, settings) == "warn"
    assert quality.psi_status(0.2499, settings) == "warn"
    assert quality.psi_status(0.25, settings) == "flag"


def test_quality_settings_env_and_params():
    environ = {"METAGUARD_PSI_WARN": "0.05", "METAGUARD_DATA_DOCS_KEEP": "30"}
    settings = quality.load_quality_settings({"psi_flag": 0.5, "date": "x"}, environ)
    expected = quality.QualitySettings(psi_warn=0.05, psi_flag=0.5, docs_keep=30)
    assert settings == expected
    assert quality.load_quality_settings({}, {}) == quality.QualitySettings()


@pytest.mark.parametrize(
    ("environ", "params", "named"),
    [
        ({"METAGUARD_PSI_WARN": "high"}, {}, "METAGUARD_PSI_WARN"),
        ({"METAGUARD_PSI_FLAG": "-1"}, {}, "METAGUARD_PSI_FLAG"),
        ({}, {"psi_warn": 0.5, "psi_flag": 0.2}, "METAGUARD_PSI_WARN"),
        ({"METAGUARD_DATA_DOCS_KEEP": "0"}, {}, "METAGUARD_DATA_DOCS_KEEP"),
    ],
)
def test_quality_settings_reject_invalid(environ, params, named):
    with pytest.raises(ConfigError, match=named):
        quality.load_quality_settings(params, environ)


def test_requested_days_defaults_and_limits():
    fallback = dt.date(2024, 1, 10)
    assert quality.requested_days(None, None, fallback) == [fallback]
    assert quality.requested_days("2024-01-08", None, fallback) == [
        dt.date(2024, 1, 8),
        dt.date(2024, 1, 9),
        fallback,
    ]
    with pytest.raises(ConfigError, match="before start date"):
        quality.requested_days("2024-01-11", None, fallback)
    with pytest.raises(ConfigError, match="above the maximum"):
        quality.requested_days("2020-01-01", "2024-01-01", fallback)
    with pytest.raises(ConfigError, match="Param 'end'"):
        quality.requested_days(None, "soon", fallback)


# Quality table -------------------------------------------------------------


def test_table_counts_bad_rows_across_files(tmp_path):
    settings = _settings(tmp_path)
    first = good_rows(300, seed=1).astype({"amount": "float64", "hour": "float64"})
    first.loc[0, "amount"] = np.nan
    first.loc[1, "hour"] = 24
    second = good_rows(200, start_id=300, seed=2)
    write_partition(settings.warehouse, DAY, first, name="part-00000.parquet")
    write_partition(settings.warehouse, DAY, second, name="part-00001.parquet")

    summary = _check(settings)
    table = _table(settings)

    assert summary["status"] == "ok"
    assert summary["rows"] == 500
    assert summary["bad_rows"] == 4
    assert set(table["run_id"]) == {"test-run"}
    assert set(table["partition_date"]) == {DAY}
    assert _one(table, kind="partition", metric="row_count")["value"] == 500
    files = _one(table, kind="partition", metric="file_count")
    assert files["value"] == 2
    assert files["detail"] == "part-00000.parquet, part-00001.parquet"
    assert _one(table, kind="partition", metric="duplicated_ids")["value"] == 1
    assert _one(table, kind="partition", metric="bad_rows")["value"] == 4

    unique = _one(table, kind="expectation", rule="transaction_id_unique")
    assert unique["unexpected_count"] == 2
    assert list(unique["unexpected_values"]) == ["300", "300"]
    hour = _one(table, kind="expectation", rule="hour_in_range")
    assert hour["success"] == False  # noqa: E712
    assert hour["status"] == "fail"
    assert hour["element_count"] == 500
    assert hour["unexpected_count"] == 1
    assert hour["unexpected_percent"] == pytest.approx(0.2)
    assert list(hour["unexpected_values"]) == ["24.0"]
    amount_nulls = _one(table, kind="expectation", rule="amount_not_null")
    assert amount_nulls["unexpected_count"] == 1
    assert _one(table, kind="expectation", rule="required_columns")["success"]
    assert len(table[table["kind"] == "expectation"]) == 11

    null_count = _one(table, kind="column", column="amount", metric="null_count")
    assert null_count["value"] == 1
    amount = pd.concat([first["amount"], second["amount"]]).dropna()
    for metric, expected in (
        ("min", amount.min()),
        ("max", amount.max()),
        ("mean", amount.mean()),
        ("p50", amount.quantile(0.5)),
        ("p99", amount.quantile(0.99)),
    ):
        row = _one(table, kind="column", column="amount", metric=metric)
        assert row["value"] == pytest.approx(expected), metric


def test_psi_rows_without_champion(tmp_path):
    settings = _settings(tmp_path)
    write_partition(settings.warehouse, DAY, good_rows(100))
    summary = _check(settings)
    drift = _table(settings).query("kind == 'drift'")
    assert sorted(drift["column"]) == sorted(quality.NUMERIC_COLUMNS)
    assert set(drift["status"]) == {"no_champion"}
    assert drift["value"].isna().all()
    assert summary["psi_max"] is None


def test_broken_champion_file_gives_psi_rows(tmp_path):
    settings = _settings(tmp_path)
    settings.models.mkdir()
    (settings.models / registry.CHAMPION_FILE).write_text('{"version": 3}')
    write_partition(settings.warehouse, DAY, good_rows(50))
    _check(settings)
    drift = _table(settings).query("kind == 'drift'")
    assert set(drift["status"]) == {"no_champion"}
    assert "unusable" in drift["detail"].iloc[0]


def test_shifted_partition_is_flagged(tmp_path, caplog):
    settings = _settings(tmp_path)
    version = _champion(settings.models, good_rows(4000, seed=1))
    shifted = good_rows(4000, seed=2)
    shifted["amount"] = shifted["amount"] * 4.0
    write_partition(settings.warehouse, DAY, shifted)

    with caplog.at_level(logging.WARNING, logger="metaguard.drift"):
        summary = _check(settings)
    drift = _table(settings).query("kind == 'drift'").set_index("column")

    assert drift.loc["amount", "status"] == "flag"
    assert drift.loc["amount", "value"] > 0.25
    assert drift.loc["hour", "status"] == "ok"
    assert drift.loc["hour", "value"] < 0.1
    assert version in drift.loc["amount", "detail"]
    assert summary["psi_flagged"] == ["amount"]
    assert summary["psi_max_column"] == "amount"
    messages = [record.getMessage() for record in caplog.records]
    flagged = [message for message in messages if "PSI of amount" in message]
    assert len(flagged) == 1
    assert f"{summary['psi']['amount']:.4f}" in flagged[0]


def test_psi_thresholds_come_from_settings(tmp_path):
    settings = _settings(tmp_path)
    _champion(settings.models, good_rows(4000, seed=1))
    shifted = good_rows(4000, seed=2)
    shifted["amount"] = shifted["amount"] * 4.0
    write_partition(settings.warehouse, DAY, shifted)
    summary = _check(settings, psi_warn=50.0, psi_flag=100.0)
    assert summary["psi_flagged"] == []
    assert set(summary["psi_status"].values()) == {"ok"}


# Bad input -----------------------------------------------------------------


def test_missing_partition_is_a_row(tmp_path):
    settings = _settings(tmp_path)
    (settings.warehouse / "transactions").mkdir(parents=True)
    summary = _check(settings)
    table = _table(settings)
    assert summary["status"] == "missing"
    assert len(table) == 1
    assert table["status"][0] == "missing"
    assert f"dt={DAY}" in table["detail"][0]


def test_unreadable_file_is_named(tmp_path):
    settings = _settings(tmp_path)
    write_partition(settings.warehouse, DAY, good_rows(10))
    broken = settings.warehouse / "transactions" / f"dt={DAY}" / "part-00001.parquet"
    broken.write_bytes(b"this is not parquet")
    _check(settings)
    row = _one(_table(settings), kind="partition", metric="status")
    assert row["status"] == "unreadable"
    assert "part-00001.parquet" in row["detail"]
    assert "Parquet" in row["detail"]


def test_wrong_type_names_column_and_type(tmp_path):
    settings = _settings(tmp_path)
    frame = good_rows(10)
    frame["amount"] = frame["amount"].astype(str)
    write_partition(settings.warehouse, DAY, frame)
    _check(settings)
    row = _one(_table(settings), kind="partition", metric="status")
    assert row["status"] == "schema_mismatch"
    assert row["column"] == "amount"
    assert re.search(r"has type (large_)?string;", row["detail"])


def test_fractional_hour_names_column(tmp_path):
    settings = _settings(tmp_path)
    frame = good_rows(10).astype({"hour": "float64"})
    frame.loc[3, "hour"] = 3.5
    write_partition(settings.warehouse, DAY, frame)
    _check(settings)
    row = _one(_table(settings), kind="partition", metric="status")
    assert row["status"] == "schema_mismatch"
    assert row["column"] == "hour"
    assert "3.5" in row["detail"]


def test_missing_column_is_reported(tmp_path):
    settings = _settings(tmp_path)
    write_partition(settings.warehouse, DAY, good_rows(10).drop(columns=["hour"]))
    _check(settings)
    row = _one(_table(settings), kind="partition", metric="status")
    assert row["status"] == "schema_mismatch"
    assert row["column"] == "hour"
    assert "is missing" in row["detail"]


# Data Docs, trend and command ----------------------------------------------


def test_data_docs_lists_runs_and_prunes(tmp_path):
    settings = _settings(tmp_path)
    days = [DAY + dt.timedelta(days=offset) for offset in range(3)]
    for offset, day in enumerate(days):
        write_partition(settings.warehouse, day, good_rows(50, seed=offset))
        _check(settings, day=day)

    index = quality.publish_docs(settings.output, keep=2)

    html = index.read_text()
    assert f"dt={days[0]}-batch" not in html
    newest = html.index(f"dt={days[2]}-batch")
    middle = html.index(f"dt={days[1]}-batch")
    assert newest < middle
    stored = list((settings.output / "gx/uncommitted/validations").rglob("*.json"))
    assert len(stored) == 2
    pages = list((settings.output / "data_docs/validations").rglob("*.html"))
    expected = [f"dt={day}-batch-00000.html" for day in days[1:]]
    assert sorted(page.name for page in pages) == expected
    folders = (settings.output / "data_docs/validations").rglob("*")
    assert not [f for f in folders if f.is_dir() and not any(f.iterdir())]
    page = _one(_table(settings, days[2]), metric="data_docs_page")["detail"]
    assert (settings.output / page).is_file()


def test_data_docs_rebuilt_after_deletion(tmp_path):
    settings = _settings(tmp_path)
    write_partition(settings.warehouse, DAY, good_rows(50))
    _check(settings)
    quality.publish_docs(settings.output, keep=5)
    for page in (settings.output / "data_docs").rglob("*.html"):
        page.unlink()
    html = quality.publish_docs(settings.output, keep=5).read_text()
    assert f"dt={DAY}-batch-00000" in html
    assert list((settings.output / "data_docs/validations").rglob("*.html"))


def _write_summary(output, day, scored, suspicious):
    path = output / "runs" / f"dt={day}" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"scored": scored, "suspicious": suspicious}))


def test_trend_chart_and_command(tmp_path, capsys):
    settings = _settings(tmp_path)
    days = [DAY + dt.timedelta(days=offset) for offset in range(3)]
    _champion(settings.models, good_rows(2000, seed=1))
    write_partition(settings.warehouse, days[0], good_rows(400, seed=2))
    write_partition(settings.warehouse, days[2], good_rows(300, seed=3))
    _write_summary(settings.output, days[0], scored=400, suspicious=10)

    result = quality.run_range(
        settings, quality.QualitySettings(), days[0], days[-1], "range-run"
    )

    assert result["days_without_report"] == []
    assert (settings.output / "quality/trend.png").stat().st_size > 10_000
    figures = quality.day_figures(settings.output, days[0], days[-1])
    assert [f["status"] for f in figures] == ["ok", "missing", "ok"]
    assert [f["rows"] for f in figures] == [400, None, 300]
    assert figures[0]["suspicious_share"] == pytest.approx(0.025)
    assert figures[2]["suspicious_share"] is None
    assert figures[0]["psi_max"] < 0.25

    after = days[-1] + dt.timedelta(days=1)
    arguments = [
        "quality",
        "--output",
        str(settings.output),
        "--start",
        str(days[0]),
        "--end",
        str(after),
    ]
    assert main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "date",
        "status",
        "rows",
        "bad",
        "rows",
        "suspicious",
        "max",
        "PSI",
        "column",
    ]
    assert lines[2].split()[:5] == [str(days[0]), "ok", "400", "0.000%", "2.500%"]
    assert lines[3].split()[:2] == [str(days[1]), "missing"]
    assert lines[5].split()[:3] == [str(after), "no", "report"]


def test_command_rejects_reversed_range(tmp_path, capsys):
    code = main(
        [
            "quality",
            "--output",
            str(tmp_path),
            "--start",
            "2024-02-02",
            "--end",
            "2024-02-01",
        ]
    )
    assert code == 2
    assert "before start date" in capsys.readouterr().err


def test_publish_range_lists_days_without_report(tmp_path):
    settings = _settings(tmp_path)
    write_partition(settings.warehouse, DAY, good_rows(20))
    _check(settings, run_id="older-run")
    result = quality.publish_range(
        settings, quality.QualitySettings(), [DAY, DAY + dt.timedelta(1)], "new-run"
    )
    assert result["days_without_report"] == [str(DAY), str(DAY + dt.timedelta(1))]


def test_table_schema_is_fixed(tmp_path):
    settings = _settings(tmp_path)
    write_partition(settings.warehouse, DAY, good_rows(20))
    _check(settings)
    schema = pq.read_schema(quality.quality_path(settings.output, DAY))
    assert schema.equals(quality.QUALITY_SCHEMA, check_metadata=False)
    assert schema.field("unexpected_values").type == pa.list_(pa.string())


# Handbook ------------------------------------------------------------------


@pytest.mark.handbook
def test_handbook_day_with_zero_amounts(handbook, tmp_path):
    day = dt.date(2018, 7, 15)
    settings = _settings(tmp_path, warehouse=handbook)
    frame = pq.read_table(
        handbook / "transactions" / f"dt={day}", columns=list(CONTRACT_FEATURES)
    ).to_pandas()
    _champion(settings.models, frame)

    summary = _check(settings, day=day)
    table = _table(settings, day)

    assert summary["rows"] == 9523
    amount = _one(table, kind="expectation", rule="amount_in_range")
    assert amount["unexpected_count"] == 3
    assert amount["element_count"] == 9523
    assert list(amount["unexpected_values"]) == ["0.0", "0.0", "0.0"]
    failed = table.query("kind == 'expectation' and status == 'fail'")
    assert failed["rule"].tolist() == ["amount_in_range"]
    assert _one(table, kind="column", column="amount", metric="min")["value"] == 0.0
    assert _one(table, kind="partition", metric="duplicated_ids")["value"] == 0
    # The champion's reference is this very day, so every PSI is zero.
    drift = table.query("kind == 'drift'")
    assert set(drift["status"]) == {"ok"}
    assert drift["value"].abs().max() == pytest.approx(0.0, abs=1e-12)
