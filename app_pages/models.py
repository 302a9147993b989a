"""Models: pick the candidates from the Keras applications zoo and see what each one is."""

import pandas as pd
import streamlit as st

from core import config
from core.architecture import summarize
from core.latency import known_latencies, measure_model
from core.runtimes import ENGINES
from core.zoo import SUMMARY_COLUMNS, ModelRef, zoo
from ui import state
from ui.weights import weights_line

LIGHT_PARAMS = 5_000_000
MAX_PARAMS = config.HOSTED_MAX_PARAMS if config.hosted() else None

st.title("Models")


@st.cache_resource(show_spinner="Loading the model zoo…")
def catalog(max_params: int | None) -> pd.DataFrame:
    table = pd.DataFrame([spec.describe() for spec in zoo().values()]).set_index("model", drop=False)
    return table if max_params is None else table[table["params"] <= max_params]


def ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


@st.cache_data(show_spinner="Building the architecture (untrained)…", max_entries=32)
def architecture(model_id: str) -> dict:
    return summarize(model_id)


table = catalog(MAX_PARAMS)
if state.MODELS_WIDGET not in st.session_state:
    st.session_state[state.MODELS_WIDGET] = state.models() or [m for m in config.DEFAULT_MODELS if m in table.index]

with st.sidebar:
    st.header("Filter the zoo")
    light = MAX_PARAMS is None and st.toggle("Light models only (< 5M parameters)", value=False)  # hosted: all are
    families = st.multiselect("Families", sorted(table["family"].unique()), placeholder="All families")
    max_m = st.slider(
        "Max parameters (millions)",
        0.5,
        float(table["params"].max() / 1e6) + 1,
        float(table["params"].max() / 1e6) + 1,
        0.5,
    )
    shown = table[(table["params"] <= (LIGHT_PARAMS if light else max_m * 1e6))]
    if families:
        shown = shown[shown["family"].isin(families)]
    options = list(dict.fromkeys(list(shown.index) + st.session_state[state.MODELS_WIDGET]))
    chosen = st.multiselect("Models to compare", options, key=state.MODELS_WIDGET, placeholder="Type to search…")
    state.set_models(chosen)
    st.caption(f"{len(shown)} of {len(table)} models match the filters. The choice is kept for the Train page.")

if not chosen:
    st.info("Choose at least one model in the sidebar.", icon=":material/info:")
    st.stop()

overview = table.loc[chosen, [*SUMMARY_COLUMNS, "year"]]
st.dataframe(
    overview.assign(params=overview["params"] / 1e6),
    hide_index=True,
    column_config={
        "params": st.column_config.NumberColumn("params (M)", format="%.2f"),
        "feature_dim": "feature size",
        "default_size": st.column_config.NumberColumn("input (px)"),
        "imagenet_top1": st.column_config.NumberColumn("ImageNet top-1 %", format="%.1f"),
        "weights_mb": st.column_config.NumberColumn("weights (MB)", format="%.1f"),
        "weights_cached": st.column_config.CheckboxColumn("cached"),
    },
)

for model_id in chosen:
    row = table.loc[model_id]
    st.subheader(model_id)
    arch = architecture(model_id)
    cols = st.columns(6)
    cols[0].metric("Parameters", f"{row['params']:,}")
    cols[1].metric("Depth (weighted layers)", arch["depth"])
    cols[2].metric("Input size", f"{row['default_size']} px", help=f"minimum {row['min_size']} px")
    cols[3].metric("Feature size", f"{row['feature_dim']:,}")
    cols[4].metric("ImageNet top-1", f"{row['imagenet_top1']:.1f}%" if pd.notna(row["imagenet_top1"]) else "n/a")
    cols[5].metric("Weights", "cached" if row["weights_cached"] else f"{row['weights_mb']:.1f} MB to download")
    st.caption(f"{row['family']}: *{row['paper']}* ({row['year']}). Preprocessing: {row['preprocessing']}.")
    st.markdown(weights_line(zoo()[model_id]))
    speeds = known_latencies(ModelRef.parse(model_id))
    if set(speeds) != set(ENGINES) and st.button(
        "Measure speed on this host", key=f"speed-{model_id}", icon=":material/speed:"
    ):
        with st.spinner(f"Timing {model_id} + a 2-class head in each runtime (untrained weights, same arithmetic)…"):
            speeds = measure_model(model_id)
    for engine, speed in speeds.items():
        text = "can't run this model (TensorFlow is used)"
        if speed:
            spread = f" (IQR {ms(speed.ms_q1)}-{ms(speed.ms_q3)})" if speed.ms_iqr is not None else ""
            text = f"{ms(speed.ms)} ms/image{spread} at batch 1, {speed.images_per_second:.0f} images/s at batch 32"
            text += f", {speed.threads} threads" if speed.threads else ""
        st.markdown(f":material/speed: **{ENGINES[engine]} on this host:** {text}")
    with st.expander(f"Architecture: {arch['layer_count']} layers"):
        left, right = st.columns([3, 1])
        left.dataframe(arch["layers"], hide_index=True, height=320)
        right.dataframe(arch["by_type"], hide_index=True, height=320)
        st.caption(f"Built untrained at {arch['size']} px; output shapes are for that size.")

st.page_link("app_pages/train.py", label="Next: train and compare them", icon=":material/arrow_forward:")
