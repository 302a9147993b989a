"""A sweep: for each chosen model, features (cached), a trained head, metrics and latency, stored as it goes.

`run_sweep` is the one entry point shared by the command line and the app's background worker. Each
model is independent: one that fails (say, weights not downloadable) is recorded with its reason and
the sweep goes on with the rest.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core import config
from core.data import Dataset, load_dataset, stratified_subset
from core.evaluate import classification_metrics, measure_latency, recommend, screen
from core.features import DECODING_STAGE, Extractor, extract_features
from core.runtimes import RUNTIMES
from core.store import Store
from core.train import HeadSettings, head_cache_path, train_head
from core.zoo import WEIGHTS, model_weights, parse_model_id

SCREEN_FIRST_ROUND = 1 / 3  # a quick first screening round runs on this part of the screening share...
SCREEN_FIRST_ROUND_MIN_IMAGES = 60  # ...when that is at least this many images (and there are models to drop)
DEFAULT_SCREEN_SHARE = 0.1  # the share of the images a screened sweep ranks every model on (the margin widens as it shrinks)
LATENCY_RUNTIMES = ("tf", "onnx")  # every model is timed in each (ONNX unless TensorFlow is forced)
STAGES = ("loading data", "building", DECODING_STAGE, "extracting features", "training head", "measuring latency", "done", "cancelled")


@dataclass(frozen=True)
class SweepSettings:
    models: tuple[str, ...]
    image_size: int | None = None  # None: each model's default size (a size in the model id wins)
    epochs: int = 20
    weights: str = "imagenet"
    val_split: float = 0.2
    seed: int = 1337
    tolerance: float = 0.01  # accuracy tolerance of the recommendation (0.01 = 1 point)
    max_images: int | None = None  # hosted mode's cap on images per sweep
    runtime: str = "auto"  # "auto" (ONNX Runtime when it matches TensorFlow), "tf" or "onnx"
    screen: float | None = None  # share of the images to screen every model on first (None: no screening)
    screen_keep: int = 2  # screening keeps at least this many of the most accurate models

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise ValueError("A sweep needs at least one model. Received: models=()")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={self.weights}")
        for model_id in self.models:
            spec, size = parse_model_id(model_id)  # raises on an unknown id
            spec.check_size(size or self.image_size or spec.default_size)
            model_weights(model_id, self.weights)  # raises on unknown weights
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"Each model can be in a sweep once. Received: models={list(self.models)}")
        if self.screen is not None and not 0 < self.screen < 1:
            raise ValueError(f"screen must be a share of the images between 0 and 1. Received: screen={self.screen}")
        if self.screen_keep < 1:
            raise ValueError(f"screen_keep must be at least 1. Received: screen_keep={self.screen_keep}")
        HeadSettings(epochs=self.epochs)  # checks epochs
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}. Received: runtime={self.runtime}")
        if config.hosted():
            self._apply_hosted_limits()

    def _apply_hosted_limits(self) -> None:
        """A shared hosted app runs only models that fit its memory, on a capped number of images."""
        too_big = [m for m in self.models if parse_model_id(m)[0].params > config.HOSTED_MAX_PARAMS]
        if too_big:
            raise ValueError(
                f"This hosted app runs models of up to {config.HOSTED_MAX_PARAMS / 1e6:g}M parameters; "
                f"run larger ones on your own machine. Received: models={too_big}"
            )
        if self.max_images is None or self.max_images > config.HOSTED_MAX_IMAGES:
            object.__setattr__(self, "max_images", config.HOSTED_MAX_IMAGES)

    def input_size(self, model_id: str) -> int:
        spec, size = parse_model_id(model_id)
        return size or self.image_size or spec.default_size

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "models": list(self.models)}


@dataclass
class Progress:
    """Where a sweep is: which model, which stage, how far; sent to `on_progress` and the store."""

    run_id: int
    models: list[str]  # the models of the current phase
    phase: str = ""  # with screening: which screening round, or the finalists' pass, is running
    index: int = 0  # position of the current model
    model: str | None = None
    stage: str = "loading data"
    done: int = 0
    total: int = 0
    epoch: int = 0
    epochs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1]: each model is an equal share, split across its stages."""
        if self.stage in ("done", "cancelled"):
            return len(self.finished) / max(1, len(self.models))
        stage = "extracting features" if self.stage == DECODING_STAGE else self.stage
        within = 0.0
        for name, share in _STAGE_SHARES:
            if name == stage:
                steps = (self.epoch, self.epochs) if name == "training head" else (self.done, self.total)
                within += share * (steps[0] / steps[1] if steps[1] else 0.0)
                break
            within += share
        else:
            within = 0.0  # loading data: no model started yet
        return min(1.0, (len(self.finished) + within) / max(1, len(self.models)))


