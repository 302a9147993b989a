"""Train a classification head on cached features of a frozen base.

The head is dropout and one softmax layer: the transfer-learning recipe of the Keras and TensorFlow
tutorials, applied to features instead of images, so an epoch costs milliseconds instead of a pass
through the base.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.features import FeatureSet

# Epoch callback: (epoch starting at 1, metrics {loss, accuracy, val_loss, val_accuracy}) -> None.
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class HeadSettings:
    epochs: int = 20
    dropout: float = 0.2
    learning_rate: float = 1e-3
    batch_size: int = 64
    patience: int = 3  # early stopping on validation loss; the best epoch's weights are kept
    seed: int = 1337

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
) -> TrainedHead:
    """Fit the head on the training features, validating and early-stopping on the validation ones."""
    import keras

    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}")
    keras.utils.set_random_seed(settings.seed)
    head = build_head(features.train.shape[1], num_classes, settings.dropout)
    head.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
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

    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=settings.patience, restore_best_weights=True
    )
    started = time.perf_counter()
    head.fit(
        features.train,
        features.train_labels,
        validation_data=(features.validation, features.validation_labels),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[stopper, Report()],
    )
    trained.seconds = time.perf_counter() - started
    losses = [epoch["val_loss"] for epoch in trained.history]
    trained.best_epoch = int(np.argmin(losses)) + 1
    return trained
