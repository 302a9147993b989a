"""The experiment store: runs, their settings, per-model results, per-epoch history and live progress.

One SQLite file in the data directory (`paths.database()`), written as a sweep goes so that an
interrupted sweep keeps what finished. Every call opens its own short connection and is one transaction
(a crash never leaves half a row), so a background worker and any number of app sessions can share the
file. Records (`core.records`) go in and come out; they are JSON only inside the database.

Faults become one `StoreError` naming the file and what to do: a lock held longer than `lock_wait`
seconds (SQLite retries until then), a damaged file (`start_fresh` keeps it aside and starts a new
one), a full disk. A store that cannot be written (a read-only data folder) still reads.
`claim` makes a run the one sweep of its data folder, naming the holder when another process has it.
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

import psutil

from core import config, paths
from core.progress import Progress
from core.records import Result, Run, RunStatus, result_from_dict, result_to_dict

_RECORD_COLUMNS = ("report", "recommendation")  # runs' columns that hold a record as JSON
STARTING_SECONDS = 30  # a queued run without a process yet counts as starting for this long
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
    pid_started REAL
);
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
"""


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
    but not written (then every write raises a `StoreError`).
    """

    def __init__(self, path: str | Path | None = None, *, lock_wait: float | None = None):
        self.path = Path(path) if path else paths.database()
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
            with self._connect(write=False) as db:
                db.execute("SELECT COUNT(*) FROM runs").fetchone()

    def _create(self) -> None:
        """The tables, created or brought up to date; nothing is written when they already are."""
        with self._connect(write=False) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        if tables >= {"runs", "results", "history", "progress"} and "pid_started" in columns:
            return
        upgrade = (
            "ALTER TABLE runs ADD COLUMN pid_started REAL;" if "runs" in tables and "pid_started" not in columns else ""
        )
        try:
            with closing(self._open(None)) as db:
                db.execute("PRAGMA journal_mode=WAL")  # outside a transaction: then readers never wait for a writer
                db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} {upgrade} COMMIT;")
        except sqlite3.Error as error:
            raise self._error(error) from None

    @contextmanager
    def _connect(self, write: bool = True, wait: float | None = None) -> Iterator[sqlite3.Connection]:
        """One transaction (BEGIN IMMEDIATE to write: it waits for the lock up front, never midway)."""
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
    def create_run(self, dataset: str, settings: dict[str, Any]) -> int:
        now = time.time()
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO runs (created, updated, status, dataset, settings) VALUES (?, ?, ?, ?, ?)",
                (now, now, RunStatus.QUEUED, dataset, json.dumps(settings)),
            )
            return int(cursor.lastrowid)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set any of: status, report, recommendation, error, pid (records are stored as JSON). A new `pid`
        without `pid_started` (its process's start time) clears the old one."""
        allowed = {"status", "report", "recommendation", "error", "pid", "pid_started", "cancel_requested"}
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
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {assignments}, updated = ? WHERE id = ?", (*values, time.time(), run_id))

    def request_cancel(self, run_id: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        with self._connect(write=False) as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def run(self, run_id: int) -> Run | None:
        with self._connect(write=False) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            return _run(row) if row else None

    def runs(self, limit: int = 100) -> list[Run]:
        """The most recent runs first."""
        with self._connect(write=False) as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            return [_run(row) for row in rows]

    def delete_run(self, run_id: int) -> None:
        """Remove a run with its results, history and progress (its files are `core.storage`'s to delete)."""
        with self._connect() as db:
            for table, key in (("results", "run_id"), ("history", "run_id"), ("progress", "run_id"), ("runs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {key} = ?", (run_id,))

    def process(self, run_id: int) -> tuple[int | None, float | None]:
        """The process running `run_id`: its pid and start time (`psutil.Process.create_time`), when known."""
        with self._connect(write=False) as db:
            row = db.execute("SELECT pid, pid_started FROM runs WHERE id = ?", (run_id,)).fetchone()
        return (row["pid"], row["pid_started"]) if row else (None, None)

    def claim(self, run_id: int, pid: int, started: float) -> None:
        """Make `run_id` the one sweep running on this data folder, in process `pid` (started at `started`).

        In one transaction: raises `SweepBusy` naming the holder when another active run's process is
        alive (or still starting); active runs whose process is gone are marked failed on the way.
        """
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM runs WHERE status IN (?, ?) AND id != ?", (RunStatus.QUEUED, RunStatus.RUNNING, run_id)
            ).fetchall()
            for row in rows:
                holder = _run(row)
                starting = row["pid"] is None and time.time() - row["created"] < STARTING_SECONDS
                same = row["pid"] == pid  # a process runs one sweep at a time: its earlier run is over
                if starting or (not same and process_alive(row["pid"], row["pid_started"])):
                    raise SweepBusy(
                        f"Another sweep is running on this data folder ({self.path.parent}): run #{holder.id} "
                        f"on {holder.dataset}, {_holder_text(row['pid'])}. Wait for it to finish or cancel it.",
                        holder,
                    )
                db.execute(
                    "UPDATE runs SET status = ?, error = ?, updated = ? WHERE id = ?",
                    (
                        RunStatus.FAILED,
                        f"its process (pid {row['pid']}) stopped unexpectedly",
                        time.time(),
                        row["id"],
                    ),
                )
            db.execute(
                "UPDATE runs SET status = ?, pid = ?, pid_started = ?, updated = ? WHERE id = ?",
                (RunStatus.RUNNING, pid, started, time.time(), run_id),
            )

    # Results and history ----------------------------------------------------------------------------
    def save_result(self, run_id: int, result: Result) -> None:
        with self._connect() as db:
            position = db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO results (run_id, model, position, status, data) VALUES (?, ?, ?, ?, ?)",
                (run_id, result.model, position, result.status, json.dumps(result_to_dict(result))),
            )

    def results(self, run_id: int) -> list[Result]:
        with self._connect(write=False) as db:
            rows = db.execute("SELECT data FROM results WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
            return [result_from_dict(json.loads(row["data"])) for row in rows]

    def save_epoch(self, run_id: int, model: str, epoch: int, metrics: dict[str, float]) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO history (run_id, model, epoch, metrics) VALUES (?, ?, ?, ?)",
                (run_id, model, epoch, json.dumps(metrics)),
            )

    def clear_history(self, run_id: int, model: str) -> None:
        """Forget the epochs of `model` in run `run_id` (before it is trained again)."""
        with self._connect() as db:
            db.execute("DELETE FROM history WHERE run_id = ? AND model = ?", (run_id, model))

    def history(self, run_id: int, model: str | None = None) -> list[dict[str, Any]]:
        """Per-epoch metrics as rows `{model, epoch, loss, accuracy, val_loss, val_accuracy}`."""
        query, args = "SELECT * FROM history WHERE run_id = ?", [run_id]
        if model is not None:
            query, args = query + " AND model = ?", [*args, model]
        with self._connect(write=False) as db:
            rows = db.execute(query + " ORDER BY model, epoch", args).fetchall()
            return [{"model": row["model"], "epoch": row["epoch"], **json.loads(row["metrics"])} for row in rows]

    # Live progress ----------------------------------------------------------------------------------
    def set_progress(self, run_id: int, progress: Progress) -> None:
        """Live progress is ephemeral: it waits at most a second for a lock (the next update comes soon)."""
        with self._connect(wait=min(1.0, self.lock_wait)) as db:
            db.execute(
                "INSERT OR REPLACE INTO progress (run_id, updated, data) VALUES (?, ?, ?)",
                (run_id, time.time(), json.dumps(progress.to_dict())),
            )

    def progress(self, run_id: int) -> Progress | None:
        with self._connect(write=False) as db:
            row = db.execute("SELECT data FROM progress WHERE run_id = ?", (run_id,)).fetchone()
            return Progress.from_dict(json.loads(row["data"])) if row else None


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


def process_alive(pid: int | None, started: float | None) -> bool:
    """True while process `pid` runs and, when `started` is known, is the same process (pids are reused)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > 1:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _holder_text(pid: int | None) -> str:
    """`pid 1234 (python -m core sweep data/ --models ...)`: which process holds a sweep."""
    try:
        command = " ".join(psutil.Process(pid).cmdline()[-8:]) if pid else ""
    except psutil.Error:
        command = ""
    return f"pid {pid} ({command})" if command else f"pid {pid}" if pid else "starting"


def _free(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path.parent).free / config.MB:,.1f} MB"
    except OSError:
        return "unknown"


def _json(record: Any) -> str | None:
    """A record (a dataclass) as JSON; None stays NULL."""
    return None if record is None else json.dumps(asdict(record))


def _run(row: sqlite3.Row) -> Run:
    run = dict(row)
    for key in ("settings", "report", "recommendation"):
        if run[key] is not None:
            run[key] = json.loads(run[key])
    return Run.from_dict(run)