_STAGE_SHARES = (("building", 0.05), ("extracting features", 0.75), ("training head", 0.15), ("measuring latency", 0.05))


def run_sweep(
    source: str | Path,
    settings: SweepSettings,
    *,
    store: Store | None = None,
    run_id: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the sweep over `source` (a dataset folder or zip) and return {run_id, results, recommendation}.

    With `settings.screen`, every model is first trained and scored on stratified subsets of the images
    (`_Sweep.screen`); only the finalists are then run on the full data, and the others are reported as
    "screened out" with their subset accuracy. The recommendation then carries a `screening` record,
    which flags when the full-data winner differs from the screened ranking's.
    """
    store = store or Store()
    run_id = run_id or store.create_run(str(source), settings.to_dict())
    sweep = _Sweep(settings, store, run_id, on_progress, should_stop)
    store.update_run(run_id, status="running")
    sweep.report(force=True)
    try:
        dataset = load_dataset(source, val_split=settings.val_split, seed=settings.seed, max_images=settings.max_images)
    except Exception as error:
        store.update_run(run_id, status="failed", error=str(error))
        raise
    store.update_run(run_id, report=dataset.report.to_dict())

    results: list[dict[str, Any]] = []
    models, screening = list(settings.models), None
    if settings.screen:
        models, results, screening = sweep.screen(dataset, models)
    if not settings.screen or screening:  # screening returns no record when cancelled
        if screening:
            sweep.progress.phase = f"finishing {len(models)} finalist(s) on all images"
        results += sweep.run_models(dataset, models, final=True)

    recommendation = recommend(results, settings.tolerance)
    if recommendation and screening:
        screening["winner_changed"] = screening["screened_winner"] != recommendation["model"]
        recommendation["screening"] = screening
    status = "done" if len(sweep.progress.finished) == len(models) else "cancelled"
    sweep.progress.stage = status
    sweep.report(force=True)
    store.update_run(run_id, status=status, recommendation=recommendation or {})
    return {"run_id": run_id, "results": results, "recommendation": recommendation, "report": dataset.report.to_dict()}


def _screened_out(result: dict[str, Any], images: int) -> dict[str, Any]:
    """A model's final record when screening left it out: its subset accuracy, no full-data figures."""
    keep = ("model", "family", "input_size", "weights", "params", "base_params", "feature_dim", "size_mb", "runtime")
    return {
        **{key: result[key] for key in keep},
        "status": "screened out",
        "subset_accuracy": result["val_accuracy"],
        "subset_images": images,
    }


class _Sweep:
    """One sweep's settings, store and live progress, and how each model is run."""

    def __init__(self, settings: SweepSettings, store: Store, run_id: int, on_progress, should_stop):
        self.settings, self.store, self.run_id, self.on_progress = settings, store, run_id, on_progress
        self.stop = should_stop or (lambda: store.cancel_requested(run_id))
        self.progress = Progress(run_id, list(settings.models))
        self.extractors: dict[str, Extractor] = {}  # built while screening, reused for the finalists
        self.subset_accuracy: dict[str, float] = {}  # by model, once screening has scored them
        self._last_write = 0.0

    def report(self, force: bool = False) -> None:
        if self.on_progress:
            self.on_progress(self.progress)
        if force or time.monotonic() - self._last_write > 0.5:
            self.store.set_progress(self.run_id, {**asdict(self.progress), "fraction": self.progress.fraction})
            self._last_write = time.monotonic()

    def run_models(self, dataset: Dataset, models: list[str], final: bool) -> list[dict[str, Any]]:
        """Each model in turn; a failure is recorded for that model and the sweep goes on."""
        progress, results = self.progress, []
        progress.models, progress.finished = list(models), []
        for index, model_id in enumerate(models):
            if self.stop():
                break
            progress.index, progress.model, progress.epoch, progress.metrics = index, model_id, 0, {}
            try:
                result = self.run_model(dataset, model_id, final)
            except Exception as error:  # one model's failure must not end the sweep
                result = {"model": model_id, "status": "failed", "error": f"{type(error).__name__}: {error}"}
            if final:
                self.store.save_result(self.run_id, result)
                self.extractors.pop(model_id, None)  # done with this model: free its base
            results.append(result)
            progress.finished.append(model_id)
            self.report(force=True)
        return results

    def screen(self, dataset: Dataset, models: list[str]) -> tuple[list[str], list[dict[str, Any]], dict[str, Any] | None]:
        """Screening rounds on growing stratified subsets: (finalists, screened-out and failed results, record).

        A quick first round on `SCREEN_FIRST_ROUND` of the screening share drops only the models clearly
        beaten (see `core.evaluate.screen`), so a model that cannot win costs a fraction of a subset
        pass; the last round keeps the close Pareto front. The record is None when cancelled, and the
        models returned are then those of the unfinished round.
        """
        settings, results, rounds = self.settings, [], []
        total = len(dataset.train) + len(dataset.validation)
        shares, quick = [settings.screen], settings.screen * SCREEN_FIRST_ROUND
        if len(models) > settings.screen_keep and quick * total >= SCREEN_FIRST_ROUND_MIN_IMAGES:
            shares.insert(0, quick)
        for number, share in enumerate(shares, start=1):
            subset = stratified_subset(dataset, share, settings.seed)
            images, last = len(subset.train) + len(subset.validation), number == len(shares)
            self.progress.phase = f"screening on {images} images" + (f" (round {number} of {len(shares)})" if len(shares) > 1 else "")
            scored = self.run_models(subset, models, final=False)
            if len(scored) < len(models):
                return models, results, None  # cancelled
            outcome = screen(scored, settings.screen_keep, settings.tolerance, len(subset.validation), front_only=last)
            self.subset_accuracy.update({r["model"]: r["val_accuracy"] for r in scored if r["status"] == "ok"})
            for result in scored:  # failed models, and screened-out ones, are final now
                if result["status"] == "failed" or result["model"] in outcome["screened_out"]:
                    results.append(result if result["status"] == "failed" else _screened_out(result, images))
                    self.store.save_result(self.run_id, results[-1])
            rounds.append({"images": images, "models": models, **outcome})
            models = outcome["finalists"]
            self.extractors = {model: self.extractors[model] for model in models}  # free the others' bases
            if len(models) <= settings.screen_keep:
                break  # a later round would keep them all
        ranked = recommend(scored, settings.tolerance)
        record = {
            "finalists": models,
            "screened_out": [model for r in rounds for model in r["screened_out"]],
            "margin": outcome["margin"],
            "subset_images": images,
            "subset_accuracy": dict(self.subset_accuracy),
            "screened_winner": ranked["model"] if ranked else None,
            "rounds": rounds,
        }
        return models, results, record

    def run_model(self, dataset: Dataset, model_id: str, final: bool) -> dict[str, Any]:
        """Features, head and metrics of one model; the final run also times it, saves its head and history."""
        settings, progress = self.settings, self.progress
        spec, _ = parse_model_id(model_id)
        size, weights = settings.input_size(model_id), model_weights(model_id, settings.weights)

        def stage(name: str, done: int = 0, total: int = 0) -> None:
            progress.stage, progress.done, progress.total = name, done, total
            self.report()

        stage("building")
        runtime = settings.runtime
        if not final and runtime == "auto" and not Extractor(None, spec, size, weights).graph_exported:
            runtime = "tf"  # a screening subset is too small to repay a graph export; the finalists export
        extractor = self.extractors.get(model_id)
        extractor = extractor.for_dataset(dataset, runtime) if extractor else Extractor(dataset, spec, size, weights, runtime)
        self.extractors[model_id] = extractor
        features = extract_features(dataset, extractor, progress=stage)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            progress.epoch, progress.metrics = epoch, metrics
            if final:
                self.store.save_epoch(self.run_id, model_id, epoch, metrics)
            self.report()

        progress.epochs = settings.epochs
        stage("training head")
        head_settings = HeadSettings(epochs=settings.epochs, seed=settings.seed)
        cache = head_cache_path(features.path, dataset.num_classes, head_settings)
        head = train_head(features, dataset.num_classes, head_settings, on_epoch, self.stop, cache_path=cache)
        probabilities = np.asarray(head.model(features.validation, training=False))
        params = spec.params + head.model.count_params()
        result = {
            "model": model_id,
            "status": "ok",
            "family": spec.family.name,
            "input_size": size,
            "weights": weights,
            "params": params,
            "base_params": spec.params,
            "feature_dim": int(features.train.shape[1]),
            "size_mb": round(params * 4 / 1e6, 2),
            **classification_metrics(features.validation_labels, probabilities, dataset.classes),
            "val_loss": head.history[head.best_epoch - 1]["val_loss"],
            "epochs_run": len(head.history),
            "best_epoch": head.best_epoch,
            "feature_seconds": round(features.seconds, 3),
            "features_cached": features.cached,
            "runtime": features.runtime,
            "runtime_note": features.runtime_note,
            "head_seconds": round(head.seconds, 3),
            "head_cached": head.cached,
            "classes": dataset.classes,
        }
        if not final:
            return result
        if model_id in self.subset_accuracy:  # a finalist: its subset accuracy beside its full-data one
            result["subset_accuracy"] = self.subset_accuracy[model_id]

        stage("measuring latency")
        latencies = model_latency(extractor, head.model)
        for name, found in latencies.items():
            ms, images_per_second = found or (None, None)
            result[f"latency_ms_{name}"] = ms and round(ms, 3)
            result[f"throughput_ips_{name}"] = images_per_second and round(images_per_second, 1)
        result["latency_ms"] = result[f"latency_ms_{features.runtime}"]  # in the runtime that ran
        result["throughput_ips"] = result[f"throughput_ips_{features.runtime}"]
        head_path = config.home() / "runs" / str(self.run_id) / f"{re.sub(r'[^A-Za-z0-9.-]', '_', model_id)}.keras"
        head_path.parent.mkdir(parents=True, exist_ok=True)
        head.model.save(head_path)
        return {**result, "head_path": str(head_path)}


def _latency_cache() -> Path:
    return config.home() / "cache" / "latency.json"


def _latency_prefix(model_id: str, size: int) -> str:
    return f"{model_id}@{size}/"  # + runtime: one key per model, size and runtime


def _latencies() -> dict[str, list[float]]:
    path = _latency_cache()
    return json.loads(path.read_text()) if path.exists() else {}


def known_latencies(model_id: str, size: int) -> dict[str, tuple[float, float] | None]:
    """Latencies measured earlier on this host, by runtime: (ms per image at batch 1, images/s at batch 32).

    A runtime measured before but unavailable for this model (it fell back to TensorFlow) maps to None;
    a runtime never tried is absent.
    """
    prefix = _latency_prefix(model_id, size)
    return {key[len(prefix) :]: tuple(v) if v else None for key, v in _latencies().items() if key.startswith(prefix)}


def model_latency(extractor: Extractor, head=None) -> dict[str, tuple[float, float] | None]:
    """Latency of base (+ head) in each runtime on this host: {"tf": (ms, images/s), "onnx": ... or None}.

    TensorFlow is always measured; ONNX Runtime too unless TensorFlow was forced (None when the model
    fell back to TensorFlow). Each is measured once per model, size and runtime, and kept for later
    sweeps: weights don't change the arithmetic, so an untrained base measures what a trained one costs.
    """
    known = known_latencies(extractor.spec.id, extractor.size)
    wanted = ("tf",) if extractor.requested == "tf" else LATENCY_RUNTIMES
    missing = [name for name in wanted if name not in known]
    for name in missing:
        if name == "tf":
            forward = extractor.base
        elif extractor.runtime.name == name:
            forward = extractor.runtime
        else:
            known[name] = None  # fell back to TensorFlow: nothing else to time
            continue
        predict = forward if head is None else (lambda images, forward=forward: head(forward(images), training=False))
        known[name] = measure_latency(predict, extractor.size)
    if missing:
        prefix = _latency_prefix(extractor.spec.id, extractor.size)
        _latency_cache().parent.mkdir(parents=True, exist_ok=True)
        _latency_cache().write_text(json.dumps({**_latencies(), **{prefix + name: known[name] for name in missing}}, indent=1))
    return {name: known[name] for name in wanted}
