"""Train: sweep the chosen models on the chosen dataset in the background, with live progress."""

import streamlit as st

from core import config, storage, worker, workspaces
from core.screening import DEFAULT_SCREEN_SHARE
from core.sweep import SweepSettings
from ui import state
from ui.guard import page_store, plain
from ui.live import live, show_run
from ui.weights import untrained_choice

SIZES = {"Each model's default": None, "96 px": 96, "128 px": 128, "160 px": 160, "192 px": 192, "224 px": 224}

st.title("Train")
store = page_store()
active = worker.active_run(store)
last = (store.runs(limit=1) or [None])[0]  # a reload or a new tab starts a new session: pick up the last run's choices
source = state.dataset() or (last and last.dataset)
models = state.models() or (last.models if last else list(config.DEFAULT_MODELS))

with st.container(border=True):
    named = source and workspaces.display_name(source)
    st.markdown(f"**Dataset:** {plain(named or 'none chosen')}  \n**Models:** {', '.join(models) or 'none chosen'}")
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
    busy = active and f"Run #{active.id} has not finished: one run at a time; wait for it or cancel it below."
    if busy:
        st.caption(f":material/block: {busy}")
    if st.button(
        "Start sweep", type="primary", icon=":material/play_arrow:", disabled=bool(busy or not source or not models)
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
            st.error(plain(error), icon=":material/error:")


if active:
    state.set_run_id(active.id)
    live(store, active.id, models)
elif state.run_id() and store.run(state.run_id()):
    show_run(store, state.run_id(), models)
else:
    st.caption("No sweep yet in this session. Earlier runs are on the Compare page.")
