"""Features of a frozen base: one forward pass per image per model, cached on disk.

A frozen base computes the same features every epoch, so they are computed once and the head trains on
them. Images are decoded and resized once per input size for the whole sweep (`core.decoded`), starting
while the model is still being built, and features are saved per model, weights and input size under a
fingerprint of the dataset's contents.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from core import paths
from core.data import Dataset
from core.decoded import decoded_images
from core.images import load_image
from core.progress import Stage
from core.runtimes import RUNTIMES, FrozenBase, Runtime, make_runtime
from core.zoo import ModelRef

BATCH_SIZE = 16  # measured here: small batches keep depthwise convolutions in cache (MobileNets ~20% faster than 64)
CALIBRATION_IMAGES = 8  # the user's images that an exported graph must reproduce TensorFlow's features on

# Progress callback: (stage, done, total); the stage is `Stage.EXTRACTING`, or `Stage.DECODING` while the
# images are decoded for the first time at this size.
Progress = Callable[[Stage, int, int], None]


@dataclass
class FeatureSet:
    """Features and labels of the three sets, as computed (or read back) for one model."""

    train: np.ndarray
    train_labels: np.ndarray
    validation: np.ndarray
    validation_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    seconds: float  # forward-pass time when the features were computed
    cached: bool  # True when read from the cache in this call
    runtime: str  # what computed them: "tf" or "onnx"
    runtime_note: str  # why ONNX was not used, when it was asked for ("" otherwise)
    path: Path  # the cache file


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
        return make_runtime(self.base, self.requested, calibration, paths.onnx_graph(self.ref.stem))

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


def extract_features(dataset: Dataset, extractor: Extractor, progress: Progress | None = None) -> FeatureSet:
    """Features of every image, from the cache when this exact set was computed before."""
    path, sizes = extractor.cache_path, (len(dataset.train), len(dataset.validation))
    if path.exists():
        with np.load(path) as saved:
            arrays = {key: saved[key] for key in saved.files}
        return _split(arrays, sizes, path, cached=True)

    images = decoded_images(dataset, extractor.size)  # decoding starts now, while the model is built
    stage = Stage.EXTRACTING if images.complete else Stage.DECODING
    runtime = extractor.runtime
    labels = np.array([r.label for r in dataset.images], np.int32)
    features: np.ndarray | None = None
    done, seconds = 0, 0.0
    for batch in images.batches(BATCH_SIZE):
        started = time.perf_counter()
        output = runtime(batch)
        seconds += time.perf_counter() - started
        if features is None:
            features = np.empty((len(labels), output.shape[1]), np.float32)
        features[done : done + len(batch)] = output
        done += len(batch)
        if progress:
            progress(stage, done, len(labels))
    arrays = dict(
        features=features,
        labels=labels,
        seconds=seconds,
        runtime=runtime.name,
        runtime_note=runtime.fallback_reason or "",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)
    return _split(arrays, sizes, path, cached=False)


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
    )
