"""Compare: accuracy against size and latency for one run, the recommendation, and per-model details."""

import json
import time

import pandas as pd
import streamlit as st

from core.charts import confusion_figure, tradeoff_scatter
from core.runtimes import RUNTIME_LABELS
from core.store import Store

COLUMNS = ["model", "val_accuracy", "subset_accuracy", "params", "size_mb", "runtime", "latency_ms_tf", "latency_ms_onnx",
           "throughput_ips", "input_size", "family", "val_loss", "epochs_run", "best_epoch", "feature_seconds", "head_seconds"]  # fmt: skip
LATENCY_AXES = {"latency_ms_onnx": RUNTIME_LABELS["onnx"], "latency_ms_tf": RUNTIME_LABELS["tf"]}

st.title("Compare")
store = Store()
runs = [run for run in store.runs() if store.results(run["id"])]
if not runs:
    st.info("No results yet: run a sweep on the Train page.", icon=":material/info:")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

by_id = {run["id"]: run for run in runs}
default = st.session_state.get("run_id") if st.session_state.get("run_id") in by_id else runs[0]["id"]
run_id = st.selectbox(
    "Run", list(by_id), index=list(by_id).index(default),
    format_func=lambda i: f"#{i} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(by_id[i]['created']))} · "
    f"{by_id[i]['status']} · {', '.join(by_id[i]['settings']['models'])}",
)  # fmt: skip
run, results = by_id[run_id], store.results(run_id)
ok = [r for r in results if r["status"] == "ok"]
recommendation = run.get("recommendation") or {}
st.caption(f"Dataset: `{run['dataset']}`")

if recommendation.get("model"):
    st.success(f"**Recommended: {recommendation['model']}**. {recommendation['reason']}", icon=":material/recommend:")
elif run["status"] in ("queued", "running"):
    st.info("This sweep is still running; the recommendation comes when it finishes.", icon=":material/hourglass_top:")
for failed in (r for r in results if r["status"] == "failed"):
    st.error(f"**{failed['model']}** failed: {failed.get('error')}", icon=":material/error:")
if screening := recommendation.get("screening"):
    out = ", ".join(f"{r['model']} ({r['subset_accuracy']:.1%} on {r.get('subset_images', 'the')} images)" for r in results
                    if r["status"] == "screened out")  # fmt: skip
    rounds = " then ".join(str(r["images"]) for r in screening.get("rounds", [])) or screening["subset_images"]
    st.info(f"**Screened** on {rounds} images; finished on all: {', '.join(screening['finalists'])}. "
            f"Screened out: {out or 'none'}.", icon=":material/filter_alt:")  # fmt: skip
    if screening.get("winner_changed"):
        st.warning(f"On the screening subset {screening['screened_winner']} ranked first; on all images "
                   f"{recommendation['model']} wins.", icon=":material/swap_vert:")  # fmt: skip
for fallback in (r for r in ok if r.get("runtime_note")):
    st.caption(f":material/info: {fallback['model']} ran in TensorFlow: {fallback['runtime_note']}")

if ok:
    axis = st.radio("Model size as", ["params", "size_mb"], horizontal=True,
                    format_func={"params": "parameters", "size_mb": "MB (float32)"}.get)  # fmt: skip
    left, right = st.columns(2)
    left.plotly_chart(tradeoff_scatter(ok, axis, recommendation.get("model")), key="size")
    timed = [key for key in LATENCY_AXES if any(r.get(key) is not None for r in ok)] or ["latency_ms"]
    latency = right.radio("Latency in", timed, horizontal=True, format_func=lambda a: LATENCY_AXES.get(a, "the runtime used"))
    right.plotly_chart(tradeoff_scatter(ok, latency, recommendation.get("model")), key="latency")

    table = pd.DataFrame(ok).reindex(columns=COLUMNS).dropna(axis="columns", how="all").sort_values("val_accuracy", ascending=False)
    table[["val_accuracy", "params"]] *= [100, 1e-6]
    if "subset_accuracy" in table:
        table["subset_accuracy"] *= 100
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "val_accuracy": st.column_config.ProgressColumn("accuracy %", format="%.1f", min_value=0, max_value=100),
            "params": st.column_config.NumberColumn("params (M)", format="%.2f"),
            "size_mb": st.column_config.NumberColumn("size (MB)", format="%.1f"),
            "subset_accuracy": st.column_config.NumberColumn("screening %", format="%.1f"),
            "latency_ms_tf": st.column_config.NumberColumn("TensorFlow (ms)", format="%.1f", help="batch 1, this host"),
            "latency_ms_onnx": st.column_config.NumberColumn("ONNX Runtime (ms)", format="%.1f", help="batch 1, this host"),
            "throughput_ips": st.column_config.NumberColumn("images/s (batch 32)", format="%.0f", help="in the runtime used"),
            "input_size": "input (px)",
        },
    )

    st.subheader("Per model")
    model = st.selectbox("Model", [r["model"] for r in ok], index=next(
        (i for i, r in enumerate(ok) if r["model"] == recommendation.get("model")), 0))  # fmt: skip
    result = next(r for r in ok if r["model"] == model)
    left, right = st.columns(2)
    left.plotly_chart(confusion_figure(result["confusion"], result["classes"]), key="confusion")
    right.dataframe(pd.DataFrame(result["per_class"]), hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "f1")})  # fmt: skip

cols = st.columns(2)
cols[0].download_button("Download CSV", pd.DataFrame(results).drop(columns=["per_class", "confusion"], errors="ignore")
                        .to_csv(index=False), f"run-{run_id}.csv", "text/csv", icon=":material/download:")  # fmt: skip
cols[1].download_button("Download JSON", json.dumps({"run": run, "results": results}, indent=2, default=str),
                        f"run-{run_id}.json", "application/json", icon=":material/download:")  # fmt: skip
