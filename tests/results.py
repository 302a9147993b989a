"""Records for tests: a trained model's result with every field filled, and test figures from predictions."""

from __future__ import annotations

import numpy as np

from core.evaluate import wilson_interval
from core.records import ClassMetrics, Latency, ModelResult

# The test-set figures of `model_result`: the confusion [[44, 6], [4, 46]] on 100 test images, image by image.
TEST_FIGURES = dict(  # the interval: Wilson's for 90 of 100, rounded
    test_accuracy=0.9,
    test_accuracy_ci=[0.8256, 0.9448],
    test_images=100,
    balanced_accuracy=0.9,
    macro_f1=0.901,
    test_labels=[0] * 50 + [1] * 50,
    test_predictions=[0] * 44 + [1] * 6 + [0] * 4 + [1] * 46,
)


def model_result(**changes) -> ModelResult:
    """A trained MobileNet:0.25 at 128 px on two classes, run in ONNX Runtime and timed in both engines."""
    values = dict(
        model="MobileNet:0.25@128",
        family="MobileNet",
        input_size=128,
        weights="imagenet",
        params=219_058,
        base_params=218_544,
        feature_dim=256,
        size_mb=0.88,
        classes=["cat", "dog"],
        **TEST_FIGURES,
        val_accuracy=0.9,
        val_loss=0.25,
        per_class=[ClassMetrics("cat", 0.92, 0.88, 0.9, 50), ClassMetrics("dog", 0.885, 0.92, 0.902, 50)],
        confusion=[[44, 6], [4, 46]],
        epochs_run=12,
        best_epoch=9,
        epochs_planned=20,
        class_weighted=False,
        runtime="onnx",
        runtime_note="",
        feature_seconds=1.5,
        features_cached=False,
        head_seconds=0.8,
        head_cached=True,
        latency={"tf": Latency(4.2, 310.0), "onnx": Latency(1.1, 950.0)},
        subset_accuracy=0.88,
        head_path="/runs/1/MobileNet_0.25_128.keras",
    )
    return ModelResult(**{**values, **changes})


def scored_on(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """The test-set fields of a `ModelResult` whose answers on the test images are `predictions`."""
    right = int(np.sum(np.asarray(labels) == np.asarray(predictions)))
    accuracy = right / len(labels)
    return dict(
        test_accuracy=accuracy,
        test_accuracy_ci=list(wilson_interval(right, len(labels))),
        test_images=len(labels),
        balanced_accuracy=accuracy,
        macro_f1=accuracy,
        test_labels=list(map(int, labels)),
        test_predictions=list(map(int, predictions)),
    )
