"""Storage: what the data folder holds, with sizes; deleting runs, datasets and caches; the disk budget and executor.

In hosted mode: only this visitor's workspace (its uploads, datasets and runs) against its quota."""

import pandas as pd
import streamlit as st

from core import config, paths, storage, workspaces
from core.sweep import EXECUTORS
from ui import workspace
from ui.guard import page_store, plain

st.title("Storage")
store = page_store()
if config.hosted():
    st.caption("What your workspace keeps on this server: uploads, datasets and runs (with their models and exports).")
    used, limit = workspaces.usage_bytes(store, workspace.owner()), workspaces.quota_bytes()
else:
    st.caption(
        f"Everything in the data folder `{paths.home()}`. Caches (decoded images, features, exported graphs) are "
        "evicted least recently used first when the folder is over its budget, never one a running sweep uses."
    )
    saved = storage.load_settings()
    budget_column, executor_column, address_column = st.columns(3)
    budget = budget_column.number_input(
        "Disk budget (GB)",
        min_value=0.001,
        value=float(saved.get("disk_budget_gb", storage.DEFAULT_BUDGET_GB)),
        step=0.5,
        help=f"Caches beyond it are evicted, least recently used first. ${storage.BUDGET_ENV}, when set, wins over this.",
    )
    executor = executor_column.selectbox(
        "Executor",
        EXECUTORS,
        index=EXECUTORS.index(saved.get("executor", "local")),
        help="ray: each model as a Ray task",
    )
    address = address_column.text_input(
        "Ray cluster address", value=saved.get("ray_address", ""), help="Empty: Ray started on this machine"
    )
    if st.button("Save settings", icon=":material/save:"):
        storage.set_budget(budget)
        storage.save_setting("executor", executor)
        storage.save_setting("ray_address", address.strip() or None)
        evicted = storage.evict(store=store)
        freed = f"; evicted {len(evicted)} cache(s), {sum(e.bytes for e in evicted) / storage.GB:.3f} GB" * bool(
            evicted
        )
        st.toast(f"Saved: new sweeps use these settings{freed}.")
    used, limit = storage.total_bytes(), storage.budget_bytes()

entries = storage.entries(store)
unit, name = (config.MB, "MB") if config.hosted() else (storage.GB, "GB")
st.progress(min(1.0, used / limit), text=f"{used / unit:.2f} {name} used of {limit / unit:g} {name}")
rows = [storage.describe(entry) for entry in entries]
if config.hosted():  # datasets by the names their visitor knows
    for row, entry in zip(rows, entries, strict=True):
        row["name"] = workspaces.display_name(entry.files[0]) if entry.kind != "run" else f"run #{entry.name}"
table = pd.DataFrame(rows)
if table.empty:
    st.info("Nothing stored yet.", icon=":material/info:")
    st.stop()
picked = st.dataframe(
    table.drop(columns="id") if config.hosted() else table,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="multi-row",
    key="storage_table",
)
chosen = [table.iloc[row]["id"] for row in picked.selection.rows]
if st.button(f"Delete {len(chosen)} selected", icon=":material/delete:", disabled=not chosen):
    for entry_id in chosen:
        try:
            storage.delete(entry_id, store)
        except ValueError as error:
            st.error(plain(error), icon=":material/error:")
    st.session_state.pop("storage_table", None)  # the old row selection would point into the shorter table
    st.rerun()
