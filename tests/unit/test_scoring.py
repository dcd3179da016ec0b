import numpy as np
import pandas as pd
import pytest

from metaguard.scoring import reason_codes, risk_levels


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"amount": 1000.0, "user_age_days": 30, "transaction_count": 20, "hour": 6},
            [],
        ),
        (
            {
                "amount": 1000.01,
                "user_age_days": 30,
                "transaction_count": 20,
                "hour": 22,
            },
            ["high_amount"],
        ),
        (
            {"amount": 5.0, "user_age_days": 29, "transaction_count": 21, "hour": 23},
            ["new_account", "high_frequency", "unusual_hour"],
        ),
        (
            {"amount": 5.0, "user_age_days": 400, "transaction_count": 0, "hour": 5},
            ["unusual_hour"],
        ),
    ],
    ids=["at-every-boundary", "high-amount", "three-reasons", "early-hour"],
)
def test_reason_codes(row, expected):
    assert reason_codes(pd.DataFrame([row])) == [expected]


def test_reason_codes_of_empty_frame():
    empty = pd.DataFrame(
        columns=["amount", "user_age_days", "transaction_count", "hour"]
    )
    assert reason_codes(empty) == []


def test_risk_levels_boundaries():
    scores = np.array([0.0, 0.40, 0.4000001, 0.70, 0.70001, 1.0])
    levels = risk_levels(scores, 0.40, 0.70)
    assert levels.tolist() == ["Low", "Low", "Medium", "Medium", "High", "High"]
