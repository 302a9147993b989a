"""What the command line prints: live progress, the data report, the results table and the recommendation.

The sweep, fine-tune and export commands share these, so a sweep's table and a fine-tuned model's read alike.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import TextIO

import pandas as pd

from core.evaluate import fastest_text
from core.progress import Progress, Stage
from core.records import Failed, ModelResult, NotRun, Recommendation, Result, ScreenedOut, Status, latency_column
from core.report import DataReport
from core.runtimes import ENGINES

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
    "device",
    *(latency_column(engine) for engine in ENGINES),
    "feature_seconds",
    "head_seconds",
)
PERCENT_COLUMNS = ("test_accuracy", "balanced_accuracy", "macro_f1", "val_accuracy", "test_ci_low", "test_ci_high")


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
