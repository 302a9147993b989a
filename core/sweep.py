"""A sweep: for each chosen model, features (cached), a trained head, metrics and latency, stored as it goes.

`run_sweep` is the one entry point shared by the command line and the app's background worker. Each
model is independent: one that fails (say, weights not downloadable) is recorded with its reason and
the sweep goes on with the rest. Screening (`core.screening`) decides which models are finished on all
images; latency (`core.latency`) is measured and cached per host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import psutil

from core import config, paths, scheduler, storage
from core.data import Dataset, load_dataset
from core.evaluate import classification_metrics, recommend, wilson_interval
from core.features import Extractor, extract_features
from core.latency import NumpyHead, model_latency
from core.progress import Cancelled, Progress, Stage
from core.records import Failed, ModelResult, NotRun, Result, RunStatus, Status, SweepOutcome
from core.runtimes import RUNTIMES
from core.screening import DEFAULT_SCREEN_KEEP, screen_in_rounds
from core.store import Store, StoreError, SweepBusy
from core.train import HeadSettings, head_cache_path, train_head
from core.zoo import WEIGHTS, ModelRef

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class SweepSettings:
    models: tuple[str, ...]
    image_size: int | None = None  # None: each model's default size (a size in the model id wins)
    epochs: int = config.DEFAULT_EPOCHS
    weights: str = "imagenet"  # for the models whose id names no weights
    holdout: float = config.DEFAULT_HOLDOUT  # of plain class folders: half validation, half test
    seed: int = config.DEFAULT_SEED
    tolerance: float = config.DEFAULT_TOLERANCE
    max_images: int | None = None  # hosted mode's cap on images per sweep
    runtime: str = "auto"  # one of `RUNTIMES`
    screen: float | None = None  # share of the images to screen every model on first (None: no screening)
    screen_keep: int = DEFAULT_SCREEN_KEEP
    executor: str = "local"  # one of `EXECUTORS`: models in turn here, or as Ray tasks
    address: str | None = None  # with "ray": an existing cluster's address (None: a Ray started on this machine)

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise ValueError("A sweep needs at least one model. Received: models=()")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={self.weights}")
        low, high = config.limit(config.IMAGE_SIZE_RANGE)
        if self.image_size is not None and not low <= self.image_size <= high:
            raise ValueError(f"image_size must be {low} to {high} px. Received: image_size={self.image_size}")
        for model_id in self.models:
            if not low <= self.ref(model_id).size <= high:  # raises on an unknown id, size or weights
                raise ValueError(f"A model's input size must be {low} to {high} px. Received: {model_id}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"Each model can be in a sweep once. Received: models={list(self.models)}")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be a share of the images between 0 and 1. Received: holdout={self.holdout}")
        if self.screen is not None and not 0 < self.screen < 1:
            raise ValueError(f"screen must be a share of the images between 0 and 1. Received: screen={self.screen}")
        if self.screen_keep < 1:
            raise ValueError(f"screen_keep must be at least 1. Received: screen_keep={self.screen_keep}")
        HeadSettings(epochs=self.epochs)  # checks epochs
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}. Received: runtime={self.runtime}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}. Received: executor={self.executor}")
        if self.executor == "ray" and find_spec("ray") is None:
            raise ValueError("executor='ray' needs Ray: pip install -r requirements-ray.txt. Received: no ray module")
        if config.hosted():
            self._apply_hosted_limits()

    def _apply_hosted_limits(self) -> None:
        """A shared hosted app runs only models that fit its memory, on a capped number of images."""
        too_big = [m for m in self.models if self.ref(m).spec.params > config.HOSTED_MAX_PARAMS]
        if too_big:
            raise ValueError(
                f"This hosted app runs models of up to {config.HOSTED_MAX_PARAMS / 1e6:g}M parameters; "
                f"run larger ones on your own machine. Received: models={too_big}"
            )
        if self.max_images is None or self.max_images > config.HOSTED_MAX_IMAGES:
            object.__setattr__(self, "max_images", config.HOSTED_MAX_IMAGES)

    def ref(self, model_id: str) -> ModelRef:
        """The model id resolved with these settings' image size and weights as defaults."""
        return ModelRef.parse(model_id, self.image_size, self.weights)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "models": list(self.models)}


