"""Evaluation on small made-up numbers: metrics, the Pareto front and the recommendation."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluate import Scores, classification_metrics, pareto_front, recommend
from core.records import ClassMetrics, Failed, Latency, ModelResult


def _result(model: str, accuracy: float, params: float, latency: float | None) -> ModelResult:
    """A trained model with just what the recommendation looks at: accuracy, parameters and latency (ms)."""
    return ModelResult(
        model=model,
        family="test",
        input_size=224,
        weights="imagenet",
        params=int(params),
        base_params=int(params),
        feature_dim=8,
        size_mb=round(params * 4 / 1e6, 2),
        classes=["a", "b"],
        val_accuracy=accuracy,
        val_loss=0.3,
        per_class=[],
        confusion=[[0, 0], [0, 0]],
        epochs_run=1,
        best_epoch=1,
        runtime="tf",
        runtime_note="",
        feature_seconds=0.0,
        features_cached=False,
        head_seconds=0.0,
        head_cached=False,
        latency={} if latency is None else {"tf": Latency(latency, 1000 / latency)},
    )


def test_classification_metrics_from_known_predictions():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    metrics = classification_metrics(labels, np.eye(3)[predicted], ["a", "b", "c"])
    assert isinstance(metrics, Scores) and all(isinstance(item, ClassMetrics) for item in metrics.per_class)
    assert metrics.accuracy == pytest.approx(4 / 6)
    assert metrics.confusion == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    a, b, c = metrics.per_class
    assert (a.name, b.name, c.name) == ("a", "b", "c")
    assert (a.precision, a.recall, a.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall) == (pytest.approx(2 / 3), 1.0)
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)


def test_pareto_front_in_increasing_size():
    # (params, accuracy): "dominated" is bigger and worse than "mid"; a tie in size keeps the more accurate one
    points = [(20e6, 0.97), (5e6, 0.96), (8e6, 0.955), (0.5e6, 0.90), (5e6, 0.5)]
    assert pareto_front(points) == [3, 1, 0]
    assert pareto_front([]) == []


def test_recommend_picks_smallest_and_fastest_within_tolerance():
    results = [
        _result("big", 0.980, 20e6, 30.0),
        _result("small", 0.975, 1e6, 12.0),
        _result("tiny", 0.940, 0.2e6, 5.0),
        _result("quick", 0.972, 3e6, 8.0),
        Failed("broken", "no weights"),
    ]
    recommendation = recommend(results, tolerance=0.01)
    assert (recommendation.model, recommendation.fastest, recommendation.best) == ("small", "quick", "big")
    assert recommendation.tolerance == 0.01 and recommendation.screening is None
    assert "small is the smallest of the 3 models within 1 point of the best" in recommendation.reason
    assert "20.0x fewer" in recommendation.reason and "Fastest by the same rule: quick" in recommendation.reason
    alone = recommend(results[:1], tolerance=0.01)
    assert alone.reason.startswith("big has the best validation accuracy (98.0%, 20.00M parameters)")
    assert recommend(results, tolerance=0.05).model == "tiny"
    assert recommend([Failed("broken", "no weights")], tolerance=0.01) is None


def test_recommend_without_latency_has_no_fastest():
    recommendation = recommend([_result("a", 0.9, 1e6, None), _result("b", 0.95, 2e6, None)], tolerance=0.01)
    assert (recommendation.model, recommendation.fastest) == ("b", None)
    assert recommendation.reason.endswith("within 1 point of it.")
