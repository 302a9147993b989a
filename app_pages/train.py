"""Train: sweep the chosen models on the chosen dataset in the background, with live progress."""

import streamlit as st

from core import config, storage, worker
from core.progress import clock
from core.records import RunStatus
from core.screening import DEFAULT_SCREEN_SHARE
from core.sweep import SweepSettings
from ui import state
from ui.charts import history_figure
from ui.guard import page_store, plain
from ui.runs import progress_text, run_summary, status_lines
from ui.weights import offer_untrained, untrained_choice

SIZES = {"Each model's default": None, "96 px": 96, "128 px": 128, "160 px": 160, "192 px": 192, "224 px": 224}

st.title("Train")
store = page_store()
active = worker.active_run(store)
last = (store.runs(limit=1) or [None])[0]  # a reload or a new tab starts a new session: pick up the last run's choices
source = state.dataset() or (last and last.dataset)
models = state.models() or (last.models if last else list(config.DEFAULT_MODELS))

with st.container(border=True):
    st.markdown(f"**Dataset:** {plain(source or 'none chosen')}  \n**Models:** {', '.join(models) or 'none chosen'}")
    cols = st.columns(4)
    size = cols[0].selectbox("Image size", list(SIZES), help="Inputs are resized (no crop) to this size.")
    epochs = cols[1].number_input("Max epochs (early stopping)", 1, 200, config.DEFAULT_EPOCHS)
    holdout = cols[2].slider(
        "Held out from training",
        0.1,
        0.6,
        state.holdout(),
        0.05,
        help="For plain class folders: this share of each class is held out, half to choose the epoch and the "
        "model (validation), half to score them (test). train/, validation/ and test/ folders are used as given.",
    )
    seed = cols[3].number_input("Seed", 0, 2**31 - 1, state.seed())
    state.set_holdout_and_seed(holdout, seed)
    screen = st.toggle(
        "Screen first",
        value=len(models) >= 6,
        help=f"Rank every model on {DEFAULT_SCREEN_SHARE:.0%} of the "
        "images, then finish only those that could still win on all of them. Saves time on long lists.",
    )
    chosen = untrained_choice(models, SIZES[size])
    if not source:
        st.page_link("app_pages/data.py", label="First choose a dataset on Data", icon=":material/folder_open:")
    if st.button(
        "Start sweep", type="primary", icon=":material/play_arrow:", disabled=bool(active or not source or not models)
    ):
        try:
            settings = SweepSettings(
                models=chosen,
                image_size=SIZES[size],
                epochs=int(epochs),
                holdout=holdout,
                seed=int(seed),
                screen=DEFAULT_SCREEN_SHARE if screen else None,
                **storage.executor_settings(),  # set on the Storage page
            )
            state.set_run_id(worker.start_sweep(source, settings, store))
            st.rerun()
        except ValueError as error:
            st.error(str(error), icon=":material/error:")


def show_run(run_id: int, running: bool = False) -> None:
    run, progress, results = store.run(run_id), store.progress(run_id), store.results(run_id)
    st.subheader(f"Run #{run_id}: {run_summary(run, results)}")
    fraction, text = progress_text(run, progress, results)
    st.progress(fraction, text=text)
    if running and st.button("Cancel", icon=":material/stop:", disabled=run.cancel_requested):
        worker.cancel(run_id)
        st.toast("Cancelling after the current batch or epoch; finished models are kept.")
    status_lines(run, progress, {r.model: r for r in results})
    offer_untrained(results, models)
    history = store.history(run_id)
    if history:
        left, right = st.columns(2)
        left.plotly_chart(history_figure(history, "val_accuracy"), key=f"acc-{run_id}")
        right.plotly_chart(history_figure(history, "val_loss"), key=f"loss-{run_id}")
    if run.status == RunStatus.FAILED:
        st.error(f"The sweep failed: {plain(run.error)}", icon=":material/error:")
    elif run.status == RunStatus.CANCELLED:
        st.warning(
            "Cancelled: finished models are kept; a model cut short is partial and never recommended.",
            icon=":material/cancel:",
        )
    elif run.status == RunStatus.DONE:
        st.success(f"Done in {clock(run.updated - run.created)}.", icon=":material/check_circle:")
        st.page_link("app_pages/compare.py", label="See the comparison", icon=":material/leaderboard:")


@st.fragment(run_every=1)
def live(run_id: int) -> None:
    if not store.run(run_id).status.active or worker.active_run(store) is None:
        st.rerun(scope="app")  # finished: show the final state without polling
    show_run(run_id, running=True)


if active:
    state.set_run_id(active.id)
    live(active.id)
elif state.run_id() and store.run(state.run_id()):
    show_run(state.run_id())
else:
    st.caption("No sweep yet in this session. Earlier runs are on the Compare page.")
