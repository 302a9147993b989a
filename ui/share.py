"""The Compare page's Share panel: read-only links to one run, made and revoked by its workspace."""

from __future__ import annotations

import time

import streamlit as st

from core import workspaces
from core.records import Run
from ui.guard import PageStore
from ui.workspace import share_url


def share_panel(store: PageStore, run: Run) -> None:
    """Make a link that shows `run`'s comparison read-only, list the live ones, and revoke them."""
    st.subheader("Share")
    st.caption(
        "A link that shows this run's comparison read-only, and nothing else of your workspace: no other run, "
        "no dataset, no export. It works for anyone who has it, until you revoke it."
    )
    if st.button("Create a share link", icon=":material/add_link:", key=f"share-{run.id}"):
        workspaces.share(store, run.id)
    for link in workspaces.shares(store, run.id):
        url, revoke = st.columns([6, 1], vertical_alignment="center")
        url.code(share_url(link.token), language=None)
        made = time.strftime("%Y-%m-%d %H:%M", time.localtime(link.created))
        if revoke.button("Revoke", icon=":material/link_off:", key=f"revoke-{link.token}", help=f"made {made}"):
            workspaces.revoke(store, link.token)
            st.rerun()
