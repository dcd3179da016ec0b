"""The input contract: one definition of every column, type, bound and rule.

The GX expectation suite in ``expectations/``, the Arrow schemas of the
reports and the column table in the README all derive from :data:`COLUMNS`.
Change a bound here, then run ``metaguard suite --write`` to regenerate the
suite; a test fails while the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SUITE_NAME = "metaguard_transactions"

# Optional columns that the warehouse may carry and the report passes through.
OPTIONAL_COLUMNS: dict[str, pa.DataType] = {
    "customer_id": pa.int64(),
    "terminal_id": pa.int64(),
    "event_time": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class Column:
    """One required column of a transaction partition.

    ``kind`` is ``"id"`` (int64 or string), ``"float"`` or ``"integer"``.
    Bounds are inclusive unless ``exclusive_min`` is set.
    """

    name: str
    kind: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    unique: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        """Return the Arrow type that valid rows of this column are stored as."""
        return {"id": pa.int64(), "float": pa.float64(), "integer": pa.int64()}[
            self.kind
        ]

    @property
    def bounds_text(self) -> str:
        """Describe the accepted range, for error messages and docs."""
        parts = []
        if self.minimum is not None:
            parts.append(
                f"{'>' if self.exclusive_min else '>='} {_number(self.minimum)}"
            )
        if self.maximum is not None:
            parts.append(f"<= {_number(self.maximum)}")
        return " and ".join(parts) or "any value"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


COLUMNS: tuple[Column, ...] = (
    Column(
        "transaction_id",
        "id",
        "unique transaction identifier (int64 or string)",
        unique=True,
    ),
    Column(
        "amount",
        "float",
        "transaction amount",
        minimum=0.0,
        maximum=10_000_000.0,
        exclusive_min=True,
    ),
    Column("hour", "integer", "hour of the day", minimum=0, maximum=23),
    Column("user_age_days", "integer", "days since the account was opened", minimum=1),
    Column(
        "transaction_count",
        "integer",
        "the user's prior transactions",
        minimum=0,
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}


@dataclass(frozen=True)
class Rule:
    """A row-level rule: its reason code, column and GX expectation."""

    code: str
    column: str
    expectation_type: str
    kwargs: dict

    def describe(self) -> str:
        """Return a one-line human description of what the rule demands."""
        column = COLUMNS_BY_NAME[self.column]
        if self.code.endswith("_not_null"):
            return f"{self.column} must not be null or NaN"
        if self.code.endswith("_unique"):
            return f"{self.column} must be unique within the partition"
        return f"{self.column} must be {column.bounds_text}"


def row_rules() -> tuple[Rule, ...]:
    """Build the row-level rules, in the order the suite lists them."""
    rules: list[Rule] = []
    for column in COLUMNS:
        rules.append(
            Rule(
                f"{column.name}_not_null",
                column.name,
                "expect_column_values_to_not_be_null",
                {"column": column.name},
            )
        )
        if column.unique:
            rules.append(
                Rule(
                    f"{column.name}_unique",
                    column.name,
                    "expect_column_values_to_be_unique",
                    {"column": column.name},
                )
            )
        if column.minimum is not None or column.maximum is not None:
            kwargs: dict = {"column": column.name}
            if column.minimum is not None:
                kwargs["min_value"] = column.minimum
            if column.maximum is not None:
                kwargs["max_value"] = column.maximum
            if column.exclusive_min:
                kwargs["strict_min"] = True
            rules.append(
                Rule(
                    f"{column.name}_in_range",
                    column.name,
                    "expect_column_values_to_be_between",
                    kwargs,
                )
            )
    return tuple(rules)


RULES: tuple[Rule, ...] = row_rules()
RULES_BY_CODE: dict[str, Rule] = {r.code: r for r in RULES}


def suite_definition() -> dict:
    """Return the GX expectation suite as the JSON dict kept in ``expectations/``.

    Each expectation carries its reason code in ``meta.rule`` so validation
    results map back to quarantine reasons.
    """
    expectations = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": list(COLUMN_NAMES), "exact_match": False},
            "meta": {"rule": "required_columns"},
        }
    ]
    for rule in RULES:
        expectations.append(
            {
                "type": rule.expectation_type,
                "kwargs": dict(rule.kwargs),
                "meta": {"rule": rule.code, "description": rule.describe()},
            }
        )
    return {
        "name": SUITE_NAME,
        "expectations": expectations,
        "meta": {
            "generated_by": "metaguard suite --write",
            "source": "plugins/metaguard/contract.py",
        },
    }
