import pytest

from metaguard.config import inside_root, load_settings, parse_date
from metaguard.exceptions import ConfigError, PathOutsideRoot


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "METAGUARD_RISK_THRESHOLD",
            "1.5",
            "METAGUARD_RISK_THRESHOLD='1.5' is out of range",
        ),
        ("METAGUARD_RISK_THRESHOLD", "high", "is not a number"),
        ("METAGUARD_MAX_BAD_ROW_SHARE", "-0.1", "expected 0 to 1"),
        ("METAGUARD_LOG_LEVEL", "LOUD", "expected one of DEBUG, INFO"),
        ("METAGUARD_PASSTHROUGH_COLUMNS", "customer_id,email", "unknown column"),
        ("METAGUARD_BATCH_ROWS", "0", "expected 1 to 50000000"),
    ],
    ids=[
        "threshold-above-1",
        "threshold-text",
        "share-negative",
        "log-level",
        "passthrough",
        "batch-rows",
    ],
)
def test_invalid_variable_names_itself(variable, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({variable: value})


def test_defaults_point_at_demo():
    settings = load_settings({})
    assert settings.warehouse.parts[-2:] == ("demo", "warehouse")
    assert settings.risk_threshold == 0.5
    assert settings.max_bad_row_share == 0.01


def test_param_overrides_variable():
    settings = load_settings(
        {"METAGUARD_RISK_THRESHOLD": "0.3"}, overrides={"risk_threshold": 0.8}
    )
    assert settings.risk_threshold == 0.8


def test_risk_level_bounds_must_be_ordered():
    with pytest.raises(ConfigError, match="must be below"):
        load_settings(
            {"METAGUARD_MEDIUM_RISK_FROM": "0.8", "METAGUARD_HIGH_RISK_FROM": "0.7"}
        )


@pytest.mark.parametrize("text", ["2018-13-01", "yesterday", "../../etc", ""])
def test_parse_date_rejects(text):
    with pytest.raises(ConfigError, match="is not a date"):
        parse_date(text, "Param 'date'")


def test_parse_date_accepts_timestamp():
    assert parse_date("2018-07-15T00:00:00+00:00").isoformat() == "2018-07-15"


@pytest.mark.parametrize("part", ["../other", "/etc", "a/../../b"])
def test_inside_root_rejects_escape(tmp_path, part):
    with pytest.raises(PathOutsideRoot):
        inside_root(tmp_path, part)


def test_inside_root_rejects_symlink_escape(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PathOutsideRoot, match="outside the root"):
        inside_root(root, "link", "x")


def test_misspelt_variable_is_warned(caplog):
    with caplog.at_level("WARNING", logger="metaguard.config"):
        settings = load_settings({"METAGUARD_RISK_TRESHOLD": "0.3"})
    assert settings.risk_threshold == 0.5
    assert "METAGUARD_RISK_TRESHOLD is not a MetaGuard setting" in caplog.text
    assert "did you mean METAGUARD_RISK_THRESHOLD?" in caplog.text
