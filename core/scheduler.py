"""The queue of runs, and the processes that run them.

Runs started from the app (sweeps, and fine-tuning jobs on finished runs) wait in one first-in-first-out
queue shared by every workspace. `dispatch` starts the oldest waiting runs while fewer than `slots()`
processes run, in one store transaction, so two pages dispatching at once never start a run twice; a
worker dispatches again when it ends, so the queue moves on with no page open. A command line sweep takes
a slot in its own process with `claim`.

A run's process is known by its pid and its start time, since pids are reused. A process found gone has
its run marked failed with the reason, which frees its slot. Workers start detached, in their own session,
and a thread waits for each one so that none is left a zombie.

A run's state in the queue, from its row: status "queued" without a pid is waiting; "queued" with a pid
is starting (its worker is loading); "running" holds a slot until its process ends.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from core import config, paths
from core.progress import Progress
from core.records import RunStatus
from core.store import Store, SweepBusy, run_record

_REPO = Path(__file__).resolve().parents[1]
_FULL_DISK_BYTES = 1024**2  # less free space than this on the data folder's disk counts as a full disk
_LOG_TAIL_BYTES = 4096
_HISTORY = 20  # finished runs that the queue's time estimate is taken from


@dataclass(frozen=True)
class Place:
    """Where a waiting run stands: `ahead` runs (running or waiting) go before it, so it is number `ahead + 1`
    of the queue's `length`; `wait_seconds` is None without a finished run to take a pace from."""

    ahead: int
    length: int
    wait_seconds: float | None


def slots() -> int:
    """How many runs may run at once (`TRANSFERBENCH_WORKERS`, default 1: a sweep takes most of a small host)."""
    return max(1, int(config.number(config.WORKERS_ENV, 1)))


def dispatch(store: Store) -> list[int]:
    """Start waiting runs, oldest first, while a slot is free; runs whose process is gone are failed on the
    way. Returns the ids started."""
    everyone = store.everyone()
    if not any(_dead(row) or row["pid"] is None for row in _active_rows(everyone)):
        return []  # nothing waiting and nothing dead: no write needed
    started = []
    with everyone.transaction() as db:
        busy = 0
        for row in _active_rows(everyone, db):
            if row["pid"] is None:
                continue
            if _dead(row):
                _fail(db, row)
            else:
                busy += 1
        waiting = [row for row in _active_rows(everyone, db) if row["pid"] is None]
        for row in waiting[: max(0, slots() - busy)]:
            process = spawn(["worker", str(row["id"])], paths.worker_log(row["id"]))
            db.execute(
                "UPDATE runs SET pid = ?, pid_started = ?, started = ?, updated = ? WHERE id = ?",
                (process.pid, _start_time(process.pid), time.time(), time.time(), row["id"]),
            )
            started.append(row["id"])
    return started


def claim(store: Store, run_id: int, pid: int, started: float) -> None:
    """Make `run_id` a running run in process `pid` (started at `started`), if a slot is free.

    In one transaction: raises `SweepBusy` naming a holder when `slots()` other runs' processes are alive;
    active runs whose process is gone are marked failed on the way. A process runs one run at a time, so
    an earlier run of the same process is over.
    """
    everyone = store.everyone()
    with everyone.transaction() as db:
        holders = []
        for row in _active_rows(everyone, db):
            if row["id"] == run_id or row["pid"] is None:
                continue
            if row["pid"] == pid or _dead(row):
                _fail(db, row)
            else:
                holders.append(row)
        if len(holders) >= slots():
            holder = run_record(holders[0])
            raise SweepBusy(
                f"Another sweep is running on this data folder ({store.path.parent}): run #{holder.id} "
                f"on {holder.dataset}, {_holder_text(holder.pid)}. Wait for it to finish or cancel it.",
                holder,
            )
        db.execute(
            "UPDATE runs SET status = ?, pid = ?, pid_started = ?, started = COALESCE(started, ?), updated = ? "
            "WHERE id = ?",
            (RunStatus.RUNNING, pid, started, time.time(), time.time(), run_id),
        )


def place(store: Store, run_id: int) -> Place | None:
    """Where the waiting run `run_id` stands in the queue, with an estimate of its wait (None: not waiting)."""
    everyone = store.everyone()
    rows = _active_rows(everyone)
    started = [row for row in rows if row["pid"] is not None]
    waiting = [row for row in rows if row["pid"] is None]
    index = next((i for i, row in enumerate(waiting) if row["id"] == run_id), None)
    if index is None:
        return None
    per_model = _seconds_per_model(everyone)
    if per_model is None:
        return Place(len(started) + index, len(rows), None)
    free_at = [_time_left(everyone, row, per_model) for row in started]  # when each slot frees up
    free_at += [0.0] * max(0, slots() - len(free_at))
    heapq.heapify(free_at)
    for row in waiting[:index]:
        heapq.heappush(free_at, heapq.heappop(free_at) + per_model * _models(row))
    return Place(len(started) + index, len(rows), free_at[0])


