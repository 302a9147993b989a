"""Latency on this host: base + head in each engine, one definition for the sweep and the Models page.

What is timed: uint8 images -> the engine's base -> the head as plain array math,
softmax(features @ W + b) with the weights of the Dense layer of `core.train.build_head` (its dropout
is the identity at inference). An eager Keras call of the head would cost more than the whole base of a
small model (MobileNet:0.25 in ONNX Runtime: 0.99 ms base, 2.55 ms with the Keras head), so it is not
made. The Models page has no trained head: it times a head of the same shape for 2 classes. The head's
cost is negligible either way: 5-13 µs per image here for 2 to 100 classes on 256 to 2,048 features,
against 0.4 ms and more for the smallest base, so the page and a sweep write the same entry.

How: after warm-up calls, batch 1 is called at least `MIN_REPEATS` times and until its share of
`TIMING_BUDGET_SECONDS` is spent: the figure is the median ms per image, with the quartiles as the
spread. Batch 32 is called at least `MIN_BATCH_REPEATS` times within the rest of the budget: images/s
from the median call. The engine's intra-op thread count is part of the record.

The cache is one JSON file (`paths.latency_cache()`) keyed by what the figure depends on: model, input
size, engine and this host (CPU model, the engine's thread count, TensorFlow and ONNX Runtime
versions). Weights don't change the arithmetic, so an untrained base measures what a trained one costs
and one measurement serves every dataset. An engine a model cannot run in is cached as None.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core import paths, runtimes
from core.features import Extractor
from core.records import Latency
from core.runtimes import ENGINES
from core.train import head_probabilities
from core.zoo import ModelRef

# Per engine; a sweep times every model in each. Measured with bench/latency.py (see bench/README.md):
# two fresh processes on an idle host disagree as much after 6 s of batch-1 calls as after 0.3 s (the
# spread is between processes, not between calls), so the budget stays where it was.
TIMING_BUDGET_SECONDS = 0.5
BATCH_ONE_SHARE = 0.6  # of the budget: batch 1 (median and quartiles); the rest: batch 32
MIN_REPEATS, MAX_REPEATS = 15, 1000  # timed batch-1 calls
MIN_BATCH_REPEATS, MAX_BATCH_REPEATS = 3, 50  # timed batch-32 calls
WARMUP_CALLS = 3  # untimed calls before each batch size: at least 1, at most 3 ...
WARMUP_SHARE = 0.1  # ... while within this share of the budget
BATCH = 32
HEAD_CLASSES = 2  # the Models page's stand-in head
LIBRARIES = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos"), "onnxruntime": ("onnxruntime",)}


@dataclass(frozen=True, eq=False)
class NumpyHead:
    """The classification head as plain array math: features (n, d) -> probabilities (n, classes)."""

    kernel: np.ndarray  # (d, classes) float32
    bias: np.ndarray  # (classes,) float32

    @classmethod
    def of(cls, head: Any) -> NumpyHead:
        """The head of a Keras model built by `core.train.build_head`: its one softmax Dense layer."""
        weighted = [layer for layer in head.layers if layer.weights]
        activation = getattr(getattr(weighted[-1], "activation", None), "__name__", None) if weighted else None
        if len(weighted) != 1 or activation != "softmax":
            names = [f"{type(layer).__name__}" for layer in weighted]
            raise ValueError(f"Expected a head with one softmax Dense layer. Received weighted layers: {names}")
        kernel, bias = (np.asarray(weight, np.float32) for weight in weighted[0].get_weights())
        return cls(kernel, bias)

    @classmethod
    def random(cls, feature_dim: int, classes: int = HEAD_CLASSES) -> NumpyHead:
        """A head of the right shape with seeded random weights: costs what a trained one costs."""
        rng = np.random.default_rng(0)
        return cls(rng.standard_normal((feature_dim, classes)).astype(np.float32), np.zeros(classes, np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return head_probabilities(features, self.kernel, self.bias)


def measure_latency(
    predict: Callable[[np.ndarray], Any], size: int, budget_seconds: float | None = None, threads: int | None = None
) -> Latency:
    """ms per image at batch 1 (median and quartiles) and images per second at batch 32 of `predict` on
    uint8 images of `size` px, after warm-up, within about `budget_seconds` (`TIMING_BUDGET_SECONDS`)
    unless the minimum repeats take longer. `threads` is recorded as given."""
    budget = TIMING_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    rng = np.random.default_rng(0)

    def timed_calls(batch: int, seconds: float, least: int, most: int) -> list[float]:
        """Seconds of each timed call on one batch, after 1 to `WARMUP_CALLS` untimed ones."""
        images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        warm_until = time.perf_counter() + budget * WARMUP_SHARE
        for call in range(WARMUP_CALLS):
            if call and time.perf_counter() > warm_until:
                break
            predict(images)
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while len(times) < most and (len(times) < least or time.perf_counter() < deadline):
            started = time.perf_counter()
            predict(images)
            times.append(time.perf_counter() - started)
        return times

    one = timed_calls(1, budget * BATCH_ONE_SHARE, MIN_REPEATS, MAX_REPEATS)
    many = timed_calls(BATCH, budget * (1 - BATCH_ONE_SHARE), MIN_BATCH_REPEATS, MAX_BATCH_REPEATS)
    q1, median, q3 = (float(value) * 1000 for value in np.percentile(one, [25, 50, 75]))
    return Latency(median, BATCH / float(np.median(many)), q1, q3, threads, len(one))


def known_latencies(ref: ModelRef) -> dict[str, Latency | None]:
    """Latencies measured earlier on this host, by engine. An engine this model cannot run in (it fell
    back to TensorFlow) maps to None; an engine never tried is absent."""
    cached = _read()
    found = {engine: cached[_key(ref, engine)] for engine in ENGINES if _key(ref, engine) in cached}
    known = {engine: _latency(value) for engine, value in found.items()}
    return {engine: latency for engine, latency in known.items() if latency or found[engine] is None}


def _latency(value: Any) -> Latency | None:
    """A cached entry as a Latency; None for a damaged one (it is then measured again and rewritten)."""
    if not isinstance(value, dict):
        return None
    try:
        latency = Latency.from_dict(value)
        float(latency.ms), float(latency.images_per_second)
    except (TypeError, ValueError):
        return None
    return latency


def model_latency(extractor: Extractor, head: Any = None) -> dict[str, Latency | None]:
    """Latency of an extractor's base + head in each engine, measuring only what is not cached yet.

    `head`: the trained Keras head (`core.train.build_head`) or a `NumpyHead`; without one, a random
    head of the same shape for `HEAD_CLASSES` classes. Either way it runs as array math. TensorFlow is
    always measured; ONNX Runtime too unless TensorFlow was forced (None when the model fell back to
    TensorFlow).
    """
    ref = extractor.ref
    known = known_latencies(ref)
    wanted = ("tf",) if extractor.requested == "tf" else tuple(ENGINES)
    missing = [engine for engine in wanted if engine not in known]
    if head is not None and not isinstance(head, NumpyHead):
        head = NumpyHead.of(head)
    for engine in missing:
        if engine == "tf":
            forward = extractor.base
        elif extractor.runtime.name == engine:
            forward = extractor.runtime
        else:
            known[engine] = None  # fell back to TensorFlow: nothing else to time
            continue
        if head is None:
            head = NumpyHead.random(forward(np.zeros((1, ref.size, ref.size, 3), np.uint8)).shape[-1])
        known[engine] = measure_latency(
            lambda images, forward=forward, head=head: head(forward(images)), ref.size, threads=engine_threads(engine)
        )
    if missing:
        _write({_key(ref, engine): known[engine] and asdict(known[engine]) for engine in missing})
    return {engine: known[engine] for engine in wanted}


def measure_model(model_id: str) -> dict[str, Latency | None]:
    """Time a zoo model in every engine (untrained weights, the same arithmetic), with a 2-class head:
    the Models page's button. It writes the entry a sweep of the same model and size reads."""
    return model_latency(Extractor(None, ModelRef.parse(model_id, weights="none")))


