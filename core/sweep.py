"""A sweep: for each chosen model, features (cached), a trained head, metrics and latency, stored as it goes.

`run_sweep` is the one entry point shared by the command line and the app's background worker. Each
model is independent: one that fails (say, weights not downloadable) is recorded with its reason and
the sweep goes on with the rest.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from core import config
from core.data import Dataset, load_dataset
from core.evaluate import classification_metrics, measure_latency, recommend
from core.features import DECODING_STAGE, Extractor, extract_features
from core.runtimes import RUNTIMES
from core.store import Store
from core.train import HeadSettings, head_cache_path, train_head
from core.zoo import WEIGHTS, parse_model_id

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

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise ValueError("A sweep needs at least one model. Received: models=()")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={self.weights}")
        for model_id in self.models:
            spec, size = parse_model_id(model_id)  # raises on an unknown id
            spec.check_size(size or self.image_size or spec.default_size)
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
    models: list[str]
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
    """Run the sweep over `source` (a dataset folder or zip) and return {run_id, results, recommendation}."""
    store = store or Store()
    run_id = run_id or store.create_run(str(source), settings.to_dict())
    progress = Progress(run_id, list(settings.models))
    last_write = 0.0

    def report(force: bool = False) -> None:
        nonlocal last_write
        if on_progress:
            on_progress(progress)
        if force or time.monotonic() - last_write > 0.5:
            store.set_progress(run_id, {**asdict(progress), "fraction": progress.fraction})
            last_write = time.monotonic()

    stop = should_stop or (lambda: store.cancel_requested(run_id))
    store.update_run(run_id, status="running")
    report(force=True)
    try:
        dataset = load_dataset(source, val_split=settings.val_split, seed=settings.seed, max_images=settings.max_images)
    except Exception as error:
        store.update_run(run_id, status="failed", error=str(error))
        raise
    store.update_run(run_id, report=dataset.report.to_dict())

    results: list[dict[str, Any]] = []
    for index, model_id in enumerate(settings.models):
        if stop():
            break
        progress.index, progress.model, progress.epoch, progress.metrics = index, model_id, 0, {}
        try:
            result = _sweep_model(dataset, model_id, settings, run_id, store, progress, report, stop)
        except Exception as error:  # one model's failure must not end the sweep
            result = {"model": model_id, "status": "failed", "error": f"{type(error).__name__}: {error}"}
        store.save_result(run_id, result)
        results.append(result)
        progress.finished.append(model_id)
        report(force=True)

    recommendation = recommend(results, settings.tolerance)
    status = "cancelled" if stop() and len(results) < len(settings.models) else "done"
    progress.stage = "done" if status == "done" else "cancelled"
    report(force=True)
    store.update_run(run_id, status=status, recommendation=recommendation or {})
    return {"run_id": run_id, "results": results, "recommendation": recommendation, "report": dataset.report.to_dict()}


def _sweep_model(
    dataset: Dataset,
    model_id: str,
    settings: SweepSettings,
    run_id: int,
    store: Store,
    progress: Progress,
    report: Callable[..., None],
    stop: Callable[[], bool],
) -> dict[str, Any]:
    spec, _ = parse_model_id(model_id)
    size = settings.input_size(model_id)

    def stage(name: str, done: int = 0, total: int = 0) -> None:
        progress.stage, progress.done, progress.total = name, done, total
        report()

    stage("building")
    extractor = Extractor(dataset, spec, size, settings.weights, settings.runtime)
    features = extract_features(dataset, extractor, progress=stage)

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        progress.epoch, progress.metrics = epoch, metrics
        store.save_epoch(run_id, model_id, epoch, metrics)
        report()

    progress.epochs = settings.epochs
    stage("training head")
    head_settings = HeadSettings(epochs=settings.epochs, seed=settings.seed)
    cache = head_cache_path(features.path, dataset.num_classes, head_settings)
    head = train_head(features, dataset.num_classes, head_settings, on_epoch, stop, cache_path=cache)
    probabilities = head.model.predict(features.validation, verbose=0)
    metrics = classification_metrics(features.validation_labels, probabilities, dataset.classes)

    stage("measuring latency")
    latency_ms, throughput = model_latency(extractor, features.runtime, head.model)

    head_path = config.home() / "runs" / str(run_id) / f"{model_id.replace(':', '_').replace('@', '_')}.keras"
    head_path.parent.mkdir(parents=True, exist_ok=True)
    head.model.save(head_path)
    params = spec.params + head.model.count_params()
    return {
        "model": model_id,
        "status": "ok",
        "family": spec.family.name,
        "input_size": size,
        "weights": settings.weights,
        "params": params,
        "base_params": spec.params,
        "feature_dim": int(features.train.shape[1]),
        "size_mb": round(params * 4 / 1e6, 2),
        **metrics,
        "val_loss": head.history[head.best_epoch - 1]["val_loss"],
        "epochs_run": len(head.history),
        "best_epoch": head.best_epoch,
        "feature_seconds": round(features.seconds, 3),
        "features_cached": features.cached,
        "runtime": features.runtime,
        "runtime_note": features.runtime_note,
        "head_seconds": round(head.seconds, 3),
        "head_cached": head.cached,
        "latency_ms": round(latency_ms, 3),
        "throughput_ips": round(throughput, 1),
        "classes": dataset.classes,
        "head_path": str(head_path),
    }


def _latency_cache() -> Path:
    return config.home() / "cache" / "latency.json"


def _latencies() -> dict[str, list[float]]:
    path = _latency_cache()
    return json.loads(path.read_text()) if path.exists() else {}


def known_latency(model_id: str, size: int, runtime: str = "tf") -> tuple[float, float] | None:
    """(ms per image at batch 1, images/s at batch 32) measured earlier on this host, if any."""
    found = _latencies().get(f"{model_id}@{size}/{runtime}")
    return tuple(found) if found else None


def model_latency(extractor: Extractor, runtime: str, head=None) -> tuple[float, float]:
    """Latency of base (+ head) in `runtime` on this host, measured once per model, size and runtime.

    Weights don't change the arithmetic, so an untrained base measures what a trained one costs.
    """
    found = known_latency(extractor.spec.id, extractor.size, runtime)
    if found:
        return found
    base = extractor.runtime
    predict = base if head is None else (lambda images: head(base(images), training=False))
    measured = measure_latency(predict, extractor.size)
    cached = _latencies()
    cached[f"{extractor.spec.id}@{extractor.size}/{base.name}"] = measured
    _latency_cache().parent.mkdir(parents=True, exist_ok=True)
    _latency_cache().write_text(json.dumps(cached, indent=1))
    return measured
