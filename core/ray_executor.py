"""Sweeps on Ray: each model of a sweep (and of each screening round) as one Ray task, here or on a cluster.

`run_on_ray` is what `_Sweep.run_models` does for `executor="ray"`. The driver (the process running the
sweep) alone writes the store: a task reports its progress and its head's epochs to a `Board` actor, which
the driver reads every `POLL_SECONDS` and writes to the store, and Cancel reaches the tasks through the
same actor, which they read between batches and epochs (at most every `POLL_SECONDS`). A task that raises,
or whose worker dies, fails its model alone. Tasks stream their images (no decoded-pixel files) and read
and write the caches of the data folder, so on a cluster `TRANSFERBENCH_HOME`, the datasets and
`KERAS_HOME` must be paths that every node mounts (the same path everywhere).

Ray is optional (`pip install -r requirements-ray.txt`): `ray.init()` starts Ray on this machine unless
the settings name a cluster's `address`.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

from core import paths
from core.data import Dataset
from core.progress import Cancelled, Progress
from core.records import Failed, NotRun, Result, Status

POLL_SECONDS = 0.5
FORWARDED_ENV = (paths.HOME_ENV, "KERAS_HOME", "TF_CPP_MIN_LOG_LEVEL")  # what a task must see as the driver does
_DRIVER_FIELDS = {
    "run_id",
    "models",
    "phase",
    "index",
    "model",
    "finished",
    "started",
    "phase_start",
    "phase_share",
    "peak",
}
_PROGRESS_FIELDS = tuple(f.name for f in fields(Progress) if f.name not in _DRIVER_FIELDS)  # what a task reports


def connect(address: str | None) -> Any:
    """The `ray` module, connected once per process: to the cluster at `address`, else to a Ray started here."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "The ray executor needs Ray: pip install -r requirements-ray.txt. Received: executor=ray, Ray not installed"
        ) from None
    if not ray.is_initialized():  # the `core` package goes to every node with the job
        runtime_env = {"py_modules": [str(Path(__file__).parent)]}
        ray.init(
            address=address,
            runtime_env=runtime_env,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
        )
    return ray


def run_on_ray(sweep: Any, dataset: Dataset, models: list[str], final: bool) -> list[Result]:
    """Run `models` of `sweep` (a `core.sweep._Sweep`) as Ray tasks; their results in the order of `models`
    (a screening round cut short: those before the first one cut short)."""
    ray = connect(sweep.settings.address)
    board = _board_class().remote()
    environment = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    environment[paths.HOME_ENV] = str(paths.home())
    task = ray.remote(_run_model).options(num_cpus=1, max_retries=0, runtime_env={"env_vars": environment})
    data = ray.put(dataset)
    arguments = (type(sweep), sweep.settings, data, final, sweep.run_id, sweep.subset_accuracy, board)
    pending = {task.remote(model, *arguments): model for model in models}
    finished: dict[str, Result] = {}
    cancelled = False
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
        if not cancelled and sweep.stop():
            cancelled = True
            board.cancel.remote()
        reports, epochs = ray.get(board.drain.remote())
        for model, epoch, metrics in epochs if final else []:
            sweep.save(sweep.store.save_epoch, sweep.run_id, model, epoch, metrics)
        for reference in ready:
            model = pending.pop(reference)
            finished[model] = _outcome(ray, reference, model, sweep)
            if final:
                sweep.finish(finished[model])
            sweep.progress.finished.append(model)
        _show(sweep.progress, reports, models, finished)
        sweep.report(force=bool(ready))
    ray.kill(board)
    results = [finished[model] for model in models]
    if not final:
        cut = [index for index, result in enumerate(results) if result.status in (Status.PARTIAL, Status.NOT_RUN)]
        results = results[: cut[0]] if cut else results
    return results


def _outcome(ray: Any, reference: Any, model: str, sweep: Any) -> Result:
    """A finished task's result; its failure fails its model only (a full disk still ends the sweep)."""
    try:
        return ray.get(reference)
    except Exception as error:
        cause = getattr(error, "cause", None) or error  # a task's own exception, else Ray's (a worker that died)
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            raise sweep.disk_full(cause) from cause
        return Failed(model, f"{type(cause).__name__}: {cause}")


def _show(progress: Any, reports: dict[str, dict], models: list[str], finished: dict[str, Result]) -> None:
    """The driver's progress: the first model still running, as its task last reported it."""
    running = [model for model in models if model in reports and model not in finished]
    if running:
        model = running[0]
        progress.index, progress.model = models.index(model), model
        for name in _PROGRESS_FIELDS:
            setattr(progress, name, reports[model][name])


@cache
def _board_class() -> Any:
    """The `Board` actor class (defined once Ray is imported)."""
    import ray

    @ray.remote(num_cpus=0)
    class Board:
        """What the tasks of one `run_on_ray` share with the driver: progress, epochs, Cancel."""

        def __init__(self):
            self.cancelled, self.reports, self.epochs = False, {}, []

        def cancel(self) -> None:
            self.cancelled = True

        def is_cancelled(self) -> bool:
            return self.cancelled

        def report(self, model: str, progress: dict) -> None:
            self.reports[model] = progress

        def epoch(self, model: str, epoch: int, metrics: dict[str, float]) -> None:
            self.epochs.append((model, epoch, metrics))

        def drain(self) -> tuple[dict, list]:
            epochs, self.epochs = self.epochs, []
            return dict(self.reports), epochs

    return Board


class _BoardStore:
    """A task's stand-in for the store: what the sweep would write goes to the driver's `Board` instead."""

    def __init__(self, board: Any, model: str):
        self.board, self.model, self._cancelled, self._asked = board, model, False, 0.0

    def set_progress(self, run_id: int, progress: Any) -> None:
        self.board.report.remote(self.model, {name: getattr(progress, name) for name in _PROGRESS_FIELDS})

    def save_epoch(self, run_id: int, model: str, epoch: int, metrics: dict[str, float]) -> None:
        self.board.epoch.remote(model, epoch, metrics)

    def cancel_requested(self, run_id: int = 0) -> bool:
        """The driver's Cancel, asked at most every `POLL_SECONDS`."""
        import ray

        if not self._cancelled and time.monotonic() - self._asked > POLL_SECONDS:
            self._cancelled, self._asked = ray.get(self.board.is_cancelled.remote()), time.monotonic()
        return self._cancelled

    def flush(self) -> None:
        """Wait until the board has every report sent so far (calls from one caller arrive in order)."""
        import ray

        ray.get(self.board.is_cancelled.remote())


def _run_model(
    model: str,
    sweep_class: type,
    settings: Any,
    dataset: Dataset,
    final: bool,
    run_id: int,
    subset_accuracy: dict[str, float],
    board: Any,
) -> Result:
    """One model on a Ray worker, as `_Sweep.run_model` runs it locally (`sweep_class` is `_Sweep`)."""
    store = _BoardStore(board, model)
    if store.cancel_requested():
        return NotRun(model)
    sweep = sweep_class(settings, store, run_id, None, store.cancel_requested)
    sweep.subset_accuracy = subset_accuracy
    sweep.progress.model, sweep.progress.index = model, list(settings.models).index(model)
    try:
        return sweep.run_model(dataset, model, final)
    except Cancelled:
        return NotRun(model)
    finally:
        store.flush()
