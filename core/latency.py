"""Latency on this host: base + head timed in each engine, measured once per model and size, then cached.

Weights don't change the arithmetic, so an untrained base measures what a trained one costs, and one
measurement serves every dataset. The cache is one JSON file (`paths.latency_cache()`), keyed by model,
input size and engine; an engine a model cannot run in is cached as None.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core import paths
from core.features import Extractor
from core.records import Latency
from core.runtimes import ENGINES
from core.zoo import ModelRef

TIMING_BUDGET_SECONDS = 0.5  # per engine: a sweep times every model in each


def measure_latency(
    predict: Callable[[np.ndarray], Any], size: int, budget_seconds: float = TIMING_BUDGET_SECONDS
) -> Latency:
    """ms per image at batch 1 and images per second at batch 32 of `predict` on uint8 images.

    Each is the median of repeated timed calls (at least 3) after one warm-up call, within about
    `budget_seconds`.
    """
    rng = np.random.default_rng(0)

    def median_seconds(batch: int, max_runs: int) -> float:
        images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        predict(images)  # warm-up
        times: list[float] = []
        deadline = time.perf_counter() + budget_seconds / 2
        while len(times) < max_runs and (len(times) < 3 or time.perf_counter() < deadline):
            started = time.perf_counter()
            predict(images)
            times.append(time.perf_counter() - started)
        return float(np.median(times))

    return Latency(ms=median_seconds(1, 20) * 1000, images_per_second=32 / median_seconds(32, 3))


def known_latencies(ref: ModelRef) -> dict[str, Latency | None]:
    """Latencies measured earlier on this host, by engine. An engine this model cannot run in (it fell
    back to TensorFlow) maps to None; an engine never tried is absent."""
    cached = _read()
    found = {engine: cached[_key(ref, engine)] for engine in ENGINES if _key(ref, engine) in cached}
    return {engine: value and Latency(*value) for engine, value in found.items()}


def model_latency(extractor: Extractor, head=None) -> dict[str, Latency | None]:
    """Latency of an extractor's base (+ `head`, a Keras model) in each engine, measuring only what is
    not cached yet. TensorFlow is always measured; ONNX Runtime too unless TensorFlow was forced (None
    when the model fell back to TensorFlow)."""
    ref = extractor.ref
    known = known_latencies(ref)
    wanted = ("tf",) if extractor.requested == "tf" else tuple(ENGINES)
    missing = [engine for engine in wanted if engine not in known]
    for engine in missing:
        if engine == "tf":
            forward = extractor.base
        elif extractor.runtime.name == engine:
            forward = extractor.runtime
        else:
            known[engine] = None  # fell back to TensorFlow: nothing else to time
            continue
        predict = forward if head is None else (lambda images, forward=forward: head(forward(images), training=False))
        known[engine] = measure_latency(predict, ref.size)
    if missing:
        _write(
            {
                _key(ref, engine): known[engine] and [known[engine].ms, known[engine].images_per_second]
                for engine in missing
            }
        )
    return {engine: known[engine] for engine in wanted}


def measure_model(model_id: str) -> dict[str, Latency | None]:
    """Time a zoo model on its own in every engine (untrained weights, the same arithmetic): the Models page's button."""
    return model_latency(Extractor(None, ModelRef.parse(model_id, weights="none")))


def _key(ref: ModelRef, engine: str) -> str:
    return f"{ref.spec.id}@{ref.size}/{engine}"


def _read() -> dict[str, list[float] | None]:
    """The cache file's entries; a damaged file counts as empty (it is rewritten at the next measurement)."""
    try:
        cached = json.loads(paths.latency_cache().read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def _write(entries: dict[str, list[float] | None]) -> None:
    """Add `entries` to the cache, atomically: a reader never sees a half-written file."""
    path = paths.latency_cache()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps({**_read(), **entries}, indent=1))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
