"""Fine-tuning a finished model: the second stage after the sweep has ranked the frozen bases.

Starting from the complete model (base and trained head, `core.complete`), the top convolution layers
of the base are unfrozen and trained with the head at a low learning rate, on augmented training images,
choosing the epoch on the validation images and scoring on the same test images as the sweep.

Every BatchNormalization layer stays frozen, and so in inference mode: a trainable one updates its
moving statistics on every training batch, even at learning rate 0 (measured on Fashion-MNIST: -28
points after one epoch). The frozen model itself is the first candidate (epoch 0): when no epoch beats
it on validation, its weights are kept, so fine-tuning never makes the chosen model worse.

The result is stored beside the frozen one, in the same run, as `<model> fine-tuned`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from core import paths, run_data
from core.complete import BASE_LAYER, load_complete
from core.config import DEFAULT_SEED
from core.evaluate import classification_metrics, mcnemar_p, paired_difference_interval, wilson_interval
from core.progress import Progress, Stage
from core.records import FineTuning, ModelResult, Status
from core.store import Store

SUFFIX = " fine-tuned"
MAX_MODELS_PER_JOB = 3  # models of a run that can be fine-tuned in one go
AUGMENT = {"flip": True, "rotation": 0.05, "zoom": 0.1, "contrast": 0.1}  # what "augment" turns on, app and CLI


@dataclass(frozen=True)
class FineTuneSettings:
    """How to fine-tune. `unfreeze`: the base's top convolution layers to train (None: all of them).

    The defaults are what measured best of 17 recipes on Fashion-MNIST (5,000 training images, MobileNet:0.25
    at 128 px; `bench/finetune.py` measures them through the product): every layer but BatchNormalization, Adam at 3e-4 decayed to 0 over 8
    epochs (cosine): +3.1 to +3.4 points over the frozen head on three seeds, against +1.0 to +1.8 at a
    constant 1e-4. The first 1-3 epochs score below the frozen model before they pass it, hence a patience
    of 4. Augmentation (flips, rotation, zoom, contrast) cost about a point in 8 epochs; flips alone were
    neutral to +0.4 over 12. It is off unless asked for.
    """

    epochs: int = 8
    unfreeze: int | None = None
    learning_rate: float = 3e-4  # the start of a cosine decay to 0 at the last planned epoch
    patience: int = 4  # epochs without a better validation score before stopping
    batch_size: int = 32
    flip: bool = False  # horizontal flips: never where a flip changes the class (digits, text, arrows)
    rotation: float = 0.0  # of a full turn, either way (0.05 is a small rotation)
    zoom: float = 0.0  # (0.1: up to 10% in or out)
    contrast: float = 0.0  # (0.1: up to 10% either way)
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer. Received: epochs={self.epochs}")
        if self.unfreeze is not None and not (isinstance(self.unfreeze, int) and self.unfreeze >= 0):
            raise ValueError(
                f"unfreeze must be a whole number of layers (or None: all). Received: unfreeze={self.unfreeze}"
            )
        if not 0 <= self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in [0, 1). Received: learning_rate={self.learning_rate}")
        for name in ("rotation", "zoom", "contrast"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1). Received: {name}={getattr(self, name)}")

    @property
    def augment(self) -> dict[str, float | bool]:
        return {"flip": self.flip, "rotation": self.rotation, "zoom": self.zoom, "contrast": self.contrast}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fine_tuned_name(model: str) -> str:
    return f"{model}{SUFFIX}"


def source_result(store: Store, run_id: int, model: str) -> ModelResult:
    """The finished frozen result of `model` in run `run_id`, checked to be one that can be fine-tuned."""
    results = {result.model: result for result in store.results(run_id)}
    result = results.get(model)
    tunable = [name for name, r in results.items() if isinstance(r, ModelResult) and r.status == Status.OK]
    tunable = [name for name in tunable if not results[name].fine_tuning]
    if not isinstance(result, ModelResult) or result.status != Status.OK or result.fine_tuning:
        raise ValueError(f"Run {run_id} has no finished frozen model {model!r} to fine-tune. Finished: {tunable}")
    return result


def fine_tune(
    run_id: int,
    model: str,
    settings: FineTuneSettings = FineTuneSettings(),
    *,
    store: Store | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ModelResult | None:
    """Fine-tune `model` of run `run_id`, store the result beside it and return it (None when cancelled)."""
    import keras

    store = store or Store()
    run = store.run(run_id)
    if run is None:
        raise ValueError(f"No run {run_id} in {store.path}. Received: run={run_id}")
    source = source_result(store, run_id, model)
    name = fine_tuned_name(model)
    progress = Progress(run_id, [name], model=name, epochs=settings.epochs)

    def report(stage: Stage, done: int = 0, total: int = 0) -> None:
        progress.stage, progress.done, progress.total = stage, done, total
        progress.advance()
        if on_progress:
            on_progress(progress)

    report(Stage.LOADING)
    dataset = run_data.run_dataset(run, source)
    size = source.input_size
    train_images, validation_images, test_images = (
        run_data.images(records, size) for records in (dataset.train, dataset.validation, dataset.test)
    )
    train_labels, validation_labels, test_labels = (
        run_data.labels(records) for records in (dataset.train, dataset.validation, dataset.test)
    )

    keras.utils.set_random_seed(settings.seed)
    network = load_complete(source)
    trained_layers = unfreeze(network, settings.unfreeze)
    batches = int(np.ceil(len(train_images) / settings.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, decay_steps=settings.epochs * batches)
    network.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    validation = (validation_images, validation_labels)
    frozen_loss, frozen_accuracy = network.evaluate(*validation, batch_size=64, verbose=0)
    chooser = _BestOnValidation(network, frozen_accuracy, frozen_loss, settings.patience)
    stopped = False
    epoch_seconds: list[float] = []

    class Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            progress.epoch = epoch + 1
            self.started = time.perf_counter()
            report(Stage.FINE_TUNING, 0, batches)

        def on_train_batch_end(self, batch, logs=None):
            nonlocal stopped
            report(Stage.FINE_TUNING, batch + 1, batches)
            if should_stop and should_stop():
                stopped = self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)
            progress.metrics = {key: float(value) for key, value in (logs or {}).items()}
            store.save_epoch(run_id, name, epoch + 1, progress.metrics)
            chooser.epoch_end(epoch + 1, progress.metrics)
            report(Stage.FINE_TUNING, batches, batches)

    store.clear_history(run_id, name)
    train = _training_data(train_images, train_labels, settings)
    fit = dict(validation_data=validation, validation_batch_size=64, epochs=settings.epochs, shuffle=False)
    fit |= dict(verbose=0, callbacks=[Report()])  # validated in batches of 64, as the frozen model was: same rounding
    network.fit(train, **fit)  # `train` shuffles itself
    if stopped:
        report(Stage.CANCELLED)
        return None
    chooser.restore()

    probabilities = np.asarray(network.predict(test_images, batch_size=64, verbose=0))
    scores = classification_metrics(test_labels, probabilities, dataset.classes)
    tuned_right = np.asarray(scores.predictions) == test_labels
    model_path = paths.run_dir(run_id) / f"{paths.file_stem(name)}.keras"
    _save(network, model_path)
    tuning = FineTuning(
        source=model,
        unfreeze=settings.unfreeze,
        layers_trained=trained_layers,
        learning_rate=settings.learning_rate,
        epochs_planned=settings.epochs,
        augment=settings.augment,
        seconds_per_epoch=round(float(np.mean(epoch_seconds)), 2) if epoch_seconds else 0.0,
        frozen_accuracy=source.test_accuracy,
        lift=scores.accuracy - source.test_accuracy,
        lift_ci=paired_difference_interval(source.test_right, tuned_right),
        p_value=mcnemar_p(source.test_right, tuned_right),
        kept_frozen=chooser.best_epoch == 0,
    )
    result = replace(  # the same network and test images as the frozen source (its latency too)
        source,
        model=name,
        test_accuracy=scores.accuracy,
        test_accuracy_ci=list(wilson_interval(int(tuned_right.sum()), len(test_labels))),
        balanced_accuracy=scores.balanced_accuracy,
        macro_f1=scores.macro_f1,
        test_predictions=scores.predictions,
        val_accuracy=chooser.best_accuracy,
        val_loss=chooser.best_loss,
        per_class=scores.per_class,
        confusion=scores.confusion,
        epochs_run=len(epoch_seconds),
        best_epoch=chooser.best_epoch,
        epochs_planned=settings.epochs,
        runtime="tf",
        runtime_note="",
        head_seconds=round(sum(epoch_seconds), 3),
        head_cached=False,
        head_path=None,
        model_path=str(model_path),
        subset_accuracy=None,
        fine_tuning=tuning,
    )
    store.save_result(run_id, result)
    progress.finished = [name]
    report(Stage.DONE)
    return result


def unfreeze(network, top: int | None) -> int:
    """Make the top `top` convolution (or dense) layers of the base trainable (None: every one), keep
    every BatchNormalization layer frozen, and return how many base layers train."""
    import keras

    base = network.get_layer(BASE_LAYER)
    base.trainable = True
    weighted = [
        layer for layer in _layers(base) if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    chosen = weighted if top is None else weighted[len(weighted) - top :] if top else []
    for layer in _layers(base):
        if layer.weights:
            layer.trainable = layer in chosen
    return len(chosen)


def _layers(model) -> Iterator:
    """Every layer inside `model`, nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _training_data(images: np.ndarray, labels: np.ndarray, settings: FineTuneSettings):
    """Shuffled, augmented batches of uint8 images (augmented as floats, rounded back to uint8)."""
    import keras
    import tensorflow as tf

    seed = settings.seed
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)] if settings.flip else []
    layers += [keras.layers.RandomRotation(settings.rotation, seed=seed)] if settings.rotation else []
    layers += [keras.layers.RandomZoom((-settings.zoom, settings.zoom), seed=seed)] if settings.zoom else []
    layers += (
        [keras.layers.RandomContrast(settings.contrast, value_range=(0, 255), seed=seed)] if settings.contrast else []
    )
    augment = keras.Sequential(layers)

    def augmented(batch, batch_labels):
        floats = augment(tf.cast(batch, tf.float32), training=True)
        return tf.cast(tf.clip_by_value(tf.round(floats), 0, 255), tf.uint8), batch_labels

    data = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images), seed=seed)
    data = data.batch(settings.batch_size)
    return (data.map(augmented, num_parallel_calls=tf.data.AUTOTUNE) if layers else data).prefetch(2)


class _BestOnValidation:
    """Keeps the weights of the best epoch on validation (accuracy, then loss), the frozen model being
    epoch 0, and stops after `patience` epochs without a better one."""

    def __init__(self, network, accuracy: float, loss: float, patience: int):
        self.network, self.patience = network, patience
        self.best_accuracy, self.best_loss, self.best_epoch = float(accuracy), float(loss), 0
        self.best_weights = network.get_weights()

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        accuracy, loss = float(logs["val_accuracy"]), float(logs["val_loss"])
        if (accuracy, -loss) > (self.best_accuracy, -self.best_loss):
            self.best_accuracy, self.best_loss, self.best_epoch = accuracy, loss, epoch
            self.best_weights = self.network.get_weights()
        elif epoch - self.best_epoch >= self.patience:
            self.network.stop_training = True

    def restore(self) -> None:
        self.network.set_weights(self.best_weights)


def _save(network, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.keras")
    network.save(partial)
    partial.replace(path)
