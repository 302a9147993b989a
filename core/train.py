"""Train a classification head on cached features of a frozen base.

The head is dropout and one softmax layer: the transfer-learning recipe of the Keras and TensorFlow
tutorials, applied to features instead of images, so an epoch costs milliseconds instead of a pass
through the base.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config import DEFAULT_EPOCHS, DEFAULT_SEED
from core.features import FeatureSet

# Epoch callback: (epoch starting at 1, metrics {loss, accuracy, val_loss, val_accuracy}) -> None.
EpochCallback = Callable[[int, dict[str, float]], None]

_STEPS_PER_EXECUTION = 32  # batches per compiled call: one call per epoch for 2,000 images at batch 64


@dataclass(frozen=True)
class HeadSettings:
    epochs: int = DEFAULT_EPOCHS
    dropout: float = 0.2
    learning_rate: float = 1e-3
    batch_size: int = 64  # or smaller, for at least `min_steps` updates per epoch on few images
    min_steps: int = 8
    patience: int = 3  # early stopping on validation loss; the best epoch's weights are kept
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer. Received: epochs={self.epochs}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")


@dataclass
class TrainedHead:
    model: object  # keras.Model: features -> class probabilities
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    stopped: bool = False  # stopped early by a cancel request
    cached: bool = False  # loaded from the cache instead of trained


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
    seeded, so it would come out the same) is loaded instead, and its epochs are replayed to `on_epoch`.
    """
    import keras

    if cache_path is not None and cache_path.exists():
        return _load(cache_path, on_epoch)
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}")
    import tensorflow as tf

    keras.utils.set_random_seed(settings.seed)
    head = build_head(features.train.shape[1], num_classes, settings.dropout)
    head.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=_STEPS_PER_EXECUTION,
    )
    # tf.data in memory instead of NumPy arrays: measured here, fit's per-epoch overhead on arrays was
    # most of a head's training time (17 epochs on 2,000 features: 3.1 s with arrays, 1.6 s like this).
    train = (
        tf.data.Dataset.from_tensor_slices((features.train, features.train_labels))
        .shuffle(len(features.train), seed=settings.seed, reshuffle_each_iteration=True)
        .batch(head_batch_size(len(features.train), settings))
    )
    validation = (
        tf.data.Dataset.from_tensor_slices((features.validation, features.validation_labels)).batch(1024).cache()
    )
    trained = TrainedHead(head)

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metrics = {key: float(value) for key, value in (logs or {}).items()}
            trained.history.append(metrics)
            if on_epoch:
                on_epoch(epoch + 1, metrics)
            if should_stop and should_stop():
                trained.stopped = self.model.stop_training = True

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
    trained.seconds = time.perf_counter() - started
    trained.best_epoch = _best_epoch(trained.history)
    if cache_path is not None and not trained.stopped:
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
    partial = path.with_name(f".{path.stem}.partial.keras")
    trained.model.save(partial)
    path.with_suffix(".json").write_text(json.dumps({"history": trained.history, "seconds": trained.seconds}))
    partial.replace(path)


def _load(path: Path, on_epoch: EpochCallback | None) -> TrainedHead:
    import keras

    saved = json.loads(path.with_suffix(".json").read_text())
    history = saved["history"]
    for epoch, metrics in enumerate(history, start=1):
        if on_epoch:
            on_epoch(epoch, metrics)
    return TrainedHead(keras.models.load_model(path), history, _best_epoch(history), saved["seconds"], cached=True)


def _best_epoch(history: list[dict[str, float]]) -> int:
    """The epoch (from 1) with the lowest validation loss: the one early stopping restores."""
    return int(np.argmin([epoch["val_loss"] for epoch in history])) + 1
