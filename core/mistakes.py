"""What a trained model gets wrong, image by image: its probabilities on the run's test images, the images
behind one cell of its confusion matrix, and its most confident mistakes.

A frozen model's test probabilities come from the features the sweep cached (its head on them: no forward
pass); a fine-tuned model, or one whose features are no longer cached, runs its complete model on the
test images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.records import ModelResult, Run

BATCH_SIZE = 32


@dataclass
class Predictions:
    """A model's probabilities on the run's test images, in the order of `ModelResult.test_labels`."""

    classes: list[str]
    paths: list[Path]
    files: list[str]  # relative to the dataset's root
    labels: np.ndarray
    probabilities: np.ndarray  # (n, classes)

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def predict_test_images(run: Run, result: ModelResult) -> Predictions:
    """The probabilities of `result`'s model on the test images of `run`."""
    from core import run_data

    dataset = run_data.run_dataset(run, result)
    probabilities = _from_cached_features(run, result, dataset)
    if probabilities is None:
        from core.complete import load_complete

        model = load_complete(result)
        batches = [
            np.asarray(model(run_data.images(dataset.test[start : start + BATCH_SIZE], result.input_size)))
            for start in range(0, len(dataset.test), BATCH_SIZE)
        ]
        probabilities = np.concatenate(batches) if batches else np.zeros((0, len(result.classes)), np.float32)
    return Predictions(
        classes=list(result.classes),
        paths=[record.path for record in dataset.test],
        files=[record.path.relative_to(dataset.root).as_posix() for record in dataset.test],
        labels=np.asarray(result.test_labels, np.int64),
        probabilities=np.asarray(probabilities, np.float32),
    )


def _from_cached_features(run: Run, result: ModelResult, dataset) -> np.ndarray | None:
    """The frozen head on the test features the sweep cached; None for a fine-tuned model or no cache."""
    if result.fine_tuning or not result.head_path or not Path(result.head_path).exists():
        return None
    from core.features import Extractor, extract_features
    from core.runtimes import RUNTIMES
    from core.zoo import ModelRef

    ref = ModelRef.parse(result.network, result.input_size, result.weights)
    for runtime in (run.settings.get("runtime", "auto"), *RUNTIMES):
        extractor = Extractor(dataset, ref, runtime)
        if extractor.cache_path.exists():
            import keras

            from core.latency import NumpyHead

            features = extract_features(dataset, extractor)
            return NumpyHead.of(keras.saving.load_model(result.head_path))(features.test)
    return None


def cell(predictions: Predictions, true: int, predicted: int) -> pd.DataFrame:
    """The test images of one confusion-matrix cell (true class, predicted class), most confident first."""
    rows = np.flatnonzero((predictions.labels == true) & (predictions.predictions == predicted))
    return _table(predictions, rows[np.argsort(-predictions.probabilities[rows, predicted], kind="stable")])


def confident_mistakes(predictions: Predictions, limit: int = 12) -> pd.DataFrame:
    """The wrongly classified test images whose wrong class had the highest probability, at most `limit`."""
    wrong = np.flatnonzero(predictions.predictions != predictions.labels)
    confidence = predictions.probabilities[wrong, predictions.predictions[wrong]]
    return _table(predictions, wrong[np.argsort(-confidence, kind="stable")][:limit])


def _table(predictions: Predictions, rows: np.ndarray) -> pd.DataFrame:
    chosen = predictions.predictions[rows]
    return pd.DataFrame(
        {
            "file": [predictions.files[i] for i in rows],
            "true class": [predictions.classes[predictions.labels[i]] for i in rows],
            "predicted class": [predictions.classes[c] for c in chosen],
            "probability": predictions.probabilities[rows, chosen].astype(float),
            "index": rows,
        }
    )
