"""Compare: accuracy against size and latency for one run, the recommendation, and per-model details."""

import json
from dataclasses import asdict

import streamlit as st

from core import worker
from core.evaluate import fastest_text
from core.records import Failed, ModelResult, ScreenedOut, Status, latency_column
from core.runtimes import ENGINES
from ui import state
from ui.charts import tradeoff_scatter
from ui.export import export_panel
from ui.finetune import finetune_panel
from ui.guard import page_store, plain
from ui.mistakes import mistakes_panel
from ui.runs import model_details, pick_run, results_csv, results_table

st.title("Compare")
store = page_store()
runs = [run for run in store.runs() if store.results(run.id)]
if not runs:
    st.info("No results yet: run a sweep on the Train page.", icon=":material/info:")
    st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

run = worker.checked(pick_run(runs, state.run_id()), store)  # a dead worker is noticed here too
results = store.results(run.id)
trained = [r for r in results if isinstance(r, ModelResult)]
ok = [r for r in trained if r.status == Status.OK]
recommendation = run.recommendation
recommended = recommendation and recommendation.model
st.caption(f"Dataset: {plain(run.dataset)}")

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
    st.info("This sweep is still running; the recommendation comes when it finishes.", icon=":material/hourglass_top:")
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
    if recommendation and engine and (fastest := fastest_text(recommendation, results, engine)):
        right.caption(f":material/speed: {fastest}")
    results_table(trained)
    with st.container(border=True):
        finetune_panel(store, run, results)

    st.subheader("Per model")
    names = [r.model for r in trained]
    model = st.selectbox("Model", names, index=names.index(recommended) if recommended in names else 0)
    model_details(trained[names.index(model)])
    mistakes_panel(run, trained[names.index(model)])
    with st.container(border=True):
        export_panel(store, run, trained[names.index(model)])

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
