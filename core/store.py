"""The experiment store: runs, their settings, per-model results, per-epoch history and live progress.

One SQLite file in the data directory (`paths.database()`), written as a sweep goes so that an
interrupted sweep keeps what finished. Every call opens its own short connection, so a background
worker and any number of app sessions can share the file. Records (`core.records`) go in and come out;
they are JSON only inside the database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core import paths
from core.progress import Progress
from core.records import Result, Run, RunStatus, result_from_dict, result_to_dict

_RECORD_COLUMNS = ("report", "recommendation")  # runs' columns that hold a record as JSON

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
    pid INTEGER
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


class Store:
    """Runs and results in SQLite. `Store()` uses the default data directory."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else paths.database()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            with db:  # one transaction per call
                yield db

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
        """Set any of: status, report, recommendation, error, pid (records are stored as JSON)."""
        allowed = {"status", "report", "recommendation", "error", "pid"}
        if not fields.keys() <= allowed:
            raise ValueError(f"update_run takes {sorted(allowed)}. Received: {sorted(fields)}")
        if "status" in fields and fields["status"] not in tuple(RunStatus):
            raise ValueError(
                f"status must be one of {[str(s) for s in RunStatus]}. Received: status={fields['status']}"
            )
        values = [_json(value) if name in _RECORD_COLUMNS else value for name, value in fields.items()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {assignments}, updated = ? WHERE id = ?", (*values, time.time(), run_id))

    def request_cancel(self, run_id: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def run(self, run_id: int) -> Run | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def runs(self, limit: int = 100) -> list[Run]:
        """The most recent runs first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_run(row) for row in rows]

    # Results and history ----------------------------------------------------------------------------
    def save_result(self, run_id: int, result: Result) -> None:
        with self._connect() as db:
            position = db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO results (run_id, model, position, status, data) VALUES (?, ?, ?, ?, ?)",
                (run_id, result.model, position, result.status, json.dumps(result_to_dict(result))),
            )

    def results(self, run_id: int) -> list[Result]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM results WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
        return [result_from_dict(json.loads(row["data"])) for row in rows]

    def save_epoch(self, run_id: int, model: str, epoch: int, metrics: dict[str, float]) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO history (run_id, model, epoch, metrics) VALUES (?, ?, ?, ?)",
                (run_id, model, epoch, json.dumps(metrics)),
            )

    def history(self, run_id: int, model: str | None = None) -> list[dict[str, Any]]:
        """Per-epoch metrics as rows `{model, epoch, loss, accuracy, val_loss, val_accuracy}`."""
        query, args = "SELECT * FROM history WHERE run_id = ?", [run_id]
        if model is not None:
            query, args = query + " AND model = ?", [*args, model]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY model, epoch", args).fetchall()
        return [{"model": row["model"], "epoch": row["epoch"], **json.loads(row["metrics"])} for row in rows]

    # Live progress ----------------------------------------------------------------------------------
    def set_progress(self, run_id: int, progress: Progress) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO progress (run_id, updated, data) VALUES (?, ?, ?)",
                (run_id, time.time(), json.dumps(progress.to_dict())),
            )

    def progress(self, run_id: int) -> Progress | None:
        with self._connect() as db:
            row = db.execute("SELECT data FROM progress WHERE run_id = ?", (run_id,)).fetchone()
        return Progress.from_dict(json.loads(row["data"])) if row else None


def _json(record: Any) -> str | None:
    """A record (a dataclass) as JSON; None stays NULL."""
    return None if record is None else json.dumps(asdict(record))


def _run(row: sqlite3.Row) -> Run:
    run = dict(row)
    for key in ("settings", "report", "recommendation"):
        if run[key] is not None:
            run[key] = json.loads(run[key])
    return Run.from_dict(run)
