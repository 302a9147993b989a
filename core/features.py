"""Features of a frozen base: one forward pass per image per model, cached on disk.

A frozen base computes the same features every epoch, so they are computed once and the head trains on
them. Images are decoded and resized once per input size for the whole sweep (`core.decoded`), starting
while the model is still being built, and features are saved per model, weights and input size under a
fingerprint of the dataset's contents, written atomically; a damaged cache file is discarded and computed
again. Cancel is checked between batches.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from core import config, paths
from core.data import Dataset
from core.decoded import decoded_images
from core.feature_file import FeatureRows, FeatureWriter, open_features
from core.images import load_image
from core.progress import Stage
from core.runtimes import RUNTIMES, FrozenBase, Runtime, make_runtime
from core.stream import PixelStream
from core.zoo import ModelRef

_CACHED_ARRAYS = ("labels", "seconds", "runtime", "runtime_note")  # beside the features matrix (`core.feature_file`)
BATCH_SIZE = 16  # measured here: small batches keep depthwise convolutions in cache (MobileNets ~20% faster than 64)
FLOAT16_FROM_BYTES = 64 * 1024**2  # features larger than this as float32 are kept as float16 on disk (half the size)
CALIBRATION_IMAGES = 8  # the user's images that an exported graph must reproduce TensorFlow's features on
MEMORY_BUDGET_ENV = "TRANSFERBENCH_MEMORY_BUDGET_MB"  # else `config.FEATURE_MEMORY_MB`

# Progress callback: (stage, done, total); the stage is `Stage.EXTRACTING`, or `Stage.DECODING` while the
# images are decoded for the first time at this size.
Progress = Callable[[Stage, int, int], None]


@dataclass
class FeatureSet:
    """Features and labels of the three sets, as computed (or read back) for one model.

    The features are float32 arrays in memory when all of them fit the memory budget
    (`memory_budget_bytes`), else `FeatureRows` left in the cache file and read from it batch by batch
    (`in_memory` says which); the labels are always in memory.
    """

    train: np.ndarray | FeatureRows
    train_labels: np.ndarray
    validation: np.ndarray | FeatureRows
    validation_labels: np.ndarray
    test: np.ndarray | FeatureRows
    test_labels: np.ndarray
    seconds: float  # forward-pass time when the features were computed
    cached: bool  # True when read from the cache in this call
    runtime: str  # what computed them: "tf" or "onnx"
    runtime_note: str  # why ONNX was not used, when it was asked for ("" otherwise)
    path: Path  # the cache file
    device: str = "CPU"  # where the forward pass ran: "CPU", or TensorFlow's "GPU"

    @property
    def in_memory(self) -> bool:
        return not isinstance(self.train, FeatureRows)


def memory_budget_bytes() -> int:
    """How many bytes of features (as float32) a head may train on from memory: `$TRANSFERBENCH_MEMORY_BUDGET_MB`,
    else `config.FEATURE_MEMORY_MB` (its hosted value in hosted mode). Larger features stay on disk."""
    return int(config.number(MEMORY_BUDGET_ENV, config.limit(config.FEATURE_MEMORY_MB)) * config.MB)


class Extractor:
    """A model to extract features with, built only when something must actually be computed.

    On a warm cache nothing is built: no weights loaded, no graph exported. `dataset` may be None to
    time a model on its own; an exported graph is then checked on random pixels instead of the user's images.
    """

    def __init__(self, dataset: Dataset | None, ref: ModelRef, runtime: str = "auto"):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}. Received: runtime={runtime}")
        self.dataset, self.ref, self.size, self.requested = dataset, ref, ref.size, runtime

    @cached_property
    def base(self) -> FrozenBase:
        """The model in TensorFlow: the reference every other runtime is checked against."""
        return FrozenBase(self.ref)

    @cached_property
    def runtime(self) -> Runtime:
        """TensorFlow, or ONNX Runtime once its features match TensorFlow's on a few of the user's images."""
        if self.requested == "tf":
            calibration = None
        elif self.dataset is None:  # timing a model on its own: seeded random pixels
            shape = (CALIBRATION_IMAGES, self.size, self.size, 3)
            calibration = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        else:
            calibration = np.stack([load_image(r.path, self.size) for r in self.dataset.train[:CALIBRATION_IMAGES]])
        graph = paths.onnx_graph(self.ref.stem)
        runtime = make_runtime(self.base, self.requested, calibration, graph)
        if runtime.fallback_reason and runtime.parity is None and graph.exists():
            graph.unlink()  # a cached graph that cannot even be loaded and run is damaged: export it again
            runtime = make_runtime(self.base, self.requested, calibration, graph)
        return runtime

    @property
    def graph_exported(self) -> bool:
        """True when this model's ONNX graph is already in the cache (no export needed to use it)."""
        return paths.onnx_graph(self.ref.stem).exists()

    def for_dataset(self, dataset: Dataset, runtime: str) -> Extractor:
        """The same model for another dataset and `runtime`, keeping what is already built."""
        other = Extractor(dataset, self.ref, runtime)
        kept = ("base", "runtime") if runtime == self.requested else ("base",)
        other.__dict__.update({key: self.__dict__[key] for key in kept if key in self.__dict__})
        return other

    @property
    def cache_path(self) -> Path:
        return paths.features(self.dataset.fingerprint, self.ref.stem, self.requested)


