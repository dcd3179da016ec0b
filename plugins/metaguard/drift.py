"""Population Stability Index (PSI) of a day's columns against the champion.

The reference histograms come from the champion model's ``metadata.json``
(written by :func:`metaguard.evaluation.reference_histograms` at training
time). :func:`drift_rows` builds one quality-table row per numeric contract
column: status ``ok``, ``warn`` or ``flag`` by the thresholds in
:class:`~metaguard.quality_settings.QualitySettings`, or ``no_champion``,
``no_reference`` or ``no_data`` when no PSI could be computed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaguard import registry
from metaguard.exceptions import ModelIntegrityError
from metaguard.quality_settings import QualitySettings
from metaguard.quality_table import NUMERIC_COLUMNS, STATUS_OK, PartitionProfile

log = logging.getLogger(__name__)

# Floor for empty bins, so PSI stays finite when a bin has no rows on one side.
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class Reference:
    """The champion's reference histograms, or why there are none."""

    version: str | None
    histograms: dict
    reason: str = ""


def champion_reference(models: Path) -> Reference:
    """Read the champion's reference histograms from its metadata.

    Only ``metadata.json`` is read, never the pickled model.
    """
    try:
        version = registry.champion_version(models)
        if version is None:
            return Reference(None, {}, f"no champion model in {models}")
        metadata = registry.read_metadata(models, version)
    except ModelIntegrityError as error:
        log.warning("champion model in %s is unusable for PSI: %s", models, error)
        return Reference(None, {}, f"champion model is unusable: {error}")
    return Reference(version, metadata.get("reference_histograms") or {})


def population_stability_index(histogram: Mapping, values: np.ndarray) -> float | None:
    """Compute the PSI of ``values`` against a reference histogram.

    ``histogram`` has ``edges`` (None for -inf and +inf) and ``counts``.
    PSI = sum over bins of (actual - expected) * ln(actual / expected), with
    both shares floored at :data:`PSI_EPSILON`. Returns None when either side
    has no values.
    """
    edges = np.array(
        [_edge(edge, lower=index == 0) for index, edge in enumerate(histogram["edges"])]
    )
    expected = np.asarray(histogram["counts"], dtype=np.float64)
    if len(edges) != len(expected) + 1:
        raise ValueError(
            f"reference histogram has {len(edges)} edges for {len(expected)} counts"
        )
    actual, _ = np.histogram(values, bins=edges)
    if expected.sum() == 0 or actual.sum() == 0:
        return None
    expected_share = np.clip(expected / expected.sum(), PSI_EPSILON, None)
    actual_share = np.clip(actual / actual.sum(), PSI_EPSILON, None)
    terms = (actual_share - expected_share) * np.log(actual_share / expected_share)
    return float(terms.sum())


def _edge(edge: float | None, lower: bool) -> float:
    if edge is None:
        return -math.inf if lower else math.inf
    return float(edge)


def psi_status(value: float, settings: QualitySettings) -> str:
    """Classify a PSI value as ``ok``, ``warn`` or ``flag``."""
    if value >= settings.psi_flag:
        return "flag"
    if value >= settings.psi_warn:
        return "warn"
    return STATUS_OK


def drift_rows(
    profile: PartitionProfile, reference: Reference, settings: QualitySettings
) -> list[dict]:
    """Build one PSI row per numeric contract column, logging flagged ones."""
    rows = []
    thresholds = f"warn at {settings.psi_warn}, flag at {settings.psi_flag}"
    for name in NUMERIC_COLUMNS:
        row = {"kind": "drift", "column": name, "metric": "psi"}
        histogram = reference.histograms.get(name)
        if reference.version is None:
            rows.append(row | {"status": "no_champion", "detail": reference.reason})
            continue
        if histogram is None:
            detail = f"champion {reference.version} has no reference histogram"
            rows.append(row | {"status": "no_reference", "detail": detail})
            continue
        detail = f"champion {reference.version}; {thresholds}"
        try:
            value = population_stability_index(histogram, profile.finite_values(name))
        except ValueError as error:
            detail = f"champion {reference.version}: invalid histogram: {error}"
            rows.append(row | {"status": "no_reference", "detail": detail})
            continue
        if value is None:
            rows.append(row | {"status": "no_data", "detail": detail})
            continue
        status = psi_status(value, settings)
        rows.append(row | {"value": value, "status": status, "detail": detail})
        if status == "flag":
            log.warning(
                "partition %s: PSI of %s is %.4f, at or above the flag threshold %s "
                "(champion %s)",
                profile.partition.day,
                name,
                value,
                settings.psi_flag,
                reference.version,
            )
    return rows
