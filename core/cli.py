"""Command line: the same work as the app, headless.

python -m core models
python -m core sweep DATA --models MobileNetV2:0.35,MobileNet:0.25 [--image-size 160] [--epochs 20]
                          [--weights imagenet|none] [--runtime auto|tf|onnx] [--screen [SHARE]]
                          [--screen-keep 2] [--holdout 0.3] [--seed 1337] [--out results.json]

A sweep prints the data report (as soon as the data is loaded), then the results and the recommendation,
on stdout; progress goes to stderr: a bar redrawn in place on a terminal, plain lines otherwise.
`python -m core worker RUN` (the app's background worker, `core/worker.py`) is not listed in `--help`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import pandas as pd

from core import config
from core.evaluate import fastest_text
from core.progress import Progress, Stage
from core.records import Failed, ModelResult, NotRun, Recommendation, Result, ScreenedOut, Status, latency_column
from core.report import DataReport
from core.runtimes import ENGINES, RUNTIMES
from core.screening import DEFAULT_SCREEN_KEEP, DEFAULT_SCREEN_SHARE
from core.zoo import WEIGHTS

SKIPPED_SHOWN = 20  # skipped files printed; the --out file lists all of them
DUPLICATES_SHOWN = 10  # duplicate groups printed
LOG_LINE_SECONDS = 15.0  # progress in a log: a line per stage and model, within a stage at most this often
BAR_SECONDS = 0.1  # progress on a terminal: redrawn at most this often within a stage
BAR_WIDTH = 30

# The results table: these columns of `ModelResult.row()`, in this order, where present. Shares are shown in %.
RESULT_COLUMNS = (
    "model",
    "status",
    "test_accuracy",
    "test_95ci",
    "balanced_accuracy",
    "macro_f1",
    "val_accuracy",
    "params_M",
    "size_mb",
    "input_size",
    "runtime",
    *(latency_column(engine) for engine in ENGINES),
    "feature_seconds",
    "head_seconds",
)
PERCENT_COLUMNS = ("test_accuracy", "balanced_accuracy", "macro_f1", "val_accuracy", "test_ci_low", "test_ci_high")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["worker"]:  # the app's background worker: kept out of --help
        return _worker(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "models":
        return _models()
    return _sweep(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Transfer Bench: compare Keras models on your images."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("models", help="list the model zoo with weights cache status")

    sweep = commands.add_parser(
        "sweep",
        help="train a head on each model's frozen features and compare them",
        description="Print the data report, train a head on each model's frozen features, compare and recommend.",
    )
    sweep.add_argument("data", help="dataset folder (train/ + validation/ + test/, or one folder per class) or .zip")
    sweep.add_argument("--models", required=True, help="comma-separated ids, e.g. MobileNetV2:0.35,ResNet50")
    sweep.add_argument("--image-size", type=int, help="input size for every model (default: each model's own)")
    sweep.add_argument(
        "--epochs", type=int, default=config.DEFAULT_EPOCHS, help="maximum head epochs (early stopping on val loss)"
    )
    sweep.add_argument("--weights", choices=WEIGHTS, default="imagenet")
    sweep.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="inference runtime of the frozen base (auto: ONNX Runtime where it matches TensorFlow)",
    )
    sweep.add_argument(
        "--screen",
        type=float,
        nargs="?",
        const=DEFAULT_SCREEN_SHARE,
        metavar="SHARE",
        help=f"screen every model on this share of the images first (default {DEFAULT_SCREEN_SHARE}) "
        "and finish only the finalists",
    )
    sweep.add_argument(
        "--screen-keep",
        type=int,
        default=DEFAULT_SCREEN_KEEP,
        help="with --screen: keep at least this many of the most accurate models",
    )
    sweep.add_argument(
        "--holdout",
        type=float,
        default=config.DEFAULT_HOLDOUT,
        help="share of plain class folders held out from training: half validation, half test",
    )
    sweep.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    sweep.add_argument(
        "--out", type=Path, help="write the data report, results and recommendation as JSON (folders are created)"
    )
    return parser


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m core worker", description="Run a sweep the app has queued.")
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    from core.worker import run_worker

    return run_worker(args.run_id)


def _models() -> int:
    from core.zoo import SUMMARY_COLUMNS, zoo

    table = pd.DataFrame([spec.describe() for spec in zoo().values()])
    table["params"] = (table["params"] / 1e6).round(2)
    table["weights_cached"] = table["weights_cached"].map({True: "cached", False: "download"})
    print(table[list(SUMMARY_COLUMNS)].rename(columns={"params": "params_M"}).to_string(index=False))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    view = ProgressView(sys.stderr)
    if args.out and (problem := _prepare_out(args.out)):
        view.error(problem)
        return 2
    from core.errors import DatasetError
    from core.store import Store
    from core.sweep import SweepSettings, run_sweep

    store = Store()
    shown: list[DataReport] = []

    def on_progress(progress: Progress) -> None:
        if not shown and progress.stage != Stage.LOADING:  # the data is loaded: its report is stored
            run = store.run(progress.run_id)
            if run and run.report:
                shown.append(run.report)
                view.clear()
                print_report(run.report)
                sys.stdout.flush()  # before the next progress line, where both go to one log
        view(progress)

    try:
        settings = SweepSettings(
            models=[m for m in args.models.split(",") if m.strip()],
            image_size=args.image_size,
            epochs=args.epochs,
            weights=args.weights,
            holdout=args.holdout,
            seed=args.seed,
            runtime=args.runtime,
            screen=args.screen,
            screen_keep=args.screen_keep,
        )
        outcome = run_sweep(args.data, settings, store=store, on_progress=on_progress)
    except (ValueError, DatasetError) as error:
        view.error(str(error))
        return 2
    view.close()
    if not shown:
        print_report(outcome.report)
    print_results(outcome.results)
    if outcome.recommendation:
        print_recommendation(outcome.recommendation, outcome.results)
    if args.out:
        try:
            args.out.write_text(json.dumps(outcome.to_dict(), indent=2))
        except OSError as error:
            view.error(f"cannot write {args.out}: {error.strerror or error}")
            return 2
        print(f"Report and results written to {args.out}")
    return 0 if any(isinstance(r, ModelResult) for r in outcome.results) else 1


def _prepare_out(path: Path) -> str | None:
    """Create the folder `path` goes in, before the sweep; what stands in the way, if anything."""
    if path.is_dir():
        return f"--out {path} is a folder: give a file name, e.g. {path / 'results.json'}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"--out {path}: cannot create its folder {path.parent}: {error.strerror or error}"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"--out {path}: not writable"
    return None


class ProgressView:
    """Draws a sweep's progress on `stream`: on a terminal a bar redrawn in place with `\\r`; otherwise (a
    log, a pipe) plain lines, one at each model and stage, and within a stage at most every
    `LOG_LINE_SECONDS`."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.terminal = stream.isatty()
        self._lock = threading.Lock()  # features may report from decoding threads
        self._key: tuple | None = None  # (phase, model, stage) last drawn
        self._text = ""
        self._time = 0.0
        self._drawn = 0  # width of the bar on screen; 0: none

    def __call__(self, progress: Progress) -> None:
        text = describe(progress)
        key = (progress.phase, progress.index, progress.model, progress.stage)
        with self._lock:
            now = time.monotonic()
            if key == self._key and (text == self._text or now - self._time < self._interval):
                return
            self._key, self._text, self._time = key, text, now
            if self.terminal:
                filled = int(progress.fraction * BAR_WIDTH)
                line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress.fraction:4.0%} {text}"
                width = shutil.get_terminal_size().columns - 1
                line = line[:width]
                self.stream.write(f"\r{line:<{self._drawn}}")
                self._drawn = len(line)
            else:
                self.stream.write(f"[{progress.fraction:4.0%}] {text}\n")
            self.stream.flush()

    @property
    def _interval(self) -> float:
        return BAR_SECONDS if self.terminal else LOG_LINE_SECONDS

    def clear(self) -> None:
        """Wipe the bar, so that other output starts on a clean line (it is redrawn at the next update)."""
        with self._lock:
            if self._drawn:
                self.stream.write(f"\r{'':<{self._drawn}}\r")
                self.stream.flush()
                self._drawn, self._key = 0, None

    def close(self) -> None:
        """End the bar's line."""
        with self._lock:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = 0

    def error(self, message: str) -> None:
        self.close()
        print(f"error: {message}", file=self.stream)


