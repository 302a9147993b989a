"""A shared result: one run's comparison, read-only, opened from a share link (`?share=<token>`).

The link shows nothing else of the workspace it came from: no other run, no dataset, no way to change it."""

import streamlit as st

from core import workspaces
from ui.compare import comparison
from ui.guard import page_store
from ui.workspace import hide_error_details, shared_token

hide_error_details()
st.title("Shared result")
run = workspaces.shared_run(page_store(), shared_token())
if run is None:
    st.error("This share link is not valid: it was revoked, or it never existed.", icon=":material/link_off:")
    st.stop()

store = page_store(workspace=run.workspace)
st.caption(f":material/visibility: Read-only: run #{run.id}, shared from Transfer Bench.")
comparison(store, run, store.results(run.id), shared=True)
