"""Great Expectations validation of transaction batches, and the quarantine split.

The suite is read from ``expectations/metaguard_transactions.json``, which
``metaguard suite --write`` generates from :mod:`metaguard.contract`. Each
batch is validated by GX Core with the ``COMPLETE`` result format, so every
failing row is known by its index together with the rule (``meta.rule``) of
each expectation it broke. Rows are never checked by code of our own except
for ``transaction_id`` duplicates that sit in different batches, which GX
cannot see because it validates one batch at a time.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaguard.config import REPO_ROOT
from metaguard.contract import COLUMN_NAMES, RULES_BY_CODE, SUITE_NAME, suite_definition
from metaguard.exceptions import MetaGuardError, SchemaMismatch, UnreadableFile
from metaguard.warehouse import Partition, iter_batches

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = REPO_ROOT / "expectations"
SUITE_PATH = EXPECTATIONS_DIR / f"{SUITE_NAME}.json"
FAILED_RULES = "failed_rules"
FAILED_COLUMNS = "failed_columns"
SAMPLE_SIZE = 20
RESULT_LIST_LIMIT = 1000


def suite_json() -> str:
    """Render the suite generated from the contract as the committed JSON text."""
    return json.dumps(suite_definition(), indent=2, sort_keys=True) + "\n"


def write_suite(path: Path = SUITE_PATH) -> Path:
    """Write the generated suite to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(suite_json())
    return path


def load_suite(path: Path = SUITE_PATH) -> dict:
    """Read the committed suite, raising when it drifted from the contract."""
    if not path.is_file():
        raise MetaGuardError(
            f"expectation suite {path} not found; run 'metaguard suite --write'"
        )
    suite = json.loads(path.read_text())
    if suite != suite_definition():
        raise MetaGuardError(
            f"expectation suite {path} differs from the contract in "
            "metaguard/contract.py; run 'metaguard suite --write' and review the diff"
        )
    return suite


