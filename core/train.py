"""Train a classification head on cached features of a frozen base.

The head is dropout and one softmax layer: the transfer-learning recipe of the Keras and TensorFlow
tutorials, applied to features instead of images, so an epoch costs milliseconds instead of a pass
through the base.

At inference dropout does nothing, so the head is `softmax(features @ kernel + bias)`: a `TrainedHead`
predicts with NumPy. A cached head is saved twice, as the Keras file (for Predict) and as its two
arrays, so a head read back from the cache needs no Keras (importing it loads TensorFlow: seconds).

Features over the memory budget stay in their cache file; the head then trains on batches read from it
(`core.head_data`): the same batches in the same order as from memory, so the same head.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config import DEFAULT_EPOCHS, DEFAULT_SEED
from core.feature_file import FeatureRows
from core.features import FeatureSet
from core.head_data import training_batches, validation_batches

# Epoch callback: (epoch starting at 1, metrics {loss, accuracy, val_loss, val_accuracy}) -> None.
EpochCallback = Callable[[int, dict[str, float]], None]

_STEPS_PER_EXECUTION = 32  # batches per compiled call: one call per epoch for 2,000 images at batch 64
PREDICT_ROWS = 8192  # features read from disk at a time to predict on


@dataclass(frozen=True)
class HeadSettings:
    epochs: int = DEFAULT_EPOCHS
    dropout: float = 0.2
    learning_rate: float = 1e-3
    batch_size: int = 64  # or smaller, for at least `min_steps` updates per epoch on few images
    min_steps: int = 8
    patience: int = 3  # early stopping on validation loss; the best epoch's weights are kept
    seed: int = DEFAULT_SEED
    class_weights: tuple[float, ...] | None = None  # by label, in the training loss (imbalanced classes)

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer. Received: epochs={self.epochs}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")


@dataclass
class TrainedHead:
    """A trained head: its two arrays (what predicts), its training history and, when there is one, its
    Keras model (read from `path` only when asked for)."""

    kernel: np.ndarray  # (feature_dim, classes) float32
    bias: np.ndarray  # (classes,) float32
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    stopped: bool = False  # stopped early by a cancel request
    cached: bool = False  # loaded from the cache instead of trained
    path: Path | None = None  # the cached Keras file, when it was saved or loaded
    keras_model: object = field(default=None, repr=False)  # keras.Model, once built or loaded

    @classmethod
    def from_model(cls, model, **kwargs) -> TrainedHead:
        """The head of a Keras model built by `build_head`."""
        kernel, bias = model.layers[-1].get_weights()
        return cls(np.asarray(kernel, np.float32), np.asarray(bias, np.float32), keras_model=model, **kwargs)

    @property
    def model(self):
        """The Keras model (features -> class probabilities), loaded from `path` on first use."""
        if self.keras_model is None:
            if self.path is None:
                raise ValueError(
                    "This head has no Keras model: it was neither trained here nor saved. Received: path=None"
                )
            import keras

            self.keras_model = keras.models.load_model(self.path)
        return self.keras_model

    @property
    def params(self) -> int:
        """Its parameters: the dense layer's (dropout has none)."""
        return int(self.kernel.size + self.bias.size)

    def predict(self, features: np.ndarray | FeatureRows) -> np.ndarray:
        """Class probabilities (n, classes), float32, as the Keras model computes them at inference; features on
        disk are read `PREDICT_ROWS` at a time."""
        if isinstance(features, FeatureRows):
            parts = [head_probabilities(rows, self.kernel, self.bias) for rows in features.batches(PREDICT_ROWS)]
            return np.concatenate(parts) if parts else np.empty((0, self.bias.size), np.float32)
        return head_probabilities(features, self.kernel, self.bias)

    def save(self, path: Path) -> None:
        """Write the Keras file to `path`: a copy of the cached one when there is one (no Keras needed)."""
        if self.path is not None and self.path.exists():
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            shutil.copyfile(self.path, partial)
            partial.replace(path)
        else:
            self.model.save(path)