def describe(progress: Progress) -> str:
    """`screening round 1: model 2/3 MobileNet:0.25: training head epoch 3/20`"""
    if progress.stage in (Stage.LOADING, Stage.DONE, Stage.CANCELLED):
        return str(progress.stage)
    phase = f"{progress.phase}: " if progress.phase else ""
    count = len(progress.models)
    step = f" {progress.step}" if progress.step else ""
    where = f"{phase}model {min(progress.index + 1, count)}/{count} {progress.model}: {progress.stage}{step}"
    return f"{where} ({progress.timing_text()})"


def print_report(report: DataReport) -> None:
    """The data report: counts per class and split, imbalance, skipped files, duplicates, warnings."""
    counts = pd.DataFrame(report.counts).reindex(report.classes).fillna(0).astype(int)
    counts["total"] = counts.sum(axis="columns")
    counts = pd.concat([counts, counts.sum().to_frame("total").T]).rename_axis("class")
    print(f"Data: {len(report.classes)} classes ({report.layout})")
    print(counts.to_string())
    print(f"Imbalance: {report.imbalance:.2f}x (largest / smallest class in train)")
    if report.skipped:
        print(f"Skipped {len(report.skipped)} file(s):")
        for skipped in report.skipped[:SKIPPED_SHOWN]:
            print(f"  {skipped.path}: {skipped.reason}")
        if len(report.skipped) > SKIPPED_SHOWN:
            print(f"  ... and {len(report.skipped) - SKIPPED_SHOWN} more (--out lists them all)")
    if report.duplicates:
        leaks = sum(group.leakage for group in report.duplicates)
        print(f"Duplicates: {len(report.duplicates)} group(s) of byte-identical images, {leaks} across splits:")
        for group in report.duplicates[:DUPLICATES_SHOWN]:
            print(f"  {'LEAKAGE ' if group.leakage else ''}{', '.join(group.paths)}")
        if len(report.duplicates) > DUPLICATES_SHOWN:
            print(f"  ... and {len(report.duplicates) - DUPLICATES_SHOWN} more group(s) (--out lists them all)")
    for warning in report.warnings:
        print(f"Warning: {warning}")
    print()


