"""One run's comparison: the recommendation, accuracy against size and latency, the table, per-model details
and downloads. The Compare page shows it with the panels that change a run; a share link shows it read-only."""

from __future__ import annotations

import json
from dataclasses import asdict

import streamlit as st

from core import config, workspaces
from core.evaluate import fastest_text
from core.records import Failed, ModelResult, Result, Run, ScreenedOut, Status, latency_column
from core.runtimes import ENGINES
from ui.charts import tradeoff_scatter
from ui.export import export_panel
from ui.finetune import finetune_panel
from ui.guard import PageStore, plain
from ui.mistakes import mistakes_panel
from ui.runs import model_details, results_csv, results_table

_PRIVATE_RUN_FIELDS = ("pid", "workspace", "job")  # what a hosted app's JSON download leaves out


def comparison(store: PageStore, run: Run, results: list[Result], shared: bool = False) -> None:
    """Everything about `run` a reader needs; `shared` leaves out fine-tuning, export and the image gallery."""
    trained = [r for r in results if isinstance(r, ModelResult)]
    ok = [r for r in trained if r.status == Status.OK]
    st.caption(f"Dataset: {plain(workspaces.display_name(run.dataset))}")
    verdict(run, results, ok)
    if ok:
        charts(run, results, ok)
        results_table(trained)
        if not shared:
            with st.container(border=True):
                finetune_panel(store, run, results)
        st.subheader("Per model")
        recommended = run.recommendation and run.recommendation.model
        names = [r.model for r in trained]
        model = st.selectbox("Model", names, index=names.index(recommended) if recommended in names else 0)
        model_details(trained[names.index(model)])
        if not shared:
            mistakes_panel(run, trained[names.index(model)])
            with st.container(border=True):
                export_panel(store, run, trained[names.index(model)])
    downloads(run, results)


def verdict(run: Run, results: list[Result], ok: list[ModelResult]) -> None:
    """The recommendation (or why there is none), failures, and what screening left out."""
    recommendation = run.recommendation
    if recommendation:
        st.success(f"**Recommended: {recommendation.model}**. {recommendation.reason}", icon=":material/recommend:")
        if recommendation.statistically_tied:
            images = next(r.test_images for r in ok if r.model == recommendation.best)
            st.info(
                f"**Statistically tied** on {images:,} test images: {', '.join(recommendation.tied)}. Their order is "
                "within the noise, so the smallest is recommended.",
                icon=":material/balance:",
            )
    elif run.error:
        st.error(f"The sweep failed: {plain(run.error)}", icon=":material/error:")
    elif run.status.active:
        st.info(
            "This sweep is still running; the recommendation comes when it finishes.", icon=":material/hourglass_top:"
        )
    for failed in (r for r in results if isinstance(r, Failed)):
        st.error(f"**{failed.model}** failed: {plain(failed.error)}", icon=":material/error:")
    if screening := recommendation and recommendation.screening:
        out = ", ".join(
            f"{r.model} ({r.subset_accuracy:.1%} on {r.subset_images} images)"
            for r in results
            if isinstance(r, ScreenedOut)
        )
        rounds = " then ".join(str(r.images) for r in screening.rounds) or screening.subset_images
        st.info(
            f"**Screened** on {rounds} images; finished on all: {', '.join(screening.finalists)}. "
            f"Screened out: {out or 'none'}.",
            icon=":material/filter_alt:",
        )
        if screening.winner_changed:
            st.warning(
                f"On the screening subset {screening.screened_winner} ranked first; on all images "
                f"{recommendation.model} wins.",
                icon=":material/swap_vert:",
            )
    for fallback in (r for r in ok if r.runtime_note):
        st.caption(f":material/info: {fallback.model} ran in TensorFlow: {plain(fallback.runtime_note)}")


def charts(run: Run, results: list[Result], ok: list[ModelResult]) -> None:
    """Accuracy against size, and against latency in a chosen engine."""
    recommendation = run.recommendation
    recommended = recommendation and recommendation.model
    axis = st.radio(
        "Model size as",
        ["params", "size_mb"],
        horizontal=True,
        format_func={"params": "parameters", "size_mb": "MB (float32)"}.get,
    )
    left, right = st.columns(2)
    left.plotly_chart(tradeoff_scatter(ok, axis, recommended), key="size")
    timed = [engine for engine in reversed(ENGINES) if any(r.latency.get(engine) for r in ok)]
    engine = right.radio("Latency in", timed, horizontal=True, format_func=ENGINES.get) if timed else None
    right.plotly_chart(
        tradeoff_scatter(ok, latency_column(engine) if engine else "latency_ms", recommended), key="latency"
    )
    if recommendation and engine and (fastest := fastest_text(recommendation, results, engine)):
        right.caption(f":material/speed: {fastest}")


def downloads(run: Run, results: list[Result]) -> None:
    cols = st.columns(2)
    cols[0].download_button(
        "Download CSV", results_csv(results), f"run-{run.id}.csv", "text/csv", icon=":material/download:"
    )
    cols[1].download_button(
        "Download JSON", run_json(run, results), f"run-{run.id}.json", "application/json", icon=":material/download:"
    )


def run_json(run: Run, results: list[Result]) -> str:
    """The run and its results as JSON; a hosted app's names the dataset as its user knows it and leaves out
    the server's process and workspace details."""
    data = {"run": asdict(run), "results": [asdict(r) for r in results]}
    if config.hosted():
        data["run"] = {key: value for key, value in data["run"].items() if key not in _PRIVATE_RUN_FIELDS}
        data["run"]["dataset"] = workspaces.display_name(run.dataset)
        for result in data["results"]:
            for key in ("head_path", "model_path"):
                result.pop(key, None)
    return workspaces.redact(json.dumps(data, indent=2, default=str))
