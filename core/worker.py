"""Sweeps in a background process, so they outlive a page script, a page switch or a browser reload.

`start_sweep` records the run in the store, where it waits in the queue (`core.scheduler`) until a slot is
free; then `python -m core worker RUN_ID` runs it detached and writes progress and results to the store,
which any page (or tab) reads. Cancelling sets a flag in the store that the worker checks between batches
and epochs, keeping finished models; a run still waiting is simply taken out of the queue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time

import psutil

from core import scheduler
from core.finetune import MAX_MODELS_PER_JOB, FineTuneSettings, fine_tune, fine_tuned_name, source_result
from core.progress import Progress
from core.records import Failed, Run, RunStatus
from core.store import Store, StoreError, SweepBusy
from core.sweep import SweepSettings, run_sweep


def start_sweep(source: str, settings: SweepSettings, store: Store | None = None) -> int:
    """Queue a sweep in the store's workspace and return its run id at once; it starts when a slot is free.

    A workspace has at most one run queued or running at a time."""
    store = store or Store()
    _refuse_second_job(store)
    run_id = store.create_run(str(source), settings.to_dict())
    scheduler.dispatch(store)
    return run_id


def start_finetune(run_id: int, models: list[str], settings: FineTuneSettings, store: Store | None = None) -> None:
    """Queue fine-tuning `models` of the finished run `run_id`, one after the other, in the background.

    The run shows as queued, then running, while they wait and train (its progress, Cancel and liveness
    work as for a sweep), and returns to its own status after.
    """
    store = store or Store()
    run = store.run(run_id)
    if run is None or run.status.active:
        raise ValueError(f"Only a finished run can be fine-tuned. Received: run={run_id} ({run and run.status})")
    _refuse_second_job(store)
    if not 1 <= len(models) <= MAX_MODELS_PER_JOB:
        raise ValueError(f"Fine-tune 1 to {MAX_MODELS_PER_JOB} models at a time. Received: models={models}")
    for model in models:
        source_result(store, run_id, model)  # raises for a model that cannot be fine-tuned
    job = {"models": list(models), "settings": settings.to_dict(), "then": str(run.status)}
    store.update_run(
        run_id, status=RunStatus.QUEUED, job=job, pid=None, error=None, cancel_requested=False, enqueued=time.time()
    )
    scheduler.dispatch(store)


def _refuse_second_job(store: Store) -> None:
    if busy := active_run(store):
        raise ValueError(
            f"Run #{busy.id} is still {busy.status}: wait for it to finish or cancel it first. "
            f"Received: a second job while run #{busy.id} is active"
        )


def cancel(run_id: int, store: Store | None = None) -> None:
    """Ask the worker to stop after the current batch or epoch; finished models are kept. A run still waiting
    in the queue is cancelled at once (a fine-tuning job leaves its run as it was)."""
    store = store or Store()
    store.request_cancel(run_id)
    run = store.run(run_id)
    if run and run.status == RunStatus.QUEUED and store.process(run_id)[0] is None:
        then = RunStatus(run.job["then"]) if run.job else RunStatus.CANCELLED
        store.update_run(run_id, status=then, job=None)


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
    the store when it can be written). A run waiting in the queue has no process yet. Every page that
    shows a run asks this."""
    if not run.status.active:
        return run
    pid, started = store.process(run.id)
    if (pid is None and run.status == RunStatus.QUEUED) or scheduler.process_alive(pid, started):
        return run
    reason = scheduler.stopped_reason(run.id, pid)
    if not store.read_only:
        with contextlib.suppress(StoreError):  # a full disk: the page still shows the cause
            store.update_run(run.id, status=RunStatus.FAILED, error=reason)
    return dataclasses.replace(run, status=RunStatus.FAILED, error=reason)


def run_worker(run_id: int) -> int:
    """Entry point of the background process: run the stored sweep (or the run's fine-tuning job),
    recording any failure, then start the next run waiting in the queue."""
    store = Store()
    run = store.run(run_id)
    if run is None:
        print(f"no run {run_id} in {store.path}", file=sys.stderr)
        return 2
    try:
        scheduler.claim(store, run_id, os.getpid(), psutil.Process().create_time())
    except SweepBusy as busy:  # a command line sweep took the slot meanwhile: wait in the queue again
        store.update_run(run_id, status=RunStatus.QUEUED, pid=None)
        print(busy, file=sys.stderr)
        return 2
    try:
        if run.job:
            return _run_finetune(store, run_id, run.job)
        run_sweep(run.dataset, SweepSettings(**run.settings), store=store, run_id=run_id)
    except Exception as error:
        store.update_run(run_id, status=RunStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        scheduler.dispatch(store)
    return 0


def _run_finetune(store: Store, run_id: int, job: dict) -> int:
    """Fine-tune each model of the job in turn; a failure is recorded as that model's result, and the run
    returns to its own status at the end."""
    settings = FineTuneSettings(**job["settings"])
    stop = lambda: store.cancel_requested(run_id)  # noqa: E731
    try:
        for model in job["models"]:
            if stop():
                break
            try:
                fine_tune(run_id, model, settings, store=store, on_progress=_Throttled(store, run_id), should_stop=stop)
            except Exception as error:
                store.save_result(run_id, Failed(fine_tuned_name(model), f"{type(error).__name__}: {error}"))
    finally:
        store.update_run(run_id, status=RunStatus(job["then"]), pid=None, job=None)
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
