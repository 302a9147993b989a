"""The visitor's workspace (`core.workspaces`), kept in the page's URL as `?ws=<id>` in hosted mode so that
a bookmark or a reload returns to it; and the links that share one run read-only (`?share=<token>`)."""

from __future__ import annotations

import time

import streamlit as st

from core import config, workspaces
from core.store import Store

WORKSPACE_PARAM = "ws"
SHARE_PARAM = "share"
_SESSION = "workspace"
_EXPIRE_EVERY = 600.0  # seconds between two housekeeping passes of this server process
_last_expired = [0.0]


def enter() -> None:
    """Find (or make) this visitor's workspace at the start of every page run; locally, nothing to do.

    The URL's id wins when it names a live workspace; an unknown or expired one starts a new workspace
    and says so. The id is written back to the URL, which a page switch clears. Errors the app did not
    expect show only their type."""
    if not config.hosted():
        return
    hide_error_details()
    store = Store(lock_wait=config.APP_STORE_WAIT_SECONDS)
    wanted = st.query_params.get(WORKSPACE_PARAM)
    if wanted and workspaces.visit(store, wanted):
        current = wanted
    elif (kept := st.session_state.get(_SESSION)) and workspaces.visit(store, kept):
        current = kept
    else:
        if time.time() - _last_expired[0] > _EXPIRE_EVERY:  # a new visitor: a good moment to tidy up
            _last_expired[0] = time.time()
            workspaces.expire(store)
        current = workspaces.create(store)
        if wanted:
            st.toast("That workspace link has expired or is unknown: this is a new, empty workspace.")
    st.session_state[_SESSION] = current
    if st.query_params.get(WORKSPACE_PARAM) != current:
        st.query_params[WORKSPACE_PARAM] = current


def hide_error_details() -> None:
    """In hosted mode, an error the app did not expect shows its type only: its traceback names server paths."""
    if config.hosted():
        st.set_option("client.showErrorDetails", "type")


def current() -> str | None:
    """This visitor's workspace id in hosted mode; None locally (the one workspace, which sees every run)."""
    return st.session_state.get(_SESSION) if config.hosted() else None


def owner() -> str:
    """The workspace new files and runs belong to."""
    return current() or config.LOCAL_WORKSPACE


def shared_token() -> str | None:
    """The share token of a read-only link, when the page was opened with one."""
    return st.query_params.get(SHARE_PARAM)


def share_url(token: str) -> str:
    """The full link that opens `token`'s run read-only: this app's address with `?share=<token>`."""
    base = str(st.context.url or "").split("?")[0].rstrip("/")
    for page in ("/compare",):
        base = base.removesuffix(page)
    return f"{base}/?{SHARE_PARAM}={token}"
