"""The experiment store: runs, their settings, per-model results, per-epoch history and live progress.

One SQLite file in the data directory (`paths.database()`), written as a sweep goes so that an
interrupted sweep keeps what finished. Every call opens its own short connection and is one transaction
(a crash never leaves half a row), so a background worker and any number of app sessions can share the
file. Records (`core.records`) go in and come out; they are JSON only inside the database.

Each run belongs to one workspace (`core.workspaces`): a `Store(workspace=...)` sees and touches only that
workspace's runs, which is how a hosted app keeps its visitors apart; `Store()` sees every run.

Faults become one `StoreError` naming the file and what to do: a lock held longer than `lock_wait`
seconds (SQLite retries until then), a damaged file (`start_fresh` keeps it aside and starts a new
one), a full disk. A store that cannot be written (a read-only data folder) still reads.
Which run may start, and in which process, is `core.scheduler`'s: it shares these tables.
"""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core import config, paths
from core.progress import Progress
from core.records import Result, Run, RunStatus, result_from_dict, result_to_dict

_RECORD_COLUMNS = ("report", "recommendation", "job")  # runs' columns that hold a record as JSON
_LOCKED = ("locked", "busy")
_READ_ONLY = ("readonly", "read-only", "unable to open")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    dataset TEXT NOT NULL,
    settings TEXT NOT NULL,
    report TEXT,
    recommendation TEXT,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_started REAL,
    workspace TEXT NOT NULL DEFAULT 'local',
    enqueued REAL,
    started REAL,
    job TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_workspace ON runs (workspace, id);
