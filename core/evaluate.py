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
    predict: Callable[[np.ndarray], Any], size: int, budget_seconds: float = 2.0
) -> tuple[float, float]:
    """(ms per image at batch 1, images per second at batch 32) of `predict` on uint8 images.

    Each is the median of repeated timed calls after one warm-up call, within about `budget_seconds`.
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

    latency_ms = median_seconds(1, 30) * 1000
    throughput = 32 / median_seconds(32, 5)
    return latency_ms, throughput


def recommend(results: list[dict[str, Any]], tolerance: float = 0.01) -> dict[str, Any] | None:
    """The smallest model within `tolerance` of the best validation accuracy, and the fastest by the same rule.

    `results` are per-model dicts with `model`, `val_accuracy`, `params` and `latency_ms`; failed
    models (no accuracy) are ignored. Returns None when no model succeeded.
    """
    scored = [r for r in results if r.get("val_accuracy") is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r["val_accuracy"])
    good = [r for r in scored if r["val_accuracy"] >= best["val_accuracy"] - tolerance]
    smallest = min(good, key=lambda r: (r["params"], -r["val_accuracy"]))
    fastest = min(good, key=lambda r: (r["latency_ms"], -r["val_accuracy"]))
    return {
        "model": smallest["model"],
        "fastest": fastest["model"],
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
    return text + f". Fastest by the same rule: {fastest['model']} at {fastest['latency_ms']:.1f} ms/image."
