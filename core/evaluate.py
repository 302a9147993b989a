"""Evaluation: accuracy and per-class metrics, the Pareto front, and the recommendation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.records import ClassMetrics, ModelResult, Recommendation, Result


@dataclass
class Scores:
    accuracy: float
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # rows: true class


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> Scores:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix (rows: true class)."""
    predicted = probabilities.argmax(axis=1)
    n = len(classes)
    confusion = np.bincount(labels * n + predicted, minlength=n * n).reshape(n, n)
    true_positive = np.diag(confusion).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(true_positive / confusion.sum(axis=0))
        recall = np.nan_to_num(true_positive / confusion.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    per_class = [
        ClassMetrics(name, float(p), float(r), float(f), int(s))
        for name, p, r, f, s in zip(classes, precision, recall, f1, confusion.sum(axis=1), strict=True)
    ]
    return Scores(float(true_positive.sum() / max(1, len(labels))), per_class, confusion.tolist())


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: smaller-or-equal x and higher-or-equal y (one strictly).

    Returned in increasing x order, which is the order to draw the front line in.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], float("-inf")
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def recommend(results: list[Result], tolerance: float) -> Recommendation | None:
    """The smallest model within `tolerance` of the best validation accuracy, and the fastest by the same rule.

    Only trained models (`ModelResult`) count; those not timed have no say in "fastest". Returns None
    when no model was trained.
    """
    scored = [r for r in results if isinstance(r, ModelResult)]
    if not scored:
        return None
    best = max(scored, key=lambda r: r.val_accuracy)
    good = [r for r in scored if r.val_accuracy >= best.val_accuracy - tolerance]
    smallest = min(good, key=lambda r: (r.params, -r.val_accuracy))
    timed = [r for r in good if r.latency_ms is not None]
    fastest = min(timed, key=lambda r: (r.latency_ms, -r.val_accuracy)) if timed else None
    return Recommendation(
        model=smallest.model,
        best=best.model,
        fastest=fastest and fastest.model,
        tolerance=tolerance,
        reason=_reason(smallest, fastest, best, good, tolerance),
    )


def _reason(
    smallest: ModelResult, fastest: ModelResult | None, best: ModelResult, good: list[ModelResult], tolerance: float
) -> str:
    points = f"{tolerance * 100:g} point{'' if tolerance == 0.01 else 's'}"
    size = f"{smallest.params / 1e6:.2f}M parameters"
    if smallest is best:
        text = (
            f"{best.model} has the best validation accuracy ({best.val_accuracy:.1%}, {size}) "
            f"and no smaller model comes within {points} of it"
        )
    else:
        text = (
            f"{smallest.model} is the smallest of the {len(good)} models within {points} of the best "
            f"validation accuracy ({best.val_accuracy:.1%}, {best.model}): "
            f"{smallest.val_accuracy:.1%} with {size}, {best.params / smallest.params:.1f}x fewer"
        )
    if fastest is None:
        return text + "."
    return text + f". Fastest by the same rule: {fastest.model} at {fastest.latency_ms:.1f} ms/image."
