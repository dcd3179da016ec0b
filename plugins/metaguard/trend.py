"""Day figures from the quality tables: the trend chart and the terminal table.

:func:`day_figures` reads each day's row count, bad-row share, largest PSI
and, from the nightly run summary, suspicious share. :func:`draw_trend` draws
them as ``<output>/quality/trend.png`` and :func:`format_figures` renders
them for ``metaguard quality``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from pathlib import Path

import pyarrow.parquet as pq

from metaguard.config import inside_root
from metaguard.publish import temporary_path
from metaguard.quality_settings import QualitySettings, days_between
from metaguard.quality_table import NUMERIC_COLUMNS, quality_path

log = logging.getLogger(__name__)

TREND_FILE = "trend.png"
TREND_MIN_DAYS = 90


def day_figures(output: Path, start: dt.date, end: dt.date) -> list[dict]:
    """Read each day's headline figures from the quality tables and run summaries.

    A day without a quality table gets the status ``no report``.
    """
    return [_figures_for(output, day) for day in days_between(start, end)]


def _figures_for(output: Path, day: dt.date) -> dict:
    figures = {
        "date": day,
        "status": "no report",
        "rows": None,
        "bad_row_share": None,
        "suspicious_share": None,
        "psi_max": None,
        "psi_max_column": None,
    }
    path = quality_path(output, day)
    if not path.is_file():
        return figures
    columns = ["kind", "column", "metric", "value", "status"]
    table = pq.read_table(path, columns=columns).to_pandas()
    partition = table[table["kind"] == "partition"].set_index("metric")
    figures["status"] = partition.loc["status", "status"]
    for metric, key in (("row_count", "rows"), ("bad_row_share", "bad_row_share")):
        if metric in partition.index:
            figures[key] = float(partition.loc[metric, "value"])
    drift = table[(table["kind"] == "drift") & table["value"].notna()]
    if not drift.empty:
        top = drift.loc[drift["value"].idxmax()]
        figures["psi_max"] = float(top["value"])
        figures["psi_max_column"] = top["column"]
    figures["suspicious_share"] = _suspicious_share(output, day)
    return figures


def _suspicious_share(output: Path, day: dt.date) -> float | None:
    import json

    path = inside_root(output, "runs", f"dt={day.isoformat()}", "summary.json")
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    scored = summary.get("scored") or 0
    return summary.get("suspicious", 0) / scored if scored else None


def trend_window(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """Widen a run's range to at least the :data:`TREND_MIN_DAYS` days up to ``end``."""
    return min(start, end - dt.timedelta(days=TREND_MIN_DAYS - 1)), end


def draw_trend(
    figures: list[dict], path: Path, quality: QualitySettings
) -> Path | None:
    """Draw rows, bad-row share, suspicious share and max PSI per day as a PNG.

    Only days with a quality table are drawn. Returns None, and writes
    nothing, when no day has one.
    """
    from matplotlib.figure import Figure

    present = [f for f in figures if f["status"] != "no report"]
    if not present:
        log.info(
            "no quality tables in %s..%s; trend chart not drawn",
            figures[0]["date"],
            figures[-1]["date"],
        )
        return None
    figure = Figure(figsize=(11, 9), layout="constrained")
    axes = figure.subplots(4, 1, sharex=True)
    _plot_rows(axes[0], present)
    _plot_share(axes[1], present, "bad_row_share", "bad-row share (%)", "tab:red")
    _plot_share(
        axes[2], present, "suspicious_share", "suspicious share (%)", "tab:purple"
    )
    _plot_psi(axes[3], present, quality)
    _format_dates(axes[3])
    first, last = present[0]["date"], present[-1]["date"]
    figure.suptitle(f"MetaGuard data quality, {first} to {last} ({len(present)} days)")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        figure.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    log.info("trend chart %s: %d day(s)", path, len(present))
    return path


def _plot_rows(axis, figures: list[dict]) -> None:
    ok = [f for f in figures if f["rows"] is not None]
    axis.bar(
        [f["date"] for f in ok], [f["rows"] for f in ok], color="tab:blue", width=0.8
    )
    failed = [f for f in figures if f["rows"] is None]
    if failed:
        axis.plot(
            [f["date"] for f in failed],
            [0] * len(failed),
            "X",
            color="tab:red",
            markersize=10,
            clip_on=False,
            label="not validated\n(missing, unreadable\nor wrong schema)",
        )
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axis.set_ylabel("rows")
    axis.set_ylim(bottom=0)
    axis.grid(axis="y", alpha=0.3)


def _plot_share(axis, figures: list[dict], key: str, label: str, color: str) -> None:
    if any(f[key] is not None for f in figures):
        values = [100 * value for value in _gapped(figures, key)]
        axis.plot(
            [f["date"] for f in figures],
            values,
            "o-",
            color=color,
            markersize=4,
            clip_on=False,
        )
        axis.set_ylim(bottom=0)
    else:
        axis.text(
            0.5,
            0.5,
            "no data for these days",
            transform=axis.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)


def _gapped(figures: list[dict], key: str) -> list[float]:
    """Return the values of ``key``, NaN where absent, so plotted lines break there."""
    return [math.nan if f[key] is None else f[key] for f in figures]


def _plot_psi(axis, figures: list[dict], quality: QualitySettings) -> None:
    points = [f for f in figures if f["psi_max"] is not None]
    if points:
        axis.plot(
            [f["date"] for f in figures],
            _gapped(figures, "psi_max"),
            "-",
            color="lightgrey",
            zorder=1,
        )
        for column in NUMERIC_COLUMNS:
            chosen = [f for f in points if f["psi_max_column"] == column]
            if chosen:
                dates = [f["date"] for f in chosen]
                values = [f["psi_max"] for f in chosen]
                label = f"largest in {column}"
                axis.scatter(dates, values, s=16, zorder=2, label=label, clip_on=False)
    else:
        axis.text(
            0.5,
            0.5,
            "no PSI (no champion model or no data)",
            transform=axis.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    axis.axhline(
        quality.psi_warn,
        color="orange",
        linestyle="--",
        label=f"warn at {quality.psi_warn}",
    )
    axis.axhline(
        quality.psi_flag,
        color="red",
        linestyle="--",
        label=f"flag at {quality.psi_flag}",
    )
    # Linear up to the warn threshold and logarithmic above, so both thresholds
    # and PSI values far above them stay readable on one axis.
    axis.set_yscale("symlog", linthresh=max(quality.psi_warn, 0.01))
    highest = max([f["psi_max"] for f in points] + [quality.psi_flag])
    axis.set_ylim(0, 3 * highest)
    axis.set_ylabel("largest PSI")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axis.grid(alpha=0.3)


def _format_dates(axis) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def format_figures(figures: list[dict]) -> str:
    """Render day figures as a fixed-width text table for the terminal."""
    header = (
        f"{'date':<10}  {'status':<15}  {'rows':>9}  {'bad rows':>9}  "
        f"{'suspicious':>10}  {'max PSI':>8}  column"
    )
    lines = [header, "-" * len(header)]
    for f in figures:
        rows = "-" if f["rows"] is None else f"{int(f['rows']):,}"
        lines.append(
            f"{f['date'].isoformat():<10}  {f['status']:<15}  {rows:>9}  "
            f"{_percent(f['bad_row_share']):>9}  {_percent(f['suspicious_share']):>10}"
            f"  {_number(f['psi_max']):>8}  {f['psi_max_column'] or '-'}"
        )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
