"""Storage: what the data folder holds, with sizes; deleting runs, datasets and caches; the disk budget and executor."""

import pandas as pd
import streamlit as st

from core import paths, storage
from core.sweep import EXECUTORS

st.title("Storage")
st.caption(
    f"Everything in the data folder `{paths.home()}`. Caches (decoded images, features, exported graphs) are "
    "evicted least recently used first when the folder is over its budget, never one a running sweep uses."
)

saved = storage.load_settings()
budget_column, executor_column, address_column = st.columns(3)
budget = budget_column.number_input(
    "Disk budget (GB)",
    min_value=0.5,
    value=float(saved.get("disk_budget_gb", storage.DEFAULT_BUDGET_GB)),
    step=0.5,
    help=f"${storage.BUDGET_ENV}, when set, wins over this.",
)
executor = executor_column.selectbox(
    "Executor", EXECUTORS, index=EXECUTORS.index(saved.get("executor", "local")), help="ray: each model as a Ray task"
)
address = address_column.text_input(
    "Ray cluster address", value=saved.get("ray_address", ""), help="Empty: Ray started on this machine"
)
if st.button("Save settings", icon=":material/save:"):
    storage.set_budget(budget)
    storage.save_setting("executor", executor)
    storage.save_setting("ray_address", address.strip() or None)
    st.toast("Saved: new sweeps use these settings.")

entries = storage.entries()
used, limit = storage.total_bytes(), storage.budget_bytes()
st.progress(min(1.0, used / limit), text=f"{used / storage.GB:.2f} GB used of {limit / storage.GB:g} GB")
table = pd.DataFrame([storage.describe(entry) for entry in entries])
if table.empty:
    st.info("The data folder is empty.", icon=":material/info:")
    st.stop()
picked = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="storage_table"
)
chosen = [table.iloc[row]["id"] for row in picked.selection.rows]
if st.button(f"Delete {len(chosen)} selected", icon=":material/delete:", disabled=not chosen):
    for entry_id in chosen:
        try:
            storage.delete(entry_id)
        except ValueError as error:
            st.error(str(error), icon=":material/error:")
    st.rerun()
