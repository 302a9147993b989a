"""`python -m core export`: a run's model in runtime formats, each re-scored on the test images in its own runtime.

python -m core export --run RUN --model MODEL --format FORMAT [--format ...] [--out FOLDER]

`--format` takes a name, a comma list, or `all`, and may be repeated. Prints, on stdout, one row per
format (file, size, test accuracy and its change versus the sweep, largest probability difference
from the in-app model, batch-1 latency, flag) and the model card's path; progress goes to stderr. Exit
status: 0 when every format was exported and re-scored, 1 when one failed (its reason is printed), 2
for a usage error (unknown format, run or model, a changed dataset).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from core.export_formats import ALL, FORMATS, FormatReport


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `export` subcommand to the command line's subparsers."""
    export = commands.add_parser(
        "export",
        help="export a run's model (Keras, SavedModel, LiteRT, ONNX), each re-scored on the test images",
        description="Export a trained model of a run in runtime formats, re-score each on the run's test images in "
        "its own runtime, and write labels.txt and a model card beside them.",
    )
    export.add_argument("--run", type=int, required=True, help="the run's id (the app's run picker shows it)")
    export.add_argument("--model", required=True, help="a trained model of the run, as in its results")
    export.add_argument(
        "--format",
        action="append",
        required=True,
        dest="formats",
        metavar="FORMAT",
        help=f"{', '.join(FORMATS)}, or {ALL}; repeat it or give a comma list",
    )
    export.add_argument("--out", type=Path, help="folder to write into (default: the run's exports folder)")


def run(args: argparse.Namespace) -> int:
    """Run `python -m core export` with parsed `args`; the exit status."""
    from core.errors import DatasetError
    from core.export import export_model
    from core.export_formats import parse_formats
    from core.store import StoreError

    def on_progress(fraction: float, text: str) -> None:
        print(f"[{fraction:4.0%}] {text}", file=sys.stderr, flush=True)

    try:
        report = export_model(args.run, args.model, parse_formats(args.formats), args.out, on_progress=on_progress)
    except (ValueError, DatasetError, StoreError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{report.model} of run {report.run_id}: {report.sweep_accuracy:.1%} test accuracy in the sweep, "
        f"{report.in_app_accuracy:.1%} in the app's model, on {report.test_images} test images"
    )
    print(format_table(report.formats).to_string(index=False))
    for entry in report.failed:
        print(f"FAILED {entry.format}: {entry.error}")
    for entry in report.formats:
        if entry.flagged:
            print(f"FLAGGED {entry.format}: its accuracy dropped {-entry.accuracy_change * 100:.1f} points")
    print(f"Files in {report.out_dir}; model card: {report.card_markdown} (and {Path(report.card_json).name})")
    return 1 if report.failed else 0


def format_table(formats: list[FormatReport]) -> pd.DataFrame:
    """One row per exported format (`FormatReport`): the figures as printed."""
    rows = []
    for entry in formats:
        failed = entry.error is not None
        rows.append(
            {
                "format": entry.format,
                "file": entry.download,
                "size_MB": None if entry.size_bytes is None else round(entry.size_bytes / 1e6, 2),
                "accuracy_%": None if failed else round(entry.test_accuracy * 100, 1),
                "change_pt": None if failed else round(entry.accuracy_change * 100, 1),
                "max_prob_diff": None if failed else f"{entry.max_probability_difference:.1e}",
                "latency_ms": None if failed else round(entry.latency_ms, 2),
                "flag": "FAILED" if failed else "DROP > 1 pt" if entry.flagged else "",
            }
        )
    return pd.DataFrame(rows)
