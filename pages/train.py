"""Train: sweep the chosen models on the chosen dataset in the background, with live progress."""

import streamlit as st

from core import worker
from core.charts import history_figure
from core.store import Store
from core.sweep import DEFAULT_SCREEN_SHARE, SweepSettings

SIZES = {"Each model's default": None, "96 px": 96, "128 px": 128, "160 px": 160, "192 px": 192, "224 px": 224}

st.title("Train")
store = Store()
active = worker.active_run(store)
last = (store.runs(limit=1) or [None])[0]  # a reload or a new tab starts a new session: pick up the last run's choices
source = st.session_state.get("dataset") or (last and last["dataset"])
models = st.session_state.get("models") or (last["settings"]["models"] if last else ["MobileNetV2:0.35", "MobileNet:0.25"])

with st.container(border=True):
    st.markdown(f"**Dataset:** `{source or 'none chosen'}`  \n**Models:** {', '.join(models) or 'none chosen'}")
    cols = st.columns(4)
    size = cols[0].selectbox("Image size", list(SIZES), help="Inputs are resized (no crop) to this size.")
    epochs = cols[1].number_input("Max epochs (early stopping)", 1, 200, 20)
    val_split = cols[2].slider("Validation split", 0.05, 0.5, st.session_state.get("val_split", 0.2), 0.05,
                               help="Only for plain class folders; train/ + validation/ folders are used as given.")  # fmt: skip
    seed = cols[3].number_input("Seed", 0, 2**31 - 1, st.session_state.get("seed", 1337))
    st.session_state.val_split, st.session_state.seed = val_split, int(seed)
    screen = st.toggle("Screen first", value=len(models) >= 6, help=f"Rank every model on {DEFAULT_SCREEN_SHARE:.0%} of the "
                       "images, then finish only those that could still win on all of them. Saves time on long lists.")  # fmt: skip
    if not source:
        st.page_link("pages/data.py", label="First choose a dataset on the Data page", icon=":material/folder_open:")
    if st.button("Start sweep", type="primary", icon=":material/play_arrow:", disabled=bool(active or not source or not models)):
        try:
            settings = SweepSettings(models=models, image_size=SIZES[size], epochs=int(epochs), val_split=val_split,
                                     seed=int(seed), screen=DEFAULT_SCREEN_SHARE if screen else None)  # fmt: skip
            st.session_state.run_id = worker.start_sweep(source, settings)
            st.rerun()
        except ValueError as error:
            st.error(str(error), icon=":material/error:")


def status_lines(run: dict, progress: dict, results: dict) -> None:
    running = run["status"] in ("queued", "running")
    for model in run["settings"]["models"]:
        result = results.get(model, {})
        if result.get("status") == "ok":
            st.markdown(f":material/check_circle: **{model}**: {result['val_accuracy']:.1%} validation accuracy")
        elif result.get("status") == "screened out":
            accuracy, images = result["subset_accuracy"], result.get("subset_images", "a subset of")
            st.markdown(f":material/filter_alt: {model}: screened out at {accuracy:.1%} on {images} images")
        elif result:
            st.markdown(f":material/error: **{model}**: failed: {result.get('error')}")
        elif model == progress.get("model") and running:
            step = f"epoch {progress['epoch']}/{progress['epochs']}" if progress.get("stage") == "training head" else (
                f"{progress['done']}/{progress['total']} images" if progress.get("total") else "")  # fmt: skip
            st.markdown(f":material/progress_activity: **{model}**: {progress.get('stage')} {step}")
        elif model in progress.get("finished", []) and progress.get("phase", "").startswith("screening"):
            st.markdown(f":material/filter_alt: {model}: screened, waiting for the ranking")
        else:
            st.markdown(f":material/schedule: {model}: pending")


def show_run(run_id: int, running: bool = False) -> None:
    run, progress = store.run(run_id), store.progress(run_id) or {}
    results = {r["model"]: r for r in store.results(run_id)}
    st.subheader(f"Run #{run_id}: {run['status']}")
    fraction = 1.0 if run["status"] == "done" else float(progress.get("fraction", 0.0))
    stage = progress.get("stage", "starting the worker")
    phase = f"{progress['phase']} · " if progress.get("phase") and run["status"] == "running" else ""
    st.progress(fraction, text=f"{fraction:.0%} · {phase}{progress.get('model') or ''} {stage}")
    if running and st.button("Cancel", icon=":material/stop:", disabled=run["cancel_requested"]):
        worker.cancel(run_id)
        st.toast("Cancelling after the current batch or epoch; finished models are kept.")
    status_lines(run, progress, results)
    history = store.history(run_id)
    if history:
        left, right = st.columns(2)
        left.plotly_chart(history_figure(history, "val_accuracy"), key=f"acc-{run_id}")
        right.plotly_chart(history_figure(history, "val_loss"), key=f"loss-{run_id}")
    if run["status"] == "failed":
        st.error(f"The sweep failed: {run.get('error')}", icon=":material/error:")
    elif run["status"] == "cancelled":
        st.warning("Cancelled; finished models are kept.", icon=":material/cancel:")
    elif run["status"] == "done":
        st.success(f"Done in {run['updated'] - run['created']:.0f} s.", icon=":material/check_circle:")
        st.page_link("pages/compare.py", label="See the comparison", icon=":material/leaderboard:")


@st.fragment(run_every=1)
def live(run_id: int) -> None:
    run = store.run(run_id)
    if run["status"] not in ("queued", "running") or worker.active_run(store) is None:
        st.rerun(scope="app")  # finished: show the final state without polling
    show_run(run_id, running=True)


if active:
    st.session_state.run_id = active["id"]
    live(active["id"])
elif st.session_state.get("run_id") and store.run(st.session_state.run_id):
    show_run(st.session_state.run_id)
else:
    st.caption("No sweep yet in this session. Earlier runs are on the Compare page.")
