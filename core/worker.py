"""Sweeps in a background process, so they outlive a page script, a page switch or a browser reload.

`start_sweep` records the run in the store and starts `python -m core worker RUN_ID` detached; the
worker writes progress and results to the store, which any page (or tab) reads. Cancelling sets a flag
in the store that the worker checks between batches and epochs, keeping finished models.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from core import paths
from core.records import Run, RunStatus
from core.store import Store
from core.sweep import SweepSettings, run_sweep

_REPO = Path(__file__).resolve().parents[1]


def start_sweep(source: str, settings: SweepSettings, store: Store | None = None) -> int:
    """Start a sweep in the background and return its run id at once."""
    store = store or Store()
    run_id = store.create_run(str(source), settings.to_dict())
    log_path = paths.worker_log(run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", "worker", str(run_id)],
            cwd=_REPO,
            env={**os.environ, paths.HOME_ENV: str(paths.home()), "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the app's script thread or session
        )
    store.update_run(run_id, pid=process.pid)
    return run_id


def cancel(run_id: int, store: Store | None = None) -> None:
    """Ask the worker to stop after the current batch or epoch; finished models are kept."""
    (store or Store()).request_cancel(run_id)


def active_run(store: Store | None = None) -> Run | None:
    """The newest queued or running run whose worker is alive; runs whose worker died are marked failed."""
    store = store or Store()
    for run in store.runs(limit=20):
        if not run.status.active:
            continue
        starting = run.pid is None and time.time() - run.created < 30  # between create and spawn
        if starting or _alive(run.pid):
            return run
        store.update_run(run.id, status=RunStatus.FAILED, error="the background worker stopped unexpectedly")
    return None


def run_worker(run_id: int) -> int:
    """Entry point of the background process: run the stored sweep, recording any failure."""
    store = Store()
    run = store.run(run_id)
    if run is None:
        print(f"no run {run_id} in {store.path}", file=sys.stderr)
        return 2
    try:
        run_sweep(run.dataset, SweepSettings(**run.settings), store=store, run_id=run_id)
    except Exception as error:
        store.update_run(run_id, status=RunStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    return 0


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