CREATE TABLE IF NOT EXISTS results (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, model)
);
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, model, epoch)
);
CREATE TABLE IF NOT EXISTS progress (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    updated REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shares (
    token TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    workspace TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
"""
# Columns added to `runs` after its first release, added to older stores on open.
_NEW_COLUMNS = {
    "pid_started": "REAL",
    "workspace": "TEXT NOT NULL DEFAULT 'local'",
    "enqueued": "REAL",
    "started": "REAL",
    "job": "TEXT",
}
_TABLES = {"runs", "results", "history", "progress", "workspaces", "shares"}


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message names the file, the cause and what to do.

    `kind` is one of "locked", "damaged", "read-only", "full".
    """

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class SweepBusy(StoreError):
    """Another sweep holds this data folder; `holder` is its run."""

    def __init__(self, message: str, holder: Run):
        super().__init__(message, "locked")
        self.holder = holder


class Store:
    """Runs and results in SQLite. `Store()` uses the default data directory.

    `lock_wait`: seconds a call waits for another process's lock before a `StoreError` (default
    `config.STORE_WAIT_SECONDS`; pages use a few seconds). `read_only` is True when the file can be read
    but not written (then every write raises a `StoreError`). `workspace`: when given, the store lists,
    reads and changes only that workspace's runs (another's run id reads as no run) and creates runs in it.
    """

    def __init__(self, path: str | Path | None = None, *, lock_wait: float | None = None, workspace: str | None = None):
        self.path = Path(path) if path else paths.database()
        self.workspace = workspace
        self.lock_wait = config.STORE_WAIT_SECONDS if lock_wait is None else lock_wait
        self.read_only = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create()
        except (OSError, StoreError) as error:
            problem = self._error(error) if isinstance(error, OSError) else error
            if problem.kind != "read-only" or not self.path.is_file():
                raise problem from None
            self.read_only = True  # the file is there but cannot be written: keep showing what it holds
            with self.transaction(write=False) as db:
                db.execute("SELECT COUNT(*) FROM runs").fetchone()

    def _create(self) -> None:
        """The tables, created or brought up to date; nothing is written when they already are."""
        with self.transaction(write=False) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        missing = {name: kind for name, kind in _NEW_COLUMNS.items() if name not in columns} if columns else {}
        if tables >= _TABLES and not missing:
            return
        upgrade = "".join(f"ALTER TABLE runs ADD COLUMN {name} {kind};" for name, kind in missing.items())
        try:
            with closing(self._open(None)) as db:
                db.execute("PRAGMA journal_mode=WAL")  # outside a transaction: then readers never wait for a writer
                db.executescript(f"BEGIN IMMEDIATE; {upgrade} {_SCHEMA} COMMIT;")  # columns first: the index needs them
        except sqlite3.Error as error:
            raise self._error(error) from None

    def everyone(self) -> Store:
        """The same store seeing every workspace's runs (for the scheduler and housekeeping)."""
        return Store(self.path, lock_wait=self.lock_wait) if self.workspace else self

    @contextmanager
    def transaction(self, write: bool = True, wait: float | None = None) -> Iterator[sqlite3.Connection]:
        """One transaction (BEGIN IMMEDIATE to write: it waits for the lock up front, never midway).

        For modules that keep their own rows in this file (`core.scheduler`, `core.workspaces`)."""
        try:
            with closing(self._open(wait)) as db:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    db.rollback()
                    raise
                db.commit()
        except (sqlite3.Error, json.JSONDecodeError, KeyError) as error:  # JSON, keys: a damaged row
            raise self._error(error) from None

    def _open(self, wait: float | None) -> sqlite3.Connection:
        timeout = self.lock_wait if wait is None else wait
        if not self.read_only:
            db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        else:  # without write access SQLite cannot make the WAL index: `immutable` reads the file as it is
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _error(self, error: Exception) -> StoreError:
        """What went wrong, for a person: which file, why, and what to do."""
        text = str(error)
        if isinstance(error, sqlite3.OperationalError) and any(word in text for word in _LOCKED):
            return StoreError(
                f"The store {self.path} is locked by another process and stayed locked for {self.lock_wait:g} s. "
                f"Try again in a moment. ({text})",
                "locked",
            )
        if "full" in text or getattr(error, "errno", None) == errno.ENOSPC:
            return StoreError(
                f"The disk holding the store {self.path} is full ({_free(self.path)} free). ({text})", "full"
            )
        if any(word in text for word in _READ_ONLY) or isinstance(error, PermissionError):
            return StoreError(
                f"The store {self.path} cannot be written (a read-only data folder?); existing results can still "
                f"be read. ({text})",
                "read-only",
            )
        return StoreError(
            f"The store {self.path} is damaged and cannot be read ({text}). Start a fresh one: the old file is "
            "kept beside it, renamed.",
            "damaged",
        )

    # Runs -------------------------------------------------------------------------------------------
    def create_run(
        self, dataset: str, settings: dict[str, Any], pid: int | None = None, pid_started: float | None = None
    ) -> int:
        """A new queued run in this store's workspace. With `pid` (and its start time), the run already has
        its process (a command line's own), so the scheduler never starts a worker for it."""
        now = time.time()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (created, updated, status, dataset, settings, workspace, enqueued, pid, pid_started) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, now, RunStatus.QUEUED, dataset, json.dumps(settings), self._workspace, now, pid, pid_started),
            )
            return int(cursor.lastrowid)

    @property
    def _workspace(self) -> str:
        return self.workspace or config.LOCAL_WORKSPACE

    def _owns(self, db: sqlite3.Connection, run_id: int) -> bool:
        """True when this store may see `run_id` (any run, for a store of every workspace)."""
        if self.workspace is None:
            return True
        row = db.execute("SELECT workspace FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row) and row[0] == self.workspace

    def _own(self, db: sqlite3.Connection, run_id: int) -> None:
        """Refuse to change another workspace's run."""
        if not self._owns(db, run_id):
            raise ValueError(f"No run #{run_id} in this workspace. Received: run={run_id}")

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set any of: status, report, recommendation, error, pid, job (records are stored as JSON). A new
        `pid` without `pid_started` (its process's start time) clears the old one."""
        allowed = {"status", "report", "recommendation", "error", "pid", "pid_started", "cancel_requested", "job"}
        allowed |= {"enqueued", "started"}
        if not fields.keys() <= allowed:
            raise ValueError(f"update_run takes {sorted(allowed)}. Received: {sorted(fields)}")
        if "status" in fields and fields["status"] not in tuple(RunStatus):
            raise ValueError(
                f"status must be one of {[str(s) for s in RunStatus]}. Received: status={fields['status']}"
            )
        if "pid" in fields:
            fields.setdefault("pid_started", None)
        values = [_json(value) if name in _RECORD_COLUMNS else value for name, value in fields.items()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as db:
            self._own(db, run_id)
            db.execute(f"UPDATE runs SET {assignments}, updated = ? WHERE id = ?", (*values, time.time(), run_id))

    def request_cancel(self, run_id: int) -> None:
        with self.transaction() as db:
            self._own(db, run_id)
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        with self.transaction(write=False) as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def run(self, run_id: int) -> Run | None:
        with self.transaction(write=False) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            return run_record(row) if row and self._owns(db, run_id) else None

    def runs(self, limit: int = 100) -> list[Run]:
        """The most recent runs first (of this store's workspace, when it has one)."""
        where, args = ("WHERE workspace = ?", [self.workspace]) if self.workspace else ("", [])
        with self.transaction(write=False) as db:
            rows = db.execute(f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
            return [run_record(row) for row in rows]

    def delete_run(self, run_id: int) -> None:
        """Remove a run with its results, history, progress and share links (its files are `core.storage`'s
        to delete)."""
        tables = (("results", "run_id"), ("history", "run_id"), ("progress", "run_id"), ("shares", "run_id"))
        with self.transaction() as db:
            self._own(db, run_id)
            for table, key in (*tables, ("runs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {key} = ?", (run_id,))

    def process(self, run_id: int) -> tuple[int | None, float | None]:
        """The process running `run_id`: its pid and start time (`psutil.Process.create_time`), when known."""
        with self.transaction(write=False) as db:
            row = db.execute("SELECT pid, pid_started FROM runs WHERE id = ?", (run_id,)).fetchone()
        return (row["pid"], row["pid_started"]) if row else (None, None)

    # Results and history ----------------------------------------------------------------------------
    def save_result(self, run_id: int, result: Result) -> None:
        with self.transaction() as db:
            self._own(db, run_id)
            position = db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO results (run_id, model, position, status, data) VALUES (?, ?, ?, ?, ?)",
                (run_id, result.model, position, result.status, json.dumps(result_to_dict(result))),
            )

    def results(self, run_id: int) -> list[Result]:
        with self.transaction(write=False) as db:
            rows = db.execute("SELECT data FROM results WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
            rows = rows if self._owns(db, run_id) else []
            return [result_from_dict(json.loads(row["data"])) for row in rows]

    def save_epoch(self, run_id: int, model: str, epoch: int, metrics: dict[str, float]) -> None:
        with self.transaction() as db:
            self._own(db, run_id)
            db.execute(
                "INSERT OR REPLACE INTO history (run_id, model, epoch, metrics) VALUES (?, ?, ?, ?)",
                (run_id, model, epoch, json.dumps(metrics)),
            )

    def clear_history(self, run_id: int, model: str) -> None:
        """Forget the epochs of `model` in run `run_id` (before it is trained again)."""
        with self.transaction() as db:
            self._own(db, run_id)
            db.execute("DELETE FROM history WHERE run_id = ? AND model = ?", (run_id, model))

    def history(self, run_id: int, model: str | None = None) -> list[dict[str, Any]]:
        """Per-epoch metrics as rows `{model, epoch, loss, accuracy, val_loss, val_accuracy}`."""
        query, args = "SELECT * FROM history WHERE run_id = ?", [run_id]
        if model is not None:
            query, args = query + " AND model = ?", [*args, model]
        with self.transaction(write=False) as db:
            rows = db.execute(query + " ORDER BY model, epoch", args).fetchall() if self._owns(db, run_id) else []
            return [{"model": row["model"], "epoch": row["epoch"], **json.loads(row["metrics"])} for row in rows]

    # Live progress ----------------------------------------------------------------------------------
    def set_progress(self, run_id: int, progress: Progress) -> None:
        """Live progress is ephemeral: it waits at most a second for a lock (the next update comes soon)."""
        with self.transaction(wait=min(1.0, self.lock_wait)) as db:
            self._own(db, run_id)
            db.execute(
                "INSERT OR REPLACE INTO progress (run_id, updated, data) VALUES (?, ?, ?)",
                (run_id, time.time(), json.dumps(progress.to_dict())),
            )

    def progress(self, run_id: int) -> Progress | None:
        with self.transaction(write=False) as db:
            row = db.execute("SELECT data FROM progress WHERE run_id = ?", (run_id,)).fetchone()
            return Progress.from_dict(json.loads(row["data"])) if row and self._owns(db, run_id) else None


def start_fresh(path: str | Path | None = None) -> Path:
    """Set a damaged store aside (renamed, with its journal files) so that the next `Store()` starts empty.

    Returns where the old file now is: `transferbench.db.damaged-<time>`. Nothing is deleted.
    """
    path = Path(path) if path else paths.database()
    kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("-wal", "-shm", ""):  # the main file last: while it is there, it is the store
        journal = path.with_name(path.name + suffix)
        if journal.exists():
            journal.replace(kept.with_name(kept.name + suffix))
    return kept


def _free(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path.parent).free / config.MB:,.1f} MB"
    except OSError:
        return "unknown"


def _json(record: Any) -> str | None:
    """A record (a dataclass, or a plain dict such as a job) as JSON; None stays NULL."""
    return None if record is None else json.dumps(record if isinstance(record, dict) else asdict(record))


def run_record(row: sqlite3.Row) -> Run:
    """A `runs` row as a `Run`."""
    run = dict(row)
    for key in ("settings", "report", "recommendation", "job"):
        if run[key] is not None:
            run[key] = json.loads(run[key])
    return Run.from_dict(run)
