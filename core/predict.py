"""Predictions from a trained run: a stored head on its frozen base (or a fine-tuned model's complete
network), and ImageNet labels from a full top."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.images import resized
from core.records import ModelResult
from core.runtimes import FrozenBase
from core.store import Store
from core.zoo import ModelRef, keras_cache


@dataclass
class Classifier:
    """Base + trained head of one model of a run."""

    model: str
    classes: list[str]
    base: FrozenBase
    head: object  # keras.Model

    def predict(self, images: list[Image.Image]) -> np.ndarray:
        """Class probabilities, shape (len(images), len(classes)), for RGB images of any size."""
        batch = np.stack([resized(image, self.base.size) for image in images])
        return np.asarray(self.head(self.base(batch), training=False))


@dataclass
class CompleteClassifier:
    """A complete model (uint8 images in, probabilities out): how a fine-tuned result predicts."""

    model: str
    classes: list[str]
    network: object  # keras.Model
    size: int

    def predict(self, images: list[Image.Image]) -> np.ndarray:
        """Class probabilities, shape (len(images), len(classes)), for RGB images of any size."""
        batch = np.stack([resized(image, self.size) for image in images])
        return np.asarray(self.network(batch, training=False))


def load_classifier(run_id: int, model: str, store: Store | None = None) -> Classifier | CompleteClassifier:
    """The classifier trained for `model` in run `run_id`: its complete model when it has one (fine-tuned)."""
    import keras

    results = {r.model: r for r in (store or Store()).results(run_id)}
    result = results.get(model)
    if not isinstance(result, ModelResult):
        trained = sorted(name for name, r in results.items() if isinstance(r, ModelResult))
        raise ValueError(f"Run {run_id} has no trained model {model!r}. Trained: {trained}")
    if result.model_path:
        network = keras.saving.load_model(result.model_path)
        return CompleteClassifier(model, result.classes, network, result.input_size)
    base = FrozenBase(ModelRef.parse(result.network, result.input_size, result.weights))
    return Classifier(model, result.classes, base, keras.models.load_model(result.head_path))


def imagenet_top5(model_id: str, image: Image.Image) -> list[tuple[str, float]]:
    """The five most likely ImageNet labels from the model's full 1000-class network, at its default size:
    Keras' ImageNet tops take no other (the size and weights in the id are ignored).

    Raises `WeightsUnavailable` when the full network's weights are neither cached nor downloadable.
    """
    spec = ModelRef.parse(model_id).spec
    model = spec.build(spec.default_size, "imagenet", include_top=True)
    batch = spec.preprocess_input(resized(image, spec.default_size)[None].astype("float32"))
    probabilities = np.asarray(model(batch, training=False))[0]
    labels = _imagenet_labels()
    best = np.argsort(probabilities)[::-1][:5]
    return [(labels[i], float(probabilities[i])) for i in best]


def _imagenet_labels() -> list[str]:
    """The 1000 ImageNet labels from the Keras cache, downloading them through Keras when missing."""
    path = keras_cache() / "models" / "imagenet_class_index.json"
    if not path.exists():
        import keras

        path = Path(
            keras.utils.get_file(
                "imagenet_class_index.json",
                "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
                cache_subdir="models",
            )
        )
    index = json.loads(path.read_text())
    return [index[str(i)][1] for i in range(len(index))]
