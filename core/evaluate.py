"""Evaluation: validation metrics, latency measured on this host, and the recommendation."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict[str, Any]:
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
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, confusion.sum(axis=1))
    ]
    return {
        "val_accuracy": float(true_positive.sum() / max(1, len(labels))),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def measure_latency(
    predict: Callable[[np.ndarray], Any], size: int, budget_seconds: float = 0.5
) -> tuple[float, float]:
    """(ms per image at batch 1, images per second at batch 32) of `predict` on uint8 images.

    Each is the median of repeated timed calls (at least 3) after one warm-up call, within about
    `budget_seconds`: a sweep times every model in two runtimes, so this is kept short.
    """
    rng = np.random.default_rng(0)

    def median_seconds(batch: int, max_runs: int) -> float:
        images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        predict(images)  # warm-up
        times: list[float] = []
        deadline = time.perf_counter() + budget_seconds / 2
        while len(times) < max_runs and (len(times) < 3 or time.perf_counter() < deadline):
            started = time.perf_counter()
            predict(images)
            times.append(time.perf_counter() - started)
        return float(np.median(times))

    latency_ms = median_seconds(1, 20) * 1000
    throughput = 32 / median_seconds(32, 3)
    return latency_ms, throughput


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


def recommend(results: list[dict[str, Any]], tolerance: float = 0.01) -> dict[str, Any] | None:
    """The smallest model within `tolerance` of the best validation accuracy, and the fastest by the same rule.

    `results` are per-model dicts with `model`, `val_accuracy`, `params` and `latency_ms` (None or
    absent when not timed: then no "fastest"); failed models (no accuracy) are ignored. Returns None
    when no model succeeded.
    """
    scored = [r for r in results if r.get("val_accuracy") is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r["val_accuracy"])
    good = [r for r in scored if r["val_accuracy"] >= best["val_accuracy"] - tolerance]
    smallest = min(good, key=lambda r: (r["params"], -r["val_accuracy"]))
    timed = [r for r in good if r.get("latency_ms") is not None]
    fastest = min(timed, key=lambda r: (r["latency_ms"], -r["val_accuracy"])) if timed else None
    return {
        "model": smallest["model"],
        "fastest": fastest and fastest["model"],
        "best": best["model"],
        "tolerance": tolerance,
        "reason": _reason(smallest, fastest, best, good, tolerance),
    }


def _reason(smallest: dict, fastest: dict, best: dict, good: list[dict], tolerance: float) -> str:
    points = f"{tolerance * 100:g} point{'' if tolerance == 0.01 else 's'}"
    size = f"{smallest['params'] / 1e6:.2f}M parameters"
    if smallest is best:
        text = (
            f"{best['model']} has the best validation accuracy ({best['val_accuracy']:.1%}, {size}) "
            f"and no smaller model comes within {points} of it"
        )
    else:
        text = (
            f"{smallest['model']} is the smallest of the {len(good)} models within {points} of the best "
            f"validation accuracy ({best['val_accuracy']:.1%}, {best['model']}): "
            f"{smallest['val_accuracy']:.1%} with {size}, {best['params'] / smallest['params']:.1f}x fewer"
        )
    if fastest is None:
        return text + "."
    return text + f". Fastest by the same rule: {fastest['model']} at {fastest['latency_ms']:.1f} ms/image."


def screen(
    results: list[dict[str, Any]], keep: int, tolerance: float, validation_images: int, front_only: bool = True
) -> dict[str, Any]:
    """Which models of a screening round (trained on a subset) could still win on the full data.

    Kept ("finalists"): the `keep` most accurate, and every model whose accuracy is within `margin` of
    the best and, with `front_only`, on the accuracy-vs-parameters Pareto front (without it, a round only
    drops the models clearly beaten). The margin is the recommendation's `tolerance` plus two standard
    errors of the best accuracy on `validation_images`, the subset's noise: Agresti-Coull's estimate,
    which stays above 0 when the best model gets every image right. Failed models are neither kept nor
    screened out. Returns {finalists, screened_out, margin}.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1. Received: keep={keep}")
    scored = sorted((r for r in results if r.get("val_accuracy") is not None), key=lambda r: (-r["val_accuracy"], r["params"]))
    if not scored:
        return {"finalists": [], "screened_out": [], "margin": None}
    best = scored[0]["val_accuracy"]
    n = max(1, validation_images) + 4  # Agresti-Coull: two successes and two failures added
    p = (best * (n - 4) + 2) / n
    margin = tolerance + 2 * float(np.sqrt(p * (1 - p) / n))
    front = {scored[i]["model"] for i in pareto_front([(r["params"], r["val_accuracy"]) for r in scored])}
    close = {r["model"] for r in scored if r["val_accuracy"] >= best - margin and (r["model"] in front or not front_only)}
    kept = {r["model"] for r in scored[:keep]} | close
    return {
        "finalists": [r["model"] for r in results if r["model"] in kept],  # in the sweep's order
        "screened_out": [r["model"] for r in scored if r["model"] not in kept],
        "margin": margin,
    }
