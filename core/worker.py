"""Sweeps in a background process, so they outlive a page script, a page switch or a browser reload.

`start_sweep` records the run in the store and starts `python -m core worker RUN_ID` detached; the
worker writes progress and results to the store, which any page (or tab) reads. Cancelling sets a flag
in the store that the worker checks between batches and epochs, keeping finished models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from core import paths
from core.finetune import MAX_MODELS_PER_JOB, FineTuneSettings, fine_tune, fine_tuned_name, source_result
from core.progress import Progress
from core.records import Failed, Run, RunStatus
from core.store import STARTING_SECONDS, Store, StoreError, SweepBusy, process_alive
from core.sweep import SweepSettings, run_sweep

_REPO = Path(__file__).resolve().parents[1]
_FULL_DISK_BYTES = 1024**2  # less free space than this on the data folder's disk counts as a full disk
_LOG_TAIL_BYTES = 4096


def start_sweep(source: str, settings: SweepSettings, store: Store | None = None) -> int:
    """Start a sweep in the background and return its run id at once."""
    store = store or Store()
    run_id = store.create_run(str(source), settings.to_dict())
    store.update_run(run_id, pid=_spawn(run_id))
    return run_id


def start_finetune(run_id: int, models: list[str], settings: FineTuneSettings, store: Store | None = None) -> None:
    """Fine-tune `models` of the finished run `run_id` in the background, one after the other.

    The run shows as running again while they train (its progress, Cancel and liveness work as for a
    sweep), and returns to its own status after.
    """
    store = store or Store()
    run = store.run(run_id)
    if run is None or run.status.active:
        raise ValueError(f"Only a finished run can be fine-tuned. Received: run={run_id} ({run and run.status})")
    if busy := active_run(store):
        raise ValueError(
            f"Run #{busy.id} is running on this data folder: wait for it or cancel it. Received: run={run_id}"
        )
    if not 1 <= len(models) <= MAX_MODELS_PER_JOB:
        raise ValueError(f"Fine-tune 1 to {MAX_MODELS_PER_JOB} models at a time. Received: models={models}")
    for model in models:
        source_result(store, run_id, model)  # raises for a model that cannot be fine-tuned
    job = {"models": list(models), "settings": settings.to_dict(), "then": str(run.status)}
    pid = _spawn(run_id, "--finetune", json.dumps(job))
    store.update_run(run_id, status=RunStatus.RUNNING, pid=pid, error=None, cancel_requested=False)


def _spawn(run_id: int, *arguments: str) -> int:
    """Start `python -m core worker RUN_ID [arguments]`, detached, logging to the run's worker log."""
    log_path = paths.worker_log(run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", "worker", str(run_id), *arguments],
            cwd=_REPO,
            env={**os.environ, paths.HOME_ENV: str(paths.home()), "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the app's script thread or session
        )
    return process.pid


def cancel(run_id: int, store: Store | None = None) -> None:
    """Ask the worker to stop after the current batch or epoch; finished models are kept."""
    (store or Store()).request_cancel(run_id)


def active_run(store: Store | None = None) -> Run | None:
    """The newest queued or running run whose process (the app's worker or a command line) is alive; runs
    whose process is gone are marked failed, with the cause."""
    store = store or Store()
    for run in store.runs(limit=20):
        if (run := checked(run, store)).status.active:
            return run
    return None


def checked(run: Run, store: Store) -> Run:
    """`run` as it really is: an active run whose process is gone is failed, with why (also recorded in
    the store when it can be written). Every page that shows a run asks this."""
    if not run.status.active:
        return run
    pid, started = store.process(run.id)
    starting = pid is None and time.time() - run.created < STARTING_SECONDS  # between create and spawn
    if starting or process_alive(pid, started):
        return run
    reason = stopped_reason(run.id, pid)
    if not store.read_only:
        with contextlib.suppress(StoreError):  # a full disk: the page still shows the cause
            store.update_run(run.id, status=RunStatus.FAILED, error=reason)
    return dataclasses.replace(run, status=RunStatus.FAILED, error=reason)


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


def run_worker(run_id: int, finetune: str | None = None) -> int:
    """Entry point of the background process: run the stored sweep (or the fine-tuning job `finetune`,
    as JSON), recording any failure."""
    store = Store()
    run = store.run(run_id)
    if run is None:
        print(f"no run {run_id} in {store.path}", file=sys.stderr)
        return 2
    if finetune:
        return _run_finetune(store, run_id, json.loads(finetune))
    try:
        run_sweep(run.dataset, SweepSettings(**run.settings), store=store, run_id=run_id)
    except Exception as error:
        store.update_run(run_id, status=RunStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    return 0


def _run_finetune(store: Store, run_id: int, job: dict) -> int:
    """Fine-tune each model of the job in turn; a failure is recorded as that model's result, and the run
    returns to its own status at the end."""
    settings = FineTuneSettings(**job["settings"])
    try:  # the one job on this data folder, like a sweep
        store.claim(run_id, os.getpid(), psutil.Process().create_time())
    except SweepBusy as busy:
        store.update_run(run_id, status=RunStatus(job["then"]), pid=None)
        print(busy, file=sys.stderr)
        return 2
    stop = lambda: store.cancel_requested(run_id)  # noqa: E731
    for model in job["models"]:
        if stop():
            break
        try:
            fine_tune(run_id, model, settings, store=store, on_progress=_Throttled(store, run_id), should_stop=stop)
        except Exception as error:
            store.save_result(run_id, Failed(fine_tuned_name(model), f"{type(error).__name__}: {error}"))
    store.update_run(run_id, status=RunStatus(job["then"]), pid=None)
    return 0


class _Throttled:
    """Writes progress to the store at most twice a second, and always at a stage's start and end."""

    def __init__(self, store: Store, run_id: int):
        self.store, self.run_id, self.last = store, run_id, 0.0

    def __call__(self, progress: Progress) -> None:
        edge = progress.done in (0, progress.total)
        if edge or time.monotonic() - self.last > 0.5:
            self.store.set_progress(self.run_id, progress)
            self.last = time.monotonic()
