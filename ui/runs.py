"""Runs as the pages show them: a picker, one status line per model, and the results table."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict

import pandas as pd
import streamlit as st

from core import config, workspaces
from core.progress import Progress, clock
from core.records import FineTuning, ModelResult, NotRun, Result, Run, ScreenedOut, Status, latency_column
from core.runtimes import ENGINES
from ui.charts import lift_text
from ui.guard import plain


def run_label(run: Run) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
    return f"#{run.id} · {created} · {run.status} · {', '.join(run.models)}"


def pick_run(runs: list[Run], preferred: int | None, label: str = "Run", describe=run_label, where=st) -> Run:
    """A select box over `runs` (newest first), starting on `preferred` when it is one of them."""
    by_id = {run.id: run for run in runs}
    index = list(by_id).index(preferred) if preferred in by_id else 0
    return by_id[where.selectbox(label, list(by_id), index=index, format_func=lambda i: describe(by_id[i]))]


def run_summary(run: Run, results: list[Result]) -> str:
    """The run's state in words, with what did not finish: `done · 1 of 3 failed`."""
    counts = Counter(result.status for result in results)
    trouble = [
        f"{counts[status]} {status}" for status in (Status.FAILED, Status.PARTIAL, Status.NOT_RUN) if counts[status]
    ]
    return f"{run.status} · {', '.join(trouble)} of {len(run.models)}" if trouble else str(run.status)


def status_lines(run: Run, progress: Progress | None, results: dict[str, Result]) -> None:
    """One line per model of the run: its result, what it is doing, or that it waits."""
    running = run.status.active
    for model in run.models:
        result = results.get(model)
        if isinstance(result, ModelResult) and result.status == Status.PARTIAL:
            st.markdown(
                f":material/timelapse: **{model}**: partial, cancelled after {result.epochs_run} of "
                f"{result.epochs_planned} epochs ({result.test_accuracy:.1%} test accuracy, not recommended)"
            )
        elif isinstance(result, ModelResult):
            improving = " · still improving at the last epoch" if result.still_improving else ""
            st.markdown(f":material/check_circle: **{model}**: {result.score_text()} test accuracy{improving}")
        elif isinstance(result, ScreenedOut):
            st.markdown(
                f":material/filter_alt: {model}: screened out at {result.subset_accuracy:.1%} on {result.subset_images} images"
            )
        elif isinstance(result, NotRun):
            st.markdown(f":material/block: {model}: not run (the sweep was cancelled first)")
        elif result is not None:
            st.markdown(f":material/error: **{model}**: failed: {plain(result.error)}")
        elif progress and model == progress.model and running:
            st.markdown(f":material/progress_activity: **{model}**: {progress.stage} {progress.step}")
        elif progress and model in progress.finished and progress.phase.startswith("screening"):
            st.markdown(f":material/filter_alt: {model}: screened, waiting for the ranking")
        else:
            st.markdown(f":material/schedule: {model}: pending")


def progress_text(run: Run, progress: Progress | None, results: list[Result]) -> tuple[float, str]:
    """The progress bar's fraction and caption: where the sweep is and how long it has taken (and will)."""
    if progress is None:
        return 0.0, "0% · starting the worker"
    if not run.status.active:
        return (
            progress.fraction,
            f"{progress.fraction:.0%} · {run_summary(run, results)} · {clock(run.updated - run.created)}",
        )
    phase = f"{progress.phase} · " if progress.phase else ""
    return progress.fraction, (
        f"{progress.fraction:.0%} · {phase}{progress.model or ''} {progress.stage} · {progress.timing_text()}"
    )


RESULT_COLUMNS = [
    "model",
    "status",
    "test_accuracy",
    "test_ci",
    "lift",
    "lift_ci",
    "balanced_accuracy",
    "macro_f1",
    "val_accuracy",
    "subset_accuracy",
    "params",
    "size_mb",
    "runtime",
    "device",
    *map(latency_column, ENGINES),
    "throughput_ips",
    "input_size",
    "family",
    "epochs_run",
    "best_epoch",
    "feature_seconds",
    "head_seconds",
]
PERCENT_COLUMNS = ("test_accuracy", "balanced_accuracy", "macro_f1", "val_accuracy", "subset_accuracy")


