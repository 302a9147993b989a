"""Evaluation: scores with their uncertainty, paired comparisons, the Pareto front, and the recommendation.

A score on n test images is an estimate: `wilson_interval` gives its 95% interval, and `mcnemar_p` asks
whether two models that were scored on the same images really differ. The recommendation is the smallest
model that is not clearly worse than the best, and it says so when the top models are tied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.records import ClassMetrics, ModelResult, Recommendation, Result, Status
from core.runtimes import ENGINES

Z_95 = 1.959964  # two-sided 95%
SIGNIFICANCE = 0.05  # a difference with a McNemar p-value below this is "clear"


@dataclass
class Scores:
    accuracy: float
    balanced_accuracy: float  # the mean of per-class recalls: what imbalanced classes don't inflate
    macro_f1: float
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # rows: true class
    predictions: list[int]


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> Scores:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    predicted = probabilities.argmax(axis=1)
    n = len(classes)
    confusion = np.bincount(labels * n + predicted, minlength=n * n).reshape(n, n)
    true_positive = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(true_positive / confusion.sum(axis=0))
        recall = np.nan_to_num(true_positive / support)
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    per_class = [
        ClassMetrics(name, float(p), float(r), float(f), int(s))
        for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    ]
    present = support > 0  # a class absent from these images has no recall to average
    return Scores(
        accuracy=float(true_positive.sum() / max(1, len(labels))),
        balanced_accuracy=float(recall[present].mean()) if present.any() else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class=per_class,
        confusion=confusion.tolist(),
        predictions=predicted.astype(int).tolist(),
    )


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `correct / total` (95% by default): unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 or 100%."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if correct == 0 else low), (1.0 if correct == total else high)  # exact at the ends, not 0.9999...


def mcnemar_p(first_right: np.ndarray, second_right: np.ndarray) -> float:
    """Exact two-sided McNemar test: the p-value that two models scored on the same images differ only by
    chance, from the images exactly one of them gets right."""
    only_first = int(np.sum(first_right & ~second_right))
    only_second = int(np.sum(~first_right & second_right))
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_first, only_second) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def paired_difference_interval(first_right: np.ndarray, second_right: np.ndarray, z: float = Z_95) -> list[float]:
    """The 95% interval of accuracy(second) - accuracy(first) on the same images (Wald, for paired
    proportions: only the images exactly one of them gets right carry the difference)."""
    n = len(first_right)
    if n == 0:
        return [-1.0, 1.0]
    only_first = int(np.sum(first_right & ~second_right))
    only_second = int(np.sum(~first_right & second_right))
    difference = (only_second - only_first) / n
    half = z * math.sqrt(max(0.0, only_first + only_second - (only_second - only_first) ** 2 / n)) / n
    return [max(-1.0, difference - half), min(1.0, difference + half)]


def images_to_resolve(first_right: np.ndarray, second_right: np.ndarray) -> int | None:
    """About how many test images would make the observed difference between two models significant at
    5% (McNemar's chi-square reaching 3.84), if the rates of disagreement held; None when they never differ
    in one direction more than the other."""
    only_first = int(np.sum(first_right & ~second_right))
    only_second = int(np.sum(~first_right & second_right))
    if only_first == only_second:
        return None
    scale = 3.84 * (only_first + only_second) / (only_first - only_second) ** 2
    return math.ceil(len(first_right) * max(1.0, scale))


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
    """The smallest model not clearly worse than the best test accuracy, and the fastest by the same rule.

    "Not clearly worse": within `tolerance` of the best, or not significantly different from it on the
    same test images (McNemar p >= `SIGNIFICANCE`). Only fully trained models count (not partial ones).
    Returns None when no model was trained.
    """
    scored = [r for r in results if isinstance(r, ModelResult) and r.status == Status.OK]
    if not scored:
        return None
    best = max(scored, key=lambda r: (r.test_accuracy, -r.params))
    right = {r.model: r.test_right for r in scored}
    p_values = {r.model: mcnemar_p(right[best.model], right[r.model]) for r in scored if r is not best}
    tied = [
        r
        for r in scored
        if r is best or r.test_accuracy >= best.test_accuracy - tolerance or p_values[r.model] >= SIGNIFICANCE
    ]
    smallest = min(tied, key=lambda r: (r.params, -r.test_accuracy))
    fastest = {}
    for engine in ENGINES:
        timed = [r for r in tied if r.latency.get(engine)]
        if timed:
            fastest[engine] = min(timed, key=lambda r: (r.latency[engine].ms, -r.test_accuracy)).model
    resolve = images_to_resolve(right[best.model], right[smallest.model]) if smallest is not best else None
    return Recommendation(
        model=smallest.model,
        best=best.model,
        fastest=fastest,
        tolerance=tolerance,
        reason=_reason(smallest, best, tied, p_values, tolerance, resolve),
        tied=[r.model for r in tied],
        p_values=p_values,
        images_to_resolve=resolve,
    )


def _reason(
    smallest: ModelResult,
    best: ModelResult,
    tied: list[ModelResult],
    p_values: dict[str, float],
    tolerance: float,
    resolve: int | None,
) -> str:
    size = f"{smallest.params / 1e6:.2f}M parameters"
    on = f"on {best.test_images:,} test images"
    points = f"{tolerance * 100:g} point{'' if tolerance == 0.01 else 's'}"
    if smallest is best:
        return (
            f"{best.model} has the best test accuracy, {best.score_text()} {on}, with {size}, and no smaller model "
            f"is statistically tied with it (McNemar p < {SIGNIFICANCE:g}) or within {points} of it."
        )
    text = (
        f"{smallest.model} is the smallest of the {len(tied)} models not clearly below the best test accuracy "
        f"({best.model}, {best.score_text()} {on}): {smallest.score_text()} with {size}, "
        f"{best.params / smallest.params:.1f}x fewer."
    )
    p = p_values[smallest.model]
    if p >= SIGNIFICANCE:
        text += (
            f" The two are statistically tied on these images (McNemar p = {p:.2f}): the ranking between them is noise"
        )
        text += f"; about {resolve:,} test images would settle it if the difference holds." if resolve else "."
    return text


def fastest_text(recommendation: Recommendation, results: list[Result], engine: str) -> str | None:
    """`Fastest by the same rule in ONNX Runtime: X at 1.0 ms/image.`, in the runtime the user looks at."""
    model = recommendation.fastest.get(engine)
    result = next((r for r in results if r.model == model), None)
    if result is None:
        return None
    return f"Fastest by the same rule in {ENGINES[engine]}: {model} at {result.latency[engine].ms:.1f} ms/image."
