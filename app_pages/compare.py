"""Compare: accuracy against size and latency for one run, the recommendation, and per-model details."""

import streamlit as st

from core import worker
from ui import state
from ui.compare import comparison
from ui.guard import page_store
from ui.runs import pick_run
from ui.share import share_panel

st.title("Compare")
store = page_store()
runs = [run for run in store.runs() if store.results(run.id)]
if not runs:
    st.info("No results yet: run a sweep on the Train page.", icon=":material/info:")
    st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

run = worker.checked(pick_run(runs, state.run_id()), store)  # a dead worker is noticed here too
comparison(store, run, store.results(run.id))
with st.container(border=True):
    share_panel(store, run)
