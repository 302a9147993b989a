"""Screening: rank every model on small stratified subsets first, and finish on all images only those that could win.

A quick first round on `SCREEN_FIRST_ROUND` of the screening share drops only the models clearly beaten,
so a model that cannot win costs a fraction of a subset pass; the last round keeps the most accurate and
the close Pareto front. The sweep (`core.sweep`) runs the models; this module decides who goes on.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from core.data import Dataset, stratified_subset
from core.evaluate import pareto_front
from core.records import Failed, ModelResult, Result, ScreenedOut, Screening, ScreeningRound

DEFAULT_SCREEN_SHARE = (
    0.1  # the share of the images a screened sweep ranks every model on (the margin widens as it shrinks)
)
DEFAULT_SCREEN_KEEP = 2  # screening keeps at least this many of the most accurate models
SCREEN_FIRST_ROUND = 1 / 3  # a quick first round runs on this part of the screening share...
SCREEN_FIRST_ROUND_MIN_IMAGES = 60  # ...when that is at least this many images (and there are models to drop)


class RoundRunner(Protocol):
    """What screening needs from a sweep."""

    def run_round(self, subset: Dataset, models: list[str], phase: str) -> list[Result]:
        """Train and score `models` on `subset`; fewer results than models means the sweep was cancelled."""

    def finish(self, result: Result) -> None:
        """Record `result` as the model's final one."""

    def keep(self, models: list[str]) -> None:
        """Only `models` go on: free what was built for the others."""


def screen_in_rounds(
    runner: RoundRunner, dataset: Dataset, models: list[str], share: float, keep: int, tolerance: float, seed: int
) -> tuple[list[str], Screening | None]:
    """Screening rounds on growing stratified subsets: (finalists, record).

    Failed and screened-out models are final at once (`runner.finish`). The record is None when the
    sweep was cancelled, and the models returned are then those of the unfinished round.
    """
    rounds: list[ScreeningRound] = []
    subset_accuracy: dict[str, float] = {}
    total = len(dataset.images)
    shares, quick = [share], share * SCREEN_FIRST_ROUND
    if len(models) > keep and quick * total >= SCREEN_FIRST_ROUND_MIN_IMAGES:
        shares.insert(0, quick)
    for number, round_share in enumerate(shares, start=1):
        subset = stratified_subset(dataset, round_share, seed)
        images, last = len(subset.images), number == len(shares)
        phase = f"screening on {images} images" + (f" (round {number} of {len(shares)})" if len(shares) > 1 else "")
        scored = runner.run_round(subset, models, phase)
        if len(scored) < len(models):
            return models, None  # cancelled
        outcome = screen(scored, keep, tolerance, len(subset.validation), front_only=last)
        outcome.images = images
        subset_accuracy.update({r.model: r.val_accuracy for r in scored if isinstance(r, ModelResult)})
        for result in scored:
            if isinstance(result, Failed):
                runner.finish(result)
            elif result.model in outcome.screened_out:
                runner.finish(ScreenedOut.of(result, images))
        rounds.append(outcome)
        models = outcome.finalists
        runner.keep(models)
        if len(models) <= keep:
            break  # a later round would keep them all
    return models, Screening(
        finalists=models,
        screened_out=[model for r in rounds for model in r.screened_out],
        margin=rounds[-1].margin,
        subset_images=images,
        subset_accuracy=subset_accuracy,
        screened_winner=_subset_winner(scored, tolerance),
        rounds=rounds,
    )


def screen(
    results: list[Result], keep: int, tolerance: float, validation_images: int, front_only: bool = True
) -> ScreeningRound:
    """Which models of a screening round (trained on a subset) could still win on the full data.

    Kept ("finalists"): the `keep` most accurate, and every model whose accuracy is within `margin` of
    the best and, with `front_only`, on the accuracy-vs-parameters Pareto front (without it, a round only
    drops the models clearly beaten). The margin is the recommendation's `tolerance` plus two standard
    errors of the best accuracy on `validation_images`, the subset's noise: Agresti-Coull's estimate,
    which stays above 0 when the best model gets every image right. Failed models are neither kept nor
    screened out. The round's `images` is left for the caller to fill in.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1. Received: keep={keep}")
    models = [r.model for r in results]
    scored = sorted((r for r in results if isinstance(r, ModelResult)), key=lambda r: (-r.val_accuracy, r.params))
    if not scored:
        return ScreeningRound(0, models, finalists=[], screened_out=[], margin=None)
    best = scored[0].val_accuracy
    n = max(1, validation_images) + 4  # Agresti-Coull: two successes and two failures added
    p = (best * (n - 4) + 2) / n
    margin = tolerance + 2 * float(np.sqrt(p * (1 - p) / n))
    front = {scored[i].model for i in pareto_front([(r.params, r.val_accuracy) for r in scored])}
    close = {r.model for r in scored if r.val_accuracy >= best - margin and (r.model in front or not front_only)}
    kept = {r.model for r in scored[:keep]} | close
    return ScreeningRound(
        images=0,
        models=models,
        finalists=[model for model in models if model in kept],  # in the sweep's order
        screened_out=[r.model for r in scored if r.model not in kept],
        margin=margin,
    )


def _subset_winner(results: list[Result], tolerance: float) -> str | None:
    """The last round's pick by the recommendation's size rule, on validation accuracy (screening never looks at
    test images): the smallest model within `tolerance` of the best."""
    scored = [r for r in results if isinstance(r, ModelResult)]
    if not scored:
        return None
    best = max(r.val_accuracy for r in scored)
    return min(
        (r for r in scored if r.val_accuracy >= best - tolerance), key=lambda r: (r.params, -r.val_accuracy)
    ).model