class BatchValidator:
    """Validates pandas batches against the suite in one ephemeral GX context.

    The context, data source and batch definition are built once, because GX
    setup costs far more than validating a batch.
    """

    def __init__(self, suite: dict | None = None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self._context.data_sources.add_pandas("metaguard")
        asset = source.add_dataframe_asset("transactions")
        self._batch_definition = asset.add_batch_definition_whole_dataframe("batch")
        self.suite = self._context.suites.add(
            gx.ExpectationSuite(**(suite or load_suite()))
        )

    def validate(self, frame: pd.DataFrame):
        """Run the suite on ``frame`` and return the GX validation result."""
        batch = self._batch_definition.get_batch(
            batch_parameters={"dataframe": frame[list(COLUMN_NAMES)]}
        )
        return batch.validate(self.suite, result_format={"result_format": "COMPLETE"})


@dataclass
class RuleTally:
    """Merged statistics of one rule across all batches of a partition."""

    rule: str
    column: str
    expectation_type: str
    element_count: int = 0
    unexpected_count: int = 0
    unexpected_sample: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """Return the tally as a JSON-ready dict."""
        share = self.unexpected_count / self.element_count if self.element_count else 0
        return {
            "rule": self.rule,
            "column": self.column,
            "expectation_type": self.expectation_type,
            "success": self.unexpected_count == 0,
            "element_count": self.element_count,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": round(100.0 * share, 6),
            "unexpected_sample": self.unexpected_sample,
        }


class RuleFlags:
    """Collects, per row of one batch, the rules it broke."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.by_row: dict[int, list[str]] = defaultdict(list)

    def add(self, rule: str, indices: Iterable[int]) -> None:
        """Record that the rows at ``indices`` broke ``rule``."""
        for index in indices:
            if rule not in self.by_row[index]:
                self.by_row[index].append(rule)

    def mask(self) -> pd.Series:
        """Return a boolean Series, True where a row broke at least one rule."""
        bad = pd.Series(False, index=range(self.rows))
        bad.iloc[list(self.by_row)] = True
        return bad


def flags_from_result(result, rows: int) -> RuleFlags:
    """Map a GX validation result onto the rows of its batch.

    Raises :class:`MetaGuardError` when a table-level expectation fails,
    because the schema check before validation should have caught it.
    """
    flags = RuleFlags(rows)
    for outcome in result.results:
        rule = outcome.expectation_config.meta.get("rule", "")
        if outcome.success:
            continue
        if rule not in RULES_BY_CODE:
            raise MetaGuardError(
                f"expectation {outcome.expectation_config.type} ({rule}) failed "
                f"at table level: {outcome.result}"
            )
        flags.add(rule, outcome.result.get("unexpected_index_list") or [])
    return flags


def duplicated_ids(files: Iterable[Path], id_is_string: bool) -> pa.Array:
    """Return every ``transaction_id`` that occurs more than once in ``files``.

    Reads only the id column. Integer ids need about 20 bytes per row at the
    peak, for the Arrow column and a sorted NumPy copy. String ids are counted
    in a hash table, which needs several times the size of the ids.
    """
    target = pa.string() if id_is_string else pa.int64()
    chunks = []
    for path in files:
        # A file whose footer is intact can still hold corrupt pages, which
        # only show up here, on the first read of the data.
        try:
            column = pq.read_table(path, columns=["transaction_id"]).column(0)
        except (pa.ArrowInvalid, OSError) as error:
            raise UnreadableFile(
                f"{path} could not be read ({error}); replace or remove it"
            ) from error
        try:
            chunks.append(column.cast(target))
        except pa.ArrowInvalid as error:
            raise SchemaMismatch(
                f"{path}: column 'transaction_id' cannot be read as {target} "
                f"({error}); expected int64 or string ids"
            ) from None
    if not chunks:
        return pa.array([], type=target)
    if not id_is_string:
        return _repeated_integers(chunks)
    ids = pa.chunked_array([c for chunk in chunks for c in chunk.chunks], type=target)
    counts = pc.value_counts(ids.drop_null())
    repeated = pc.greater(counts.field("counts"), 1)
    return counts.field("values").filter(repeated)


def _repeated_integers(chunks: list[pa.ChunkedArray]) -> pa.Array:
    """Return the int64 values that occur more than once, found by sorting a copy.

    The sorted copy costs 8 bytes per id and the comparison 1 more, where
    ``pyarrow.compute.value_counts`` (pyarrow 26) peaks near 100 bytes per id.
    """
    arrays = [array for chunk in chunks for array in chunk.chunks]
    ids = np.empty(sum(len(a) - a.null_count for a in arrays), dtype=np.int64)
    filled = 0
    for array in arrays:
        values = array.drop_null().to_numpy()
        ids[filled : filled + len(values)] = values
        filled += len(values)
    ids.sort()
    repeated = ids[1:][ids[1:] == ids[:-1]]
    return pa.array(np.unique(repeated), type=pa.int64())


def apply_duplicates(
    frame: pd.DataFrame, flags: RuleFlags, duplicates: pa.Array
) -> None:
    """Flag rows whose id is duplicated elsewhere in the partition."""
    if len(duplicates) == 0:
        return
    ids = pa.array(frame["transaction_id"], from_pandas=True).cast(duplicates.type)
    hits = pc.is_in(ids, value_set=duplicates).to_numpy(zero_copy_only=False)
    flags.add("transaction_id_unique", [int(i) for i in hits.nonzero()[0]])


def quarantine_frame(frame: pd.DataFrame, flags: RuleFlags) -> pd.DataFrame:
    """Return the flagged rows of ``frame`` with their rules and columns."""
    rows = sorted(flags.by_row)
    bad = frame.iloc[rows].copy()
    rules = [flags.by_row[i] for i in rows]
    bad[FAILED_RULES] = rules
    bad[FAILED_COLUMNS] = [
        sorted({RULES_BY_CODE[r].column for r in row_rules}) for row_rules in rules
    ]
    return bad


def tally(tallies: dict[str, RuleTally], frame: pd.DataFrame, flags: RuleFlags) -> None:
    """Add one batch's per-rule counts and sample values to ``tallies``."""
    for rule in RULES_BY_CODE.values():
        entry = tallies.setdefault(
            rule.code, RuleTally(rule.code, rule.column, rule.expectation_type)
        )
        entry.element_count += len(frame)
    for index, rules in flags.by_row.items():
        for code in rules:
            entry = tallies[code]
            entry.unexpected_count += 1
            if len(entry.unexpected_sample) < SAMPLE_SIZE:
                entry.unexpected_sample.append(
                    _json_value(frame.iloc[index][RULES_BY_CODE[code].column])
                )


def _json_value(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


@dataclass
class ValidatedBatch:
    """One validated batch: its rows, the GX validation result and the row flags."""

    frame: pd.DataFrame
    result: object
    flags: RuleFlags


class PartitionValidation:
    """Validates a partition batch by batch, the one path every DAG uses.

    GX validates each record batch. ``transaction_id`` duplicates that sit in
    different batches or files are found by an id-only pass first and added
    to each batch's flags under ``transaction_id_unique``.
    """

    def __init__(
        self,
        partition: Partition,
        batch_rows: int,
        validator: BatchValidator | None = None,
    ) -> None:
        self.partition = partition
        self.batch_rows = batch_rows
        self.duplicates = duplicated_ids(partition.files, partition.id_is_string)
        self._validator = validator or BatchValidator()

    def __iter__(self):
        for frame in iter_batches(self.partition, self.batch_rows):
            result = self._validator.validate(frame)
            flags = flags_from_result(result, len(frame))
            apply_duplicates(frame, flags, self.duplicates)
            yield ValidatedBatch(frame, result, flags)


def trim_result(result, limit: int = RESULT_LIST_LIMIT):
    """Cap a GX result's per-row lists in place, after the row flags were taken.

    A batch full of bad rows would otherwise store one index per row in the
    validation result JSON and the GX store.
    """
    for outcome in result.results:
        details = outcome.result or {}
        for key in ("unexpected_index_list", "unexpected_list"):
            values = details.get(key)
            if isinstance(values, list) and len(values) > limit:
                details[key] = values[:limit]
                details[f"{key}_truncated"] = True
    return result