def run_sweep(
    source: str | Path,
    settings: SweepSettings,
    *,
    store: Store | None = None,
    run_id: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepOutcome:
    """Run the sweep (see `_run_sweep`), holding an in-use marker on the caches it uses until it ends."""
    with storage.Lease() as lease:
        return _run_sweep(source, settings, store, run_id, on_progress, should_stop, lease)


def _run_sweep(
    source: str | Path,
    settings: SweepSettings,
    store: Store | None,
    run_id: int | None,
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
    lease: storage.Lease,
) -> SweepOutcome:
    """Run the sweep over `source` (a dataset folder or zip) and store it as it goes.

    Each head trains on the training images, its epoch is chosen on the validation images, and it is scored
    on the test images. A model cut short by Cancel is recorded as partial, and models never started as not
    run; the run is then "cancelled". With `settings.screen`, every model is first trained and scored on stratified subsets of the images;
    only the finalists are then run on the full data, and the others are reported as screened out with
    their subset accuracy. The recommendation then carries a `screening` record, which flags when the
    full-data winner differs from the screened ranking's.
    """
    store = store or Store()
    me = os.getpid(), psutil.Process().create_time()
    run_id = run_id or store.create_run(str(source), settings.to_dict(), *me)  # its own process: never queued
    sweep = _Sweep(settings, store, run_id, on_progress, should_stop)
    sweep.lease = lease
    try:  # a slot of the data folder's queue: this process holds it, by pid and start time
        scheduler.claim(store, run_id, *me)
    except SweepBusy as busy:
        store.update_run(run_id, status=RunStatus.FAILED, error=str(busy))
        raise
    sweep.report(force=True)
    try:
        dataset = load_dataset(
            source, holdout=settings.holdout, seed=settings.seed, max_images=settings.max_images, on_check=sweep.checked
        )
    except Exception as error:
        store.update_run(run_id, status=RunStatus.FAILED, error=str(error))
        raise
    store.update_run(run_id, report=dataset.report)
    sweep.total_images = len(dataset.images)

    models, screening = list(settings.models), None
    if settings.screen:
        models, screening = screen_in_rounds(
            sweep, dataset, models, settings.screen, settings.screen_keep, settings.tolerance, settings.seed
        )
    if not settings.screen or screening:  # screening returns no record when cancelled
        if screening:
            phase = f"finishing {len(models)} finalist(s) on all images"
            sweep.progress.begin_phase(phase, models, share=1 - sweep.progress.fraction)
            sweep.subset_accuracy = screening.subset_accuracy
        sweep.run_models(dataset, models, final=True)

    recommendation = recommend(sweep.results, settings.tolerance)
    if recommendation and screening:
        screening.winner_changed = screening.screened_winner != recommendation.model
        recommendation.screening = screening
    finished = {result.model for result in sweep.results}
    for model in settings.models:
        if model not in finished:
            sweep.finish(NotRun(model))
    cut_short = any(result.status in (Status.PARTIAL, Status.NOT_RUN) for result in sweep.results)
    status = RunStatus.CANCELLED if cut_short else RunStatus.DONE
    sweep.progress.stage = Stage(status)
    sweep.report(force=True)
    sweep.save()  # whatever a lock held back
    store.update_run(run_id, status=status, recommendation=recommendation)
    return SweepOutcome(run_id, sweep.results, recommendation, dataset.report)


class _Sweep:
    """One sweep's settings, store and live progress, and how each model is run (a `RoundRunner` for screening)."""

    def __init__(self, settings: SweepSettings, store: Store, run_id: int, on_progress, should_stop):
        self.settings, self.store, self.run_id, self.on_progress = settings, store, run_id, on_progress
        self._should_stop = should_stop or (lambda: store.cancel_requested(run_id))
        self._unsaved: list[tuple[Callable, tuple]] = []  # store writes a lock held back, in order
        self.progress = Progress(run_id, list(settings.models))
        self.results: list[Result] = []  # final results, in the order they were finished
        self.extractors: dict[str, Extractor] = {}  # built while screening, reused for the finalists
        self.subset_accuracy: dict[str, float] = {}  # the finalists' screening accuracy
        self.total_images = 0  # of the full dataset
        self.lease: storage.Lease | None = None  # the in-use marker of the caches this sweep uses
        self._last_write = 0.0

    def report(self, force: bool = False) -> None:
        self.progress.advance()
        if self.on_progress:
            self.on_progress(self.progress)
        if force or time.monotonic() - self._last_write > 0.5:
            try:
                self.store.set_progress(self.run_id, self.progress)
            except StoreError:
                return  # live progress only: the next report writes it
            self._last_write = time.monotonic()

    def checked(self, done: int, total: int) -> None:
        """Progress of the dataset check: `done` of `total` files."""
        self.progress.done, self.progress.total = done, total
        self.report()

    def disk_full(self, error: OSError) -> OSError:
        """The run recorded as failed on a full disk (as far as the store can still be written), and the
        error to raise, naming the data folder."""
        free = shutil.disk_usage(paths.home()).free / config.MB
        cause = f"The disk holding {paths.home()} is full ({free:.1f} MB free): {error.strerror or error}"
        with contextlib.suppress(StoreError):
            self.store.update_run(self.run_id, status=RunStatus.FAILED, error=cause)
        return OSError(errno.ENOSPC, cause)

    def stop(self) -> bool:
        """True once Cancel was pressed; a store that cannot be read just now is asked again later."""
        try:
            return self._should_stop()
        except StoreError:
            return False

    def save(self, write: Callable | None = None, *args: Any) -> None:
        """A store write that a lock may delay but never loses: held back while the store stays locked
        beyond its wait, and written, in order, before the next write (or at the end)."""
        if write is not None:
            self._unsaved.append((write, args))
        try:
            while self._unsaved:
                first, first_args = self._unsaved[0]
                first(*first_args)
                self._unsaved.pop(0)
        except StoreError as error:
            if write is None or error.kind != "locked":
                raise

    def run_round(self, subset: Dataset, models: list[str], phase: str) -> list[Result]:
        """A screening round. Its share of the progress bar is its work (images x models) against the
        work left after it, at least the finalists' pass on all images."""
        work = len(subset.images) * len(models)
        after = self.total_images * min(self.settings.screen_keep, len(models))
        self.progress.begin_phase(phase, models, share=(1 - self.progress.fraction) * work / (work + after))
        return self.run_models(subset, models, final=False)

    def finish(self, result: Result) -> None:
        self.results.append(result)
        self.save(self.store.save_result, self.run_id, result)

    def keep(self, models: list[str]) -> None:
        self.extractors = {model: self.extractors[model] for model in models}

    def run_models(self, dataset: Dataset, models: list[str], final: bool) -> list[Result]:
        """Each model in turn; a failure is recorded for that model and the sweep goes on."""
        progress, results = self.progress, []
        progress.models, progress.finished = list(models), []
        if self.lease is not None:
            self.lease.add(paths.dataset_cache(dataset.fingerprint))
            self.lease.add(paths.graphs_dir())
        if self.settings.executor == "ray":
            from core.ray_executor import run_on_ray

            return self.tidy(dataset, set(), run_on_ray(self, dataset, models, final))
        for index, model_id in enumerate(models):
            if self.stop():
                break
            progress.index, progress.model, progress.epoch, progress.metrics = index, model_id, 0, {}
            later_sizes = {self.settings.ref(model).size for model in models[index + 1 :]}
            try:
                result = self.run_model(
                    dataset, model_id, final, keep_pixels=self.settings.ref(model_id).size in later_sizes
                )
            except Cancelled:  # between two batches of its forward pass: no head to show
                result = NotRun(model_id)
            except Exception as error:  # one model's failure must not end the sweep...
                if isinstance(error, OSError) and error.errno == errno.ENOSPC:  # ...but a full disk does
                    raise self.disk_full(error) from error
                result = Failed(model_id, f"{type(error).__name__}: {error}")
            if result.status in (Status.PARTIAL, Status.NOT_RUN) and not final:
                break  # a screening round cut short is no ranking
            if final:
                self.finish(result)
                self.extractors.pop(model_id, None)  # done with this model: free its base
            results.append(result)
            progress.finished.append(model_id)
            self.report(force=True)
            self.tidy(dataset, later_sizes)
        return self.tidy(dataset, set(), results)

    def tidy(self, dataset: Dataset, needed_sizes: set[int], results: list[Result] | None = None) -> list[Result]:
        """Drop the decoded images of `dataset` at sizes no model left needs, and evict caches over the disk
        budget (never those in use); `results` are passed through."""
        for decoded in paths.dataset_cache(dataset.fingerprint).glob("images-*.u8"):
            if int(decoded.stem.removeprefix("images-")) not in needed_sizes:
                decoded.unlink(missing_ok=True)
        storage.evict(store=self.store)
        return results or []

    def run_model(self, dataset: Dataset, model_id: str, final: bool, keep_pixels: bool = False) -> ModelResult:
        """Features, head and metrics of one model; the final run also times it, saves its head and history."""
        settings, progress = self.settings, self.progress
        ref = settings.ref(model_id)

        def stage(name: Stage, done: int = 0, total: int = 0) -> None:
            progress.stage, progress.done, progress.total = name, done, total
            self.report()

        stage(Stage.BUILDING)
        runtime = settings.runtime
        if not final and runtime == "auto" and not Extractor(None, ref).graph_exported:
            runtime = "tf"  # a screening subset is too small to repay a graph export; the finalists export
        extractor = self.extractors.get(model_id)
        extractor = extractor.for_dataset(dataset, runtime) if extractor else Extractor(dataset, ref, runtime)
        self.extractors[model_id] = extractor
        features = extract_features(dataset, extractor, progress=stage, should_stop=self.stop, keep_pixels=keep_pixels)
        storage.touch(features.path, paths.onnx_graph(ref.stem))

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            progress.epoch, progress.metrics = epoch, metrics
            if final:
                self.save(self.store.save_epoch, self.run_id, model_id, epoch, metrics)
            self.report()

        progress.epochs = settings.epochs
        stage(Stage.TRAINING)
        weights = dataset.report.class_weights()
        head_settings = HeadSettings(
            epochs=settings.epochs, seed=settings.seed, class_weights=weights and tuple(weights)
        )
        cache = head_cache_path(features.path, dataset.num_classes, head_settings)
        head = train_head(features, dataset.num_classes, head_settings, on_epoch, self.stop, cache_path=cache)
        validation = classification_metrics(
            features.validation_labels, head.predict(features.validation), dataset.classes
        )
        scores = classification_metrics(features.test_labels, head.predict(features.test), dataset.classes)
        params = ref.spec.params + head.params
        result = ModelResult(
            model=model_id,
            family=ref.spec.family.name,
            input_size=ref.size,
            weights=ref.weights,
            params=params,
            base_params=ref.spec.params,
            feature_dim=int(features.train.shape[1]),
            size_mb=round(params * 4 / 1e6, 2),
            classes=dataset.classes,
            test_accuracy=scores.accuracy,
            test_accuracy_ci=list(wilson_interval(round(scores.accuracy * len(features.test)), len(features.test))),
            test_images=len(features.test),
            balanced_accuracy=scores.balanced_accuracy,
            macro_f1=scores.macro_f1,
            test_labels=features.test_labels.tolist(),
            test_predictions=scores.predictions,
            val_accuracy=validation.accuracy,
            val_loss=head.history[head.best_epoch - 1]["val_loss"],
            per_class=scores.per_class,
            confusion=scores.confusion,
            epochs_run=len(head.history),
            best_epoch=head.best_epoch,
            epochs_planned=settings.epochs,
            class_weighted=weights is not None,
            runtime=features.runtime,
            runtime_note=features.runtime_note,
            device=features.device,
            feature_seconds=round(features.seconds, 3),
            features_cached=features.cached,
            head_seconds=round(head.seconds, 3),
            head_cached=head.cached,
            status=Status.PARTIAL if head.stopped else Status.OK,
        )
        if not final or head.stopped:
            return result  # a partial model is neither timed nor kept
        result.subset_accuracy = self.subset_accuracy.get(model_id)
        stage(Stage.TIMING)
        result.latency = model_latency(extractor, NumpyHead(head.kernel, head.bias))
        head_path = paths.run_head(self.run_id, model_id)
        head_path.parent.mkdir(parents=True, exist_ok=True)
        head.save(head_path)
        result.head_path = str(head_path)
        return result