def head_probabilities(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The head at inference, as array math: `softmax(features @ kernel + bias)` (dropout does nothing)."""
    logits = np.asarray(features, np.float32) @ kernel + bias
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def build_head(feature_dim: int, num_classes: int, dropout: float):
    import keras

    return keras.Sequential(
        [
            keras.Input((feature_dim,)),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="head",
    )


def train_head(
    features: FeatureSet,
    num_classes: int,
    settings: HeadSettings = HeadSettings(),
    on_epoch: EpochCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache_path: Path | None = None,
) -> TrainedHead:
    """Fit the head on the training features, validating and early-stopping on the validation ones.

    With `cache_path`, a head trained before on the same features with the same settings (training is
    seeded, so it would come out the same) is loaded instead, without Keras, and its epochs are replayed
    to `on_epoch`.
    """
    if cache_path is not None and cache_path.exists():
        try:
            return _load(cache_path, on_epoch)
        except Exception:  # a damaged cache (truncated, half-written by another version): trained again
            for damaged in (cache_path, *(cache_path.with_suffix(suffix) for suffix in (".npz", ".json"))):
                damaged.unlink(missing_ok=True)
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}")
    import keras

    keras.utils.set_random_seed(settings.seed)
    head = build_head(features.train.shape[1], num_classes, settings.dropout)
    head.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=_STEPS_PER_EXECUTION,
    )
    # tf.data instead of NumPy arrays: measured here, fit's per-epoch overhead on arrays was most of a head's
    # training time (17 epochs on 2,000 features: 3.1 s with arrays, 1.6 s with tf.data). The same batches
    # whether the features are in memory or on disk (`core.head_data`).
    batch_size = head_batch_size(len(features.train), settings)
    train = training_batches(features, batch_size, settings.seed, settings.class_weights)
    validation = validation_batches(features)
    history: list[dict[str, float]] = []
    stopped = False

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            nonlocal stopped
            metrics = {key: float(value) for key, value in (logs or {}).items()}
            history.append(metrics)
            if on_epoch:
                on_epoch(epoch + 1, metrics)
            if should_stop and should_stop():
                stopped = self.model.stop_training = True

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience, restore_best_weights=True)
    started = time.perf_counter()
    head.fit(
        train,
        validation_data=validation,
        epochs=settings.epochs,
        shuffle=False,  # `train` reshuffles itself every epoch
        verbose=0,
        callbacks=[stopper, Report()],
    )
    seconds = time.perf_counter() - started
    trained = TrainedHead.from_model(
        head, history=history, best_epoch=_best_epoch(history), seconds=seconds, stopped=stopped
    )
    if cache_path is not None and not stopped:
        _save(trained, cache_path)
    return trained


def head_batch_size(train_images: int, settings: HeadSettings) -> int:
    """`settings.batch_size`, made smaller on a small training set (a screening subset) so that an
    epoch still makes `settings.min_steps` updates: 80 images in 2 batches of 64 barely train a head."""
    return max(1, min(settings.batch_size, train_images // settings.min_steps))


def head_cache_path(features_path: Path, num_classes: int, settings: HeadSettings) -> Path:
    """Where the head for these features and settings is kept: beside the features."""
    key = hashlib.sha1(json.dumps([num_classes, asdict(settings)]).encode()).hexdigest()[:12]
    return features_path.with_name(f"{features_path.stem}.head-{key}.keras")


def _save(trained: TrainedHead, path: Path) -> None:
    """The Keras file, its arrays (`.npz`) and history (`.json`) beside it, each written atomically; the
    Keras file last, as the one whose presence means the head is cached."""
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    trained.model.save(partial)
    _write_arrays(trained, path.with_suffix(".npz"))
    _write_atomically(path.with_suffix(".json"), json.dumps({"history": trained.history, "seconds": trained.seconds}))
    partial.replace(path)
    trained.path = path


def _write_arrays(trained: TrainedHead, path: Path) -> None:
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.npz")
    np.savez(partial, kernel=trained.kernel, bias=trained.bias)
    partial.replace(path)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    partial.replace(path)


def _load(path: Path, on_epoch: EpochCallback | None) -> TrainedHead:
    """A cached head, from its arrays (no Keras), its epochs replayed to `on_epoch` once all of it is read.
    A head cached before its arrays were saved beside it is read with Keras once, and its arrays are saved
    for next time."""
    saved = json.loads(path.with_suffix(".json").read_text())
    history = saved["history"]
    details = dict(history=history, best_epoch=_best_epoch(history), seconds=saved["seconds"], cached=True, path=path)
    arrays = path.with_suffix(".npz")
    if arrays.exists():
        with np.load(arrays) as saved_arrays:
            trained = TrainedHead(saved_arrays["kernel"], saved_arrays["bias"], **details)
    else:
        import keras

        trained = TrainedHead.from_model(keras.models.load_model(path), **details)
        _write_arrays(trained, arrays)
    for epoch, metrics in enumerate(history, start=1):
        if on_epoch:
            on_epoch(epoch, metrics)
    return trained


def _best_epoch(history: list[dict[str, float]]) -> int:
    """The epoch (from 1) with the lowest validation loss: the one early stopping restores."""
    return int(np.argmin([epoch["val_loss"] for epoch in history])) + 1
