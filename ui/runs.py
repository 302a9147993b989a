"""Runs as the pages show them: a picker, one status line per model, and the results table."""

from __future__ import annotations

import time
from dataclasses import asdict

import pandas as pd
import streamlit as st

from core.records import ModelResult, Progress, Result, Run, RunStatus, ScreenedOut, latency_column
from core.runtimes import ENGINES


def run_label(run: Run) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
    return f"#{run.id} · {created} · {run.status} · {', '.join(run.models)}"


def pick_run(runs: list[Run], preferred: int | None, label: str = "Run", describe=run_label, where=st) -> Run:
    """A select box over `runs` (newest first), starting on `preferred` when it is one of them."""
    by_id = {run.id: run for run in runs}
    index = list(by_id).index(preferred) if preferred in by_id else 0
    return by_id[where.selectbox(label, list(by_id), index=index, format_func=lambda i: describe(by_id[i]))]


def status_lines(run: Run, progress: Progress | None, results: dict[str, Result]) -> None:
    """One line per model of the run: its result, what it is doing, or that it waits."""
    running = run.status.active
    for model in run.models:
        result = results.get(model)
        if isinstance(result, ModelResult):
            st.markdown(f":material/check_circle: **{model}**: {result.val_accuracy:.1%} validation accuracy")
        elif isinstance(result, ScreenedOut):
            st.markdown(
                f":material/filter_alt: {model}: screened out at {result.subset_accuracy:.1%} on {result.subset_images} images"
            )
        elif result is not None:
            st.markdown(f":material/error: **{model}**: failed: {result.error}")
        elif progress and model == progress.model and running:
            st.markdown(f":material/progress_activity: **{model}**: {progress.stage} {progress.step}")
        elif progress and model in progress.finished and progress.phase.startswith("screening"):
            st.markdown(f":material/filter_alt: {model}: screened, waiting for the ranking")
        else:
            st.markdown(f":material/schedule: {model}: pending")


def progress_text(run: Run, progress: Progress | None) -> tuple[float, str]:
    """The progress bar's fraction and caption."""
    if progress is None:
        return 0.0, "0% · starting the worker"
    fraction = 1.0 if run.status == RunStatus.DONE else progress.fraction
    phase = f"{progress.phase} · " if progress.phase and run.status.active else ""
    return fraction, f"{fraction:.0%} · {phase}{progress.model or ''} {progress.stage}"


RESULT_COLUMNS = [
    "model",
    "val_accuracy",
    "subset_accuracy",
    "params",
    "size_mb",
    "runtime",
    *map(latency_column, ENGINES),
    "throughput_ips",
    "input_size",
    "family",
    "val_loss",
    "epochs_run",
    "best_epoch",
    "feature_seconds",
    "head_seconds",
]


def results_table(results: list[ModelResult]) -> None:
    """The sortable table of trained models, most accurate first."""
    table = pd.DataFrame([r.row() for r in results]).reindex(columns=RESULT_COLUMNS)
    table = table.dropna(axis="columns", how="all").sort_values("val_accuracy", ascending=False)
    table["params"] /= 1e6
    for column in ("val_accuracy", "subset_accuracy"):
        if column in table:
            table[column] *= 100
    latency_columns = {
        latency_column(engine): st.column_config.NumberColumn(f"{label} (ms)", format="%.1f", help="batch 1, this host")
        for engine, label in ENGINES.items()
    }
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "val_accuracy": st.column_config.ProgressColumn("accuracy %", format="%.1f", min_value=0, max_value=100),
            "params": st.column_config.NumberColumn("params (M)", format="%.2f"),
            "size_mb": st.column_config.NumberColumn("size (MB)", format="%.1f"),
            "subset_accuracy": st.column_config.NumberColumn("screening %", format="%.1f"),
            **latency_columns,
            "throughput_ips": st.column_config.NumberColumn(
                "images/s (batch 32)", format="%.0f", help="in the runtime used"
            ),
            "input_size": "input (px)",
        },
    )


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
    """Every result of a run as CSV rows: trained models in full, the others with what they have."""
    rows = [r.row() if isinstance(r, ModelResult) else asdict(r) for r in results]
    return pd.DataFrame(rows).to_csv(index=False)
