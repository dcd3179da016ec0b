"""The ``metaguard`` command: simulate, train, score and maintain the suite."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from metaguard.config import load_settings, parse_date
from metaguard.exceptions import MetaGuardError

log = logging.getLogger("metaguard")


def _settings(args: argparse.Namespace):
    overrides = {
        key: getattr(args, key, None) for key in ("warehouse", "output", "models")
    }
    return load_settings(overrides=overrides)


def cmd_simulate(args: argparse.Namespace) -> int:
    from metaguard.simulate import simulate_warehouse

    start = parse_date(args.start, "--start")
    summary = simulate_warehouse(Path(args.out), args.days, start=start, seed=args.seed)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from metaguard.training import train, windows_ending, windows_from_training

    settings = _settings(args)
    if args.date:
        windows = windows_ending(
            parse_date(args.date, "--date"),
            args.train_days,
            args.gap_days,
            args.valid_days,
        )
    elif args.start and args.end:
        windows = windows_from_training(
            parse_date(args.start, "--start"),
            parse_date(args.end, "--end"),
            args.gap_days,
            args.valid_days,
        )
    else:
        raise MetaGuardError("give --date, or both --start and --end")
    decision = train(
        settings,
        windows,
        estimator=args.estimator,
        feature_set=args.features,
        seed=args.seed,
        require_validation=bool(args.date),
        margin=args.margin,
    )
    print(json.dumps(decision, indent=2, default=str))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from metaguard.nightly import run

    settings = _settings(args)
    summary = run(settings, parse_date(args.date, "--date"))
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from metaguard.bench import run_command

    return run_command(args.rows, args.sample, args.workdir, args.json, args.write_docs)


def cmd_suite(args: argparse.Namespace) -> int:
    from metaguard.validation import SUITE_PATH, suite_json, write_suite

    if args.write:
        print(f"wrote {write_suite()}")
        return 0
    current = SUITE_PATH.read_text() if SUITE_PATH.is_file() else ""
    if current != suite_json():
        print(f"{SUITE_PATH} differs from the contract; run 'metaguard suite --write'")
        return 1
    print(f"{SUITE_PATH} matches the contract")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from metaguard.quality import day_figures, format_figures

    settings = _settings(args)
    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    print(format_figures(day_figures(settings.output, start, end)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from metaguard.protocol import run_command

    estimators = None
    if args.estimators:
        estimators = [name.strip() for name in args.estimators.split(",")]
    return run_command(
        args.warehouse,
        estimators,
        output=args.output,
        validation=args.validation,
        seed=args.seed,
        docs=args.write_docs,
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``metaguard`` command."""
    parser = argparse.ArgumentParser(prog="metaguard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write a demo warehouse")
    simulate.add_argument("--out", required=True, help="warehouse folder to write")
    simulate.add_argument("--days", type=int, default=30, help="number of days")
    simulate.add_argument("--start", default="2024-01-01", help="first day, YYYY-MM-DD")
    simulate.add_argument("--seed", type=int, default=7, help="random seed")
    simulate.set_defaults(func=cmd_simulate)

    train = commands.add_parser("train", help="train, register and gate a model")
    _roots(train)
    train.add_argument("--start", help="first training day, YYYY-MM-DD")
    train.add_argument("--end", help="last training day, YYYY-MM-DD")
    train.add_argument("--date", help="run date: validate on the days ending here")
    train.add_argument("--train-days", type=int, default=7, help="training days")
    train.add_argument("--gap-days", type=int, default=7, help="label delay in days")
    train.add_argument("--valid-days", type=int, default=7, help="validation days")
    train.add_argument(
        "--estimator",
        default="random_forest",
        choices=(
            "random_forest",
            "hist_gradient_boosting",
            "logistic_regression",
            "ensemble",
        ),
    )
    train.add_argument(
        "--features",
        default="auto",
        choices=("auto", "contract", "history"),
        help="feature set; auto uses history when the warehouse carries its columns",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed")
    train.add_argument(
        "--margin", type=float, default=0.0, help="average precision margin to promote"
    )
    train.set_defaults(func=cmd_train)

    score = commands.add_parser("score", help="run the nightly scoring in-process")
    _roots(score)
    score.add_argument("--date", required=True, help="partition date, YYYY-MM-DD")
    score.set_defaults(func=cmd_score)

    bench = commands.add_parser(
        "bench", help="time four scoring paths on a generated partition"
    )
    bench.add_argument(
        "--rows",
        type=int,
        nargs="+",
        required=True,
        help="partition size in rows; give several sizes to run each in turn",
    )
    bench.add_argument(
        "--sample",
        type=int,
        default=1000,
        help="rows scored one at a time by the per-transaction path (default 1000)",
    )
    bench.add_argument(
        "--workdir", help="folder for the data and outputs (default: a temporary one)"
    )
    bench.add_argument(
        "--json", action="store_true", help="print one JSON object per size, no table"
    )
    bench.add_argument(
        "--write-docs", action="store_true", help="write docs/benchmarks.md"
    )
    bench.set_defaults(func=cmd_bench)

    suite = commands.add_parser("suite", help="check or regenerate the GX suite")
    suite.add_argument("--write", action="store_true", help="regenerate the file")
    suite.set_defaults(func=cmd_suite)

    quality = commands.add_parser(
        "quality", help="print daily data-quality figures from the quality tables"
    )
    quality.add_argument("--output", help="output root (METAGUARD_OUTPUT)")
    quality.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    quality.add_argument("--end", required=True, help="last day, YYYY-MM-DD")
    quality.set_defaults(func=cmd_quality)

    evaluate = commands.add_parser(
        "evaluate",
        help="measure estimators under the Fraud Detection Handbook's protocol",
    )
    evaluate.add_argument("--warehouse", help="warehouse root (METAGUARD_WAREHOUSE)")
    evaluate.add_argument(
        "--estimators",
        help="comma-separated estimator names, such as random_forest,ensemble "
        "(default: every estimator that metaguard train accepts)",
    )
    evaluate.add_argument(
        "--output",
        help="folder for the history state (default: a temporary one, removed after)",
    )
    evaluate.add_argument(
        "--validation",
        action="store_true",
        help="use the tuning folds, test weeks ending 2018-07-17..08-07",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="random seed")
    evaluate.add_argument(
        "--write-docs", action="store_true", help="update docs/model-quality.md"
    )
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def _roots(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warehouse", help="warehouse root (METAGUARD_WAREHOUSE)")
    parser.add_argument("--output", help="output root (METAGUARD_OUTPUT)")
    parser.add_argument("--models", help="model registry root (METAGUARD_MODELS)")


def main(argv: list[str] | None = None) -> int:
    """Run the ``metaguard`` command and return its exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (MetaGuardError, ValueError) as error:
        print(f"metaguard {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