def host_key(engine: str) -> str:
    """What a latency in `engine` depends on besides the model: CPU, threads, library versions."""
    versions = ", ".join(f"{name} {version}" for name, version in library_versions().items())
    return f"{cpu_model()}, {engine_threads(engine)} threads, {versions}"


def engine_threads(engine: str) -> int:
    """The intra-op threads `engine` runs with: ONNX Runtime's as `core.runtimes` sets them;
    TensorFlow's as configured, else `TF_NUM_INTRAOP_THREADS`, else its default (every usable core).
    Read without importing TensorFlow, so a warm cache lookup stays cheap."""
    if engine == "onnx":
        return runtimes.ONNX_THREADS
    if engine != "tf":
        raise ValueError(f"engine must be one of {tuple(ENGINES)}. Received: engine={engine}")
    tensorflow = sys.modules.get("tensorflow")
    try:
        configured = tensorflow.config.threading.get_intra_op_parallelism_threads() if tensorflow else 0
    except AttributeError:  # TensorFlow still importing
        configured = 0
    from_environment = os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip()
    if configured > 0:
        return configured
    if from_environment.isdigit() and int(from_environment) > 0:
        return int(from_environment)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def cpu_model() -> str:
    """The CPU's name: /proc/cpuinfo's "model name" on Linux, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def library_versions() -> dict[str, str]:
    """The installed versions of the engines' libraries (from package metadata: nothing is imported)."""
    versions = {}
    for library, distributions in LIBRARIES.items():
        versions[library] = "absent"
        for distribution in distributions:
            try:
                versions[library] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def _key(ref: ModelRef, engine: str) -> str:
    return f"{ref.spec.id}@{ref.size}/{engine} on {host_key(engine)}"


def _read() -> dict[str, Any]:
    """The cache file's entries; a damaged file counts as empty (it is rewritten at the next measurement)."""
    try:
        cached = json.loads(paths.latency_cache().read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def _write(entries: dict[str, Any]) -> None:
    """Add `entries` to the cache, atomically: a reader never sees a half-written file."""
    path = paths.latency_cache()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps({**_read(), **entries}, indent=1))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
