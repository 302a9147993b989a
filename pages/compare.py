"""Compare: accuracy against size and latency for one run, the recommendation, and per-model details."""

import json
from dataclasses import asdict

import streamlit as st

from core.records import Failed, ModelResult, ScreenedOut, latency_column
from core.runtimes import ENGINES
from core.store import Store
from ui import state
from ui.charts import confusion_figure, tradeoff_scatter
from ui.runs import per_class_table, pick_run, results_csv, results_table

st.title("Compare")
store = Store()
runs = [run for run in store.runs() if store.results(run.id)]
if not runs:
    st.info("No results yet: run a sweep on the Train page.", icon=":material/info:")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

run = pick_run(runs, state.run_id())
results = store.results(run.id)
ok = [r for r in results if isinstance(r, ModelResult)]
recommendation = run.recommendation
recommended = recommendation and recommendation.model
st.caption(f"Dataset: `{run.dataset}`")

if recommendation:
    st.success(f"**Recommended: {recommendation.model}**. {recommendation.reason}", icon=":material/recommend:")
elif run.status.active:
    st.info("This sweep is still running; the recommendation comes when it finishes.", icon=":material/hourglass_top:")
for failed in (r for r in results if isinstance(r, Failed)):
    st.error(f"**{failed.model}** failed: {failed.error}", icon=":material/error:")
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
    st.caption(f":material/info: {fallback.model} ran in TensorFlow: {fallback.runtime_note}")

if ok:
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
    results_table(ok)

    st.subheader("Per model")
    names = [r.model for r in ok]
    model = st.selectbox("Model", names, index=names.index(recommended) if recommended in names else 0)
    result = ok[names.index(model)]
    left, right = st.columns(2)
    left.plotly_chart(confusion_figure(result.confusion, result.classes), key="confusion")
    per_class_table(result, right)

cols = st.columns(2)
cols[0].download_button(
    "Download CSV", results_csv(results), f"run-{run.id}.csv", "text/csv", icon=":material/download:"
)
cols[1].download_button(
    "Download JSON",
    json.dumps({"run": asdict(run), "results": [asdict(r) for r in results]}, indent=2, default=str),
    f"run-{run.id}.json",
    "application/json",
    icon=":material/download:",
)
