"""Workspaces: what one visitor of a hosted app owns, and read-only links that share one of its runs.

In hosted mode (`TRANSFERBENCH_HOSTED=1`) each visitor gets a private workspace named by an unguessable id,
kept in the page's URL so that a bookmark or a reload returns to it. Its uploads and extracted datasets
live in its own folder (`paths.workspace_dir`), its runs carry its id in the store, and a
`Store(workspace=id)` lists and touches only those. Caches keyed by content (features, graphs) stay
shared: they hold nothing a visitor could read. On your own machine there is one workspace,
`config.LOCAL_WORKSPACE`, and paths are shown as they are.

A hosted workspace keeps at most `quota_bytes()` on disk (`check_room`), and `expire` deletes workspaces
idle longer than `idle_seconds()` with all their files. A share link's token shows one run until revoked.
In hosted mode no page shows a server path: `display_name` names a dataset as its user knows it, and
`redact` rewrites any path in a message.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import config, paths, storage
from core.errors import DatasetError
from core.records import Run
from core.store import Store

_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
_SEEN_EVERY = 60.0  # a workspace's last visit is written at most this often
_DIGEST_FIRST = re.compile(r"[0-9a-f]{12}-(.+)")  # an uploaded zip: <digest>-<name>.zip
_DIGEST_LAST = re.compile(r"(.+)-[0-9a-f]{12}")  # an extracted zip: <name>-<digest>
_FOLDER_UPLOAD = re.compile(r"folder-[0-9a-f]{12}")
_PATH_END = r"[^\s'\"),;]*"  # a path runs until white space, a quote, a bracket or a separator


class QuotaExceeded(DatasetError):
    """A workspace would keep more on disk than a hosted workspace may."""


@dataclass(frozen=True)
class Share:
    token: str
    run_id: int
    created: float


def quota_bytes() -> int:
    """What one hosted workspace may keep on disk (`TRANSFERBENCH_WORKSPACE_QUOTA_MB`, default 500 MB)."""
    return int(config.number(config.QUOTA_ENV, config.WORKSPACE_QUOTA_MB) * config.MB)


def idle_seconds() -> float:
    """How long a hosted workspace may go unvisited before `expire` deletes it (default 72 hours)."""
    return config.number(config.IDLE_HOURS_ENV, config.WORKSPACE_IDLE_HOURS) * 3600


def create(store: Store) -> str:
    """A new workspace, with an unguessable id."""
    workspace, now = secrets.token_urlsafe(16), time.time()
    with store.transaction() as db:
        db.execute("INSERT INTO workspaces (id, created, seen) VALUES (?, ?, ?)", (workspace, now, now))
    return workspace


def visit(store: Store, workspace: str) -> bool:
    """True when `workspace` exists (its last visit is then noted); False for an unknown or expired id."""
    if not _ID.fullmatch(workspace or ""):
        return False
    with store.transaction(write=False) as db:
        row = db.execute("SELECT seen FROM workspaces WHERE id = ?", (workspace,)).fetchone()
    if row is None:
        return False
    if time.time() - row["seen"] > _SEEN_EVERY:
        with store.transaction() as db:
            db.execute("UPDATE workspaces SET seen = ? WHERE id = ?", (time.time(), workspace))
    return True


def owner(path: str | Path) -> str:
    """The workspace whose folder holds `path` (`config.LOCAL_WORKSPACE` for any other path)."""
    try:
        relative = Path(path).resolve().relative_to(paths.workspaces_dir())
    except ValueError:
        return config.LOCAL_WORKSPACE
    return relative.parts[0] if relative.parts else config.LOCAL_WORKSPACE


def usage_bytes(store: Store, workspace: str) -> int:
    """Disk a workspace uses: its uploads and datasets, and its runs' files (heads, exports, logs)."""
    runs = Store(store.path, workspace=workspace).runs(limit=1_000_000)
    return storage.size(paths.workspace_dir(workspace)) + sum(storage.size(paths.run_dir(run.id)) for run in runs)


def check_room(workspace: str, adding: int | Callable[[], int] = 0) -> None:
    """Raise `QuotaExceeded` when a hosted workspace would go over its quota by adding `adding` bytes (or a
    function giving them, asked only for a hosted workspace). The local workspace has no quota."""
    if workspace == config.LOCAL_WORKSPACE:
        return
    adding = adding() if callable(adding) else adding
    used, most = usage_bytes(Store(), workspace), quota_bytes()
    if used + adding > most:
        raise QuotaExceeded(
            f"This workspace would keep {(used + adding) / config.MB:,.1f} MB; a workspace may keep up to "
            f"{most / config.MB:,.0f} MB. Delete runs or datasets on the Storage page first. "
            f"Received: {adding / config.MB:,.1f} MB more on {used / config.MB:,.1f} MB"
        )