def results_table(results: list[ModelResult]) -> None:
    """The sortable table of trained models, most accurate on the test set first."""
    table = pd.DataFrame([r.row() for r in results])
    table["test_ci"] = [f"{low:.1%} – {high:.1%}" for low, high in (r.test_accuracy_ci for r in results)]
    if any(r.fine_tuning for r in results):  # as text, blank for the frozen models
        table["lift"] = [f"{r.fine_tuning.lift * 100:+.1f}" if r.fine_tuning else "" for r in results]
        table["lift_ci"] = [lift_interval(r.fine_tuning) for r in results]
    table = table.reindex(columns=RESULT_COLUMNS).dropna(axis="columns", how="all")
    table = table.sort_values("test_accuracy", ascending=False)
    table["params"] /= 1e6
    for column in PERCENT_COLUMNS:
        if column in table:
            table[column] *= 100
    latency_columns = {
        latency_column(engine): st.column_config.NumberColumn(f"{label} (ms)", format="%.1f", help="batch 1, this host")
        for engine, label in ENGINES.items()
    }
    number = st.column_config.NumberColumn
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "test_accuracy": st.column_config.ProgressColumn(
                "test accuracy %", format="%.1f", min_value=0, max_value=100, help="no choice was made on these images"
            ),
            "test_ci": st.column_config.TextColumn("95% interval", help="Wilson score interval of the test accuracy"),
            "model": st.column_config.TextColumn("model", width="medium"),
            "lift": st.column_config.TextColumn(
                "lift (points)", help="fine-tuned minus frozen test accuracy, on the same images"
            ),
            "lift_ci": st.column_config.TextColumn("lift 95% interval", help="of the paired difference, in points"),
            "balanced_accuracy": number("balanced %", format="%.1f", help="mean recall over classes, test images"),
            "macro_f1": number("macro-F1 %", format="%.1f", help="on the test images"),
            "val_accuracy": number("validation %", format="%.1f", help="chose the epoch, so it is optimistic"),
            "subset_accuracy": number("screening %", format="%.1f"),
            "params": number("params (M)", format="%.2f"),
            "size_mb": number("size (MB)", format="%.1f"),
            **latency_columns,
            "throughput_ips": number("images/s (batch 32)", format="%.0f", help="in the runtime used"),
            "input_size": "input (px)",
            "device": st.column_config.TextColumn("device", help="where the features were computed: CPU or GPU"),
        },
    )
    for kept in (r for r in results if r.fine_tuning and r.fine_tuning.kept_frozen):
        st.caption(
            f":material/lock: {kept.model}: no fine-tuning epoch beat the frozen model on validation, so its "
            "frozen weights are kept (never worse than the frozen model)."
        )
    for improving in (r for r in results if r.still_improving):
        st.caption(
            f":material/trending_up: {improving.model} was still improving at its last epoch "
            f"({improving.epochs_run}): more epochs may help."
        )


def lift_interval(tuning: FineTuning | None) -> str:
    """`+0.4 – +3.8`: the 95% interval of a fine-tuned model's lift, in points."""
    return "{:+.1f} – {:+.1f}".format(*(value * 100 for value in tuning.lift_ci)) if tuning else ""


def model_details(result: ModelResult) -> None:
    """One model's scores on the test images: the figures and the per-class table (its confusion matrix, which
    opens its images, is the mistakes panel's)."""
    st.caption(
        f"On the {result.test_images:,} test images: {result.score_text()}, balanced accuracy "
        f"{result.balanced_accuracy:.1%}, macro-F1 {result.macro_f1:.1%}"
        + (" (class-weighted loss)." if result.class_weighted else ".")
    )
    if tuning := result.fine_tuning:
        augment = ", ".join(name for name, value in tuning.augment.items() if value) or "none"
        st.caption(
            f":material/tune: {lift_text(tuning)}; McNemar p={tuning.p_value:.2g}. {tuning.layers_trained} base layers "
            f"trained at learning rate {tuning.learning_rate:g}, augmentation: {augment}; best epoch "
            f"{result.best_epoch} of {result.epochs_run}, {tuning.seconds_per_epoch:.1f} s per epoch."
        )
    per_class_table(result)


def per_class_table(result: ModelResult, where=st) -> None:
    where.dataframe(
        pd.DataFrame([asdict(c) for c in result.per_class]),
        hide_index=True,
        column_config={
            "name": "class",
            **{c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "f1")},
        },
    )


def results_csv(results: list[Result]) -> str:
    """Every result of a run as CSV rows: trained models in full, the others with what they have. A hosted
    app's leaves out where the files are on the server."""
    rows = [r.row() if isinstance(r, ModelResult) else asdict(r) for r in results]
    table = pd.DataFrame(rows)
    if config.hosted():
        table = table.drop(columns=["head_path", "model_path"], errors="ignore")
    return workspaces.redact(table.to_csv(index=False))