def extract_features(
    dataset: Dataset,
    extractor: Extractor,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    keep_pixels: bool = True,
    memory_budget: int | None = None,
) -> FeatureSet:
    """Features of every image, from the cache when this exact set was computed before.

    With `keep_pixels`, the decoded images are kept in a file for the next model of the same size
    (`core.decoded`); otherwise they are streamed from the decoding threads to the forward pass and dropped
    (`core.stream`), unless that file is already there. Each batch's features are written to the cache file
    as they come (`core.feature_file`), as float16 when all of them as float32 are over `FLOAT16_FROM_BYTES`,
    and read back as float32: the same values either way. They are read into memory when, as float32, they
    fit `memory_budget` bytes (default `memory_budget_bytes()`), else left on disk as `FeatureRows`.
    Raises `Cancelled` when `should_stop()` turns true (checked before each batch); the decoding of the
    images stops too, and nothing is cached.
    """
    path, sizes = extractor.cache_path, (len(dataset.train), len(dataset.validation))
    budget = memory_budget_bytes() if memory_budget is None else memory_budget
    if (cached := _read_cache(path, len(dataset.images), budget)) is not None:
        return _split(cached, sizes, path, cached=True)

    kept = keep_pixels or paths.decoded_images(dataset.fingerprint, extractor.size).exists()
    # decoding starts now, while the model is built
    images = decoded_images(dataset, extractor.size) if kept else PixelStream(dataset, extractor.size)
    stage = Stage.EXTRACTING if images.complete else Stage.DECODING
    runtime = extractor.runtime
    labels = np.array([r.label for r in dataset.images], np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.npz")  # one per process: never shared
    try:
        writer = FeatureWriter(partial, len(labels), FLOAT16_FROM_BYTES)
        try:
            seconds = 0.0
            for batch in images.batches(BATCH_SIZE, should_stop):
                started = time.perf_counter()
                output = runtime(batch)
                seconds += time.perf_counter() - started
                writer.write(output)
                if progress:
                    progress(stage, writer.written, len(labels))
            details = dict(runtime=runtime.name, runtime_note=runtime.fallback_reason or "", device=runtime.device)
            writer.close(labels=labels, seconds=seconds, **details)
        except BaseException:
            writer.abort()
            raise
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    written = _read_cache(path, len(labels), budget)
    if written is None:
        raise ValueError(f"The features just written to {path} cannot be read back: expected {len(labels)} rows")
    return _split(written, sizes, path, cached=False)


def _read_cache(path: Path, count: int, budget: int) -> dict | None:
    """The cached arrays for `count` images, or None when there are none; a damaged file is removed.
    `features` is a float32 array when it fits `budget` bytes, else `FeatureRows` on disk."""
    if not path.exists():
        return None
    try:
        rows = open_features(path)
        with np.load(path) as saved:  # members are read one by one: the matrix is not loaded here
            arrays = {key: saved[key] for key in _CACHED_ARRAYS}
            arrays["device"] = saved["device"] if "device" in saved.files else "CPU"  # cached before devices
        if len(rows) == len(arrays["labels"]) == count:
            arrays["features"] = np.asarray(rows) if len(rows) * rows.dim * 4 <= budget else rows
            return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    path.unlink(missing_ok=True)  # truncated, unreadable or for other images: computed again
    return None


def _split(arrays: dict, sizes: tuple[int, int], path: Path, cached: bool) -> FeatureSet:
    """The saved arrays cut into train, validation and test (`sizes`: how many train and validation)."""
    features, labels = arrays["features"], arrays["labels"]
    train, validation = sizes
    return FeatureSet(
        features[:train],
        labels[:train],
        features[train : train + validation],
        labels[train : train + validation],
        features[train + validation :],
        labels[train + validation :],
        seconds=float(arrays["seconds"]),
        cached=cached,
        runtime=str(arrays["runtime"]),
        runtime_note=str(arrays["runtime_note"]),
        path=path,
        device=str(arrays["device"]),
    )