def expire(store: Store, now: float | None = None) -> list[str]:
    """Delete workspaces unvisited for `idle_seconds()`, with their runs, files and share links; a workspace
    with a queued or running run is kept. Returns the ids deleted."""
    everyone = store.everyone()
    cutoff = (now or time.time()) - idle_seconds()
    with everyone.transaction(write=False) as db:
        idle = [row["id"] for row in db.execute("SELECT id FROM workspaces WHERE seen < ?", (cutoff,))]
    deleted = []
    for workspace in idle:
        runs = Store(everyone.path, workspace=workspace).runs(limit=1_000_000)
        if any(run.status.active for run in runs):
            continue
        for run in runs:
            shutil.rmtree(paths.run_dir(run.id), ignore_errors=True)
            everyone.delete_run(run.id)
        shutil.rmtree(paths.workspace_dir(workspace), ignore_errors=True)
        with everyone.transaction() as db:
            db.execute("DELETE FROM workspaces WHERE id = ?", (workspace,))
        deleted.append(workspace)
    return deleted


# Share links ------------------------------------------------------------------------------------------
def share(store: Store, run_id: int) -> str:
    """A new read-only link token for `run_id`, a run of the store's workspace."""
    if store.run(run_id) is None:
        raise ValueError(f"No run #{run_id} in this workspace to share. Received: run={run_id}")
    token = secrets.token_urlsafe(16)
    with store.transaction() as db:
        db.execute(
            "INSERT INTO shares (token, run_id, workspace, created) VALUES (?, ?, ?, ?)",
            (token, run_id, store.workspace or config.LOCAL_WORKSPACE, time.time()),
        )
    return token


def shares(store: Store, run_id: int) -> list[Share]:
    """The links of `run_id` not revoked, newest first (only the run's own workspace sees them)."""
    if store.run(run_id) is None:
        return []
    with store.transaction(write=False) as db:
        rows = db.execute(
            "SELECT * FROM shares WHERE run_id = ? AND revoked IS NULL ORDER BY created DESC", (run_id,)
        ).fetchall()
    return [Share(row["token"], row["run_id"], row["created"]) for row in rows]


def revoke(store: Store, token: str) -> None:
    """Stop a link from working (only the workspace that made it can)."""
    workspace = store.workspace or config.LOCAL_WORKSPACE
    with store.transaction() as db:
        db.execute("UPDATE shares SET revoked = ? WHERE token = ? AND workspace = ?", (time.time(), token, workspace))


def shared_run(store: Store, token: str) -> Run | None:
    """The run a link shows, or None for an unknown or revoked token."""
    if not _ID.fullmatch(token or ""):
        return None
    with store.transaction(write=False) as db:
        row = db.execute("SELECT run_id FROM shares WHERE token = ? AND revoked IS NULL", (token,)).fetchone()
    return store.everyone().run(row["run_id"]) if row else None


# What a visitor sees of the server ----------------------------------------------------------------------
def display_name(source: str | Path) -> str:
    """A dataset (or a file in one) as its user knows it: `pets.zip`, `pets/cats/1.jpg`, `uploaded folder`.

    Locally, a path outside the data folder is shown as it is; in hosted mode, by its name only."""
    path, home = Path(source), paths.home().parts
    inner = path.parts[len(home) :] if path.parts[: len(home)] == home else ()
    for index, part in enumerate(inner[:-1]):
        if part in ("datasets", "uploads"):
            parts = [_user_name(inner[index + 1]), *inner[index + 2 :]]
            if len(parts) > 1 and parts[1] == parts[0]:  # a sample extracted into a folder of its own name
                del parts[1]
            return "/".join(parts)
    return path.name if config.hosted() or inner else str(path)


def redact(text: str) -> str:
    """`text` with every server path rewritten: data-folder paths as `display_name`s, other known folders
    (the Keras cache, the app, the temporary folder) by what they are. Locally `text` is returned as is."""
    if not config.hosted():
        return text
    text = re.sub(re.escape(str(paths.home())) + _PATH_END, lambda m: display_name(m.group()), text)
    for root, name in _known_roots():
        text = re.sub(re.escape(root) + _PATH_END, lambda m, name=name: f"{name}/{Path(m.group()).name}", text)
    return text


def _known_roots() -> list[tuple[str, str]]:
    keras = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    app = str(Path(__file__).resolve().parents[1])
    roots = [(keras, "<Keras cache>"), (app, "<app>"), (sys.prefix, "<python>")]
    roots += [("/tmp", "<temporary>"), (str(Path.home()), "<home>")]
    return sorted(((root, name) for root, name in roots if len(root) > 1), key=lambda pair: -len(pair[0]))


def _user_name(folder: str) -> str:
    """A stored dataset folder's name without the digest that keeps uploads apart."""
    if _FOLDER_UPLOAD.fullmatch(folder):
        return "uploaded folder"
    name = folder.removesuffix(".zip")
    for pattern in (_DIGEST_FIRST, _DIGEST_LAST):  # an extracted upload has both: <digest>-pets-<digest>
        if match := pattern.fullmatch(name):
            name = match.group(1)
    return name + (".zip" if folder.endswith(".zip") else "")
