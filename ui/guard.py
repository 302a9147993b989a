"""What keeps user-supplied text and store faults from turning into Markdown or tracebacks on a page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import streamlit as st

from core import config, workspaces
from core.store import Store, StoreError, start_fresh
from ui.workspace import current as current_workspace

_INLINE = re.compile(r"([\\`*_\[\]<>~:$|{}&])")  # emphasis, code, links, HTML, strike, directives, maths, tables
_BLOCK = re.compile(r"^(\s*\d*)([#+=>.)-])")  # what makes a heading, quote, list or rule at a line start
_NO_WORKSPACE = "none"  # no workspace has this id (real ids are 22 characters)
_WWW = re.compile(r"(?i)\b(www)\.")  # a bare www. address, which GitHub-flavoured Markdown would link


def plain(text: object) -> str:
    """`text` (a file, folder or class name, or a message holding one) escaped so Markdown shows it as typed:
    no link, emphasis, colour, heading or HTML. Line breaks become spaces."""
    escaped = _INLINE.sub(r"\\\1", " ".join(workspaces.redact(str(text)).splitlines()))
    return _WWW.sub(r"\1\\.", _BLOCK.sub(r"\1\\\2", escaped))


class PageStore:
    """The store as a page uses it: a short wait on a lock, and any store fault shown as one clear message
    (with a way to start a fresh store when the file is damaged) that ends the page, never a traceback."""

    def __init__(self, store: Store):
        self._store = store

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        return _guarded(value) if callable(value) else value


def page_store(workspace: str | None = None) -> PageStore:
    """The store for this page run (see `PageStore`). In hosted mode it sees only the visitor's workspace, or
    `workspace` (a share link's); a page run that entered none sees nothing rather than everything."""
    scope = workspace or current_workspace() or (_NO_WORKSPACE if config.hosted() else None)
    return PageStore(_guarded(Store)(lock_wait=config.APP_STORE_WAIT_SECONDS, workspace=scope))


def _guarded(call: Callable) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except StoreError as error:
            store_error(error)
            st.stop()

    return guarded


def store_error(error: StoreError) -> None:
    """The store's fault in words; for a damaged file, a button that sets it aside and starts a new one."""
    st.error(plain(error), icon=":material/database:")
    if error.kind == "damaged" and st.button(
        "Start a fresh store (the old file is kept, renamed .damaged-<time>)", icon=":material/restart_alt:"
    ):
        start_fresh()
        st.rerun()