def results_table(results: list[Result]) -> pd.DataFrame | None:
    """The trained models as a table of `ModelResult.row()` columns, best first; None when there are none."""
    trained = [r for r in results if isinstance(r, ModelResult)]
    if not trained:
        return None
    table = pd.DataFrame([r.row() for r in trained]).sort_values("test_accuracy", ascending=False)
    for column in PERCENT_COLUMNS:
        table[column] = (table[column].astype(float) * 100).round(1)
    table["test_95ci"] = [
        f"{low:.1f}-{high:.1f}" for low, high in zip(table.test_ci_low, table.test_ci_high, strict=True)
    ]
    table["params_M"] = (table["params"] / 1e6).round(2)
    latencies = [latency_column(engine) for engine in ENGINES]
    table[latencies] = table[latencies].astype(float).round(2)
    if (table["status"] == Status.OK).all():
        table = table.drop(columns="status")
    return table[[column for column in RESULT_COLUMNS if column in table]].dropna(axis="columns", how="all")


def print_results(results: list[Result]) -> None:
    table = results_table(results)
    if table is not None:
        print(table.to_string(index=False))
    for note in (r for r in results if isinstance(r, ModelResult) and r.runtime_note):
        print(f"{note.model} ran in TensorFlow: {note.runtime_note}")
    for result in results:
        if isinstance(result, ModelResult) and result.status == Status.PARTIAL:
            print(
                f"PARTIAL {result.model}: cancelled after {result.epochs_run} of {result.epochs_planned} epochs; "
                "not recommended"
            )
        elif isinstance(result, ModelResult) and result.still_improving:
            print(f"{result.model} was still improving at its last epoch ({result.epochs_run}): more epochs may help")
        elif isinstance(result, NotRun):
            print(f"NOT RUN {result.model}: the sweep was cancelled before it started")
        elif isinstance(result, ScreenedOut):
            print(
                f"screened out {result.model}: {result.subset_accuracy:.1%} on a screening subset of "
                f"{result.subset_images} images"
            )
        elif isinstance(result, Failed):
            print(f"FAILED {result.model}: {result.error}")


def print_recommendation(recommendation: Recommendation, results: list[Result]) -> None:
    print(f"\nRecommendation: {recommendation.model}\n{recommendation.reason}")
    for engine in ENGINES:
        if fastest := fastest_text(recommendation, results, engine):
            print(fastest)
    screening = recommendation.screening
    if screening is None:
        return
    for number, round_ in enumerate(screening.rounds, start=1):
        print(
            f"Screening round {number}: {len(round_.finalists)} of {len(round_.models)} kept on {round_.images} "
            f"images (margin {round_.margin:.1%}): {', '.join(round_.finalists)}"
        )
    if screening.winner_changed:
        print(
            f"Note: on the screening subset {screening.screened_winner} ranked first; on all images, {recommendation.model} wins."
        )