def spawn(arguments: list[str], log_path: Path) -> subprocess.Popen:
    """Start `python -m core ARGUMENTS` detached, logging to `log_path`; a thread waits for it (no zombie)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", *arguments],
            cwd=_REPO,
            env={**os.environ, paths.HOME_ENV: str(paths.home()), "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the app's script thread or session
        )
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    return process


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


def stopped_reason(run_id: int, pid: int | None) -> str:
    """Why a run's process stopped, as far as can be told: a full disk, else the end of its worker log."""
    log = paths.worker_log(run_id)
    try:
        with log.open("rb") as file:
            file.seek(max(0, log.stat().st_size - _LOG_TAIL_BYTES))
            tail = file.read().decode(errors="replace")
    except OSError:
        tail = ""
    home = paths.home()
    free = shutil.disk_usage(home).free
    if free < _FULL_DISK_BYTES or "No space left on device" in tail or "database or disk is full" in tail:
        return (
            f"the disk holding {home} is full ({free / 1024**2:.1f} MB free): the sweep could not write its "
            "results. Free some space and start it again."
        )
    who = f"the background worker (pid {pid})" if log.exists() else f"the process running it (pid {pid})"
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    return f"{who} stopped unexpectedly" + (f"; its log ends: {last}" if last else "")


def _active_rows(store: Store, db: sqlite3.Connection | None = None) -> list[sqlite3.Row]:
    """Queued and running runs of every workspace, in queue order."""
    query = "SELECT * FROM runs WHERE status IN (?, ?) ORDER BY COALESCE(enqueued, created), id"
    if db is not None:
        return db.execute(query, (RunStatus.QUEUED, RunStatus.RUNNING)).fetchall()
    with store.transaction(write=False) as read:
        return read.execute(query, (RunStatus.QUEUED, RunStatus.RUNNING)).fetchall()


def _dead(row: sqlite3.Row) -> bool:
    return row["pid"] is not None and not process_alive(row["pid"], row["pid_started"])


def _fail(db: sqlite3.Connection, row: sqlite3.Row) -> None:
    """Mark a run whose process is gone failed (a fine-tuning job returns its run to its own status)."""
    job = json.loads(row["job"]) if row["job"] else None
    if job:
        db.execute(
            "UPDATE runs SET status = ?, job = NULL, pid = NULL, updated = ? WHERE id = ?",
            (job["then"], time.time(), row["id"]),
        )
        return
    db.execute(
        "UPDATE runs SET status = ?, error = ?, updated = ? WHERE id = ?",
        (RunStatus.FAILED, stopped_reason(row["id"], row["pid"]), time.time(), row["id"]),
    )


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:  # already ended: the next look finds it gone either way
        return None


def _models(row: sqlite3.Row) -> int:
    job = json.loads(row["job"]) if row["job"] else None
    return len(job["models"]) if job else len(json.loads(row["settings"])["models"])


def _seconds_per_model(store: Store) -> float | None:
    """The median time one model took in the last finished runs here (None before any)."""
    with store.transaction(write=False) as db:
        rows = db.execute(
            "SELECT * FROM runs WHERE status = ? AND started IS NOT NULL ORDER BY id DESC LIMIT ?",
            (RunStatus.DONE, _HISTORY),
        ).fetchall()
    durations = [(row["updated"] - row["started"]) / _models(row) for row in rows]
    return statistics.median(durations) if durations else None


def _time_left(store: Store, row: sqlite3.Row, per_model: float) -> float:
    """About how long a started run still takes: from its own pace when it has one, else from history."""
    progress: Progress | None = store.progress(row["id"])
    remaining = progress.remaining_seconds() if progress else None
    if remaining is not None:
        return remaining
    return max(0.0, per_model * _models(row) - (time.time() - (row["started"] or time.time())))


def _holder_text(pid: int | None) -> str:
    """`pid 1234 (python -m core sweep data/ --models ...)`: which process holds a sweep."""
    try:
        command = " ".join(psutil.Process(pid).cmdline()[-8:]) if pid else ""
    except psutil.Error:
        command = ""
    return f"pid {pid} ({command})" if command else f"pid {pid}" if pid else "starting"
