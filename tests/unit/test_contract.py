import json

import pytest

from metaguard.contract import COLUMN_NAMES, RULES, RULES_BY_CODE, suite_definition
from metaguard.validation import SUITE_PATH, load_suite, suite_json


def test_committed_suite_matches_contract():
    assert SUITE_PATH.read_text() == suite_json(), (
        "expectations/ drifted from contract.py; run 'metaguard suite --write'"
    )


def test_suite_has_one_expectation_per_rule():
    suite = suite_definition()
    rules = [e["meta"]["rule"] for e in suite["expectations"]]
    assert rules == ["required_columns"] + [r.code for r in RULES]


@pytest.mark.parametrize(
    ("code", "kwargs"),
    [
        (
            "amount_in_range",
            {
                "column": "amount",
                "min_value": 0.0,
                "max_value": 10_000_000.0,
                "strict_min": True,
            },
        ),
        ("hour_in_range", {"column": "hour", "min_value": 0, "max_value": 23}),
        ("user_age_days_in_range", {"column": "user_age_days", "min_value": 1}),
        ("transaction_count_in_range", {"column": "transaction_count", "min_value": 0}),
        ("transaction_id_unique", {"column": "transaction_id"}),
    ],
)
def test_rule_bounds_match_input_contract(code, kwargs):
    assert RULES_BY_CODE[code].kwargs == kwargs


def test_every_column_has_not_null_rule():
    for name in COLUMN_NAMES:
        assert f"{name}_not_null" in RULES_BY_CODE


def test_load_suite_rejects_drifted_file(tmp_path):
    drifted = suite_definition()
    drifted["expectations"][2]["kwargs"]["max_value"] = 5
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(drifted))
    with pytest.raises(Exception, match="differs from the contract"):
        load_suite(path)
