"""A stored run's dataset, loaded again with the run's own split, and its images as uint8 arrays.

Fine-tuning and export work on a finished run: they need the same training, validation and test images
the sweep used. The split is seeded, so loading the dataset with the run's settings gives it again; the
test labels stored with each result prove it (a dataset changed since the sweep is refused, not rescored).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.config import DEFAULT_HOLDOUT, DEFAULT_SEED
from core.data import Dataset, ImageRecord, load_dataset
from core.images import load_image
from core.records import ModelResult, Run


def run_dataset(run: Run, result: ModelResult) -> Dataset:
    """The dataset of `run` with the split `result` was trained and scored on."""
    settings = run.settings  # as its sweep had them (a run stored before a setting existed: its default)
    dataset = load_dataset(
        run.dataset,
        holdout=settings.get("holdout", DEFAULT_HOLDOUT),
        seed=settings.get("seed", DEFAULT_SEED),
        max_images=settings.get("max_images"),
    )
    labels = [record.label for record in dataset.test]
    if dataset.classes != result.classes or labels != list(result.test_labels):
        raise ValueError(
            f"The dataset of run {run.id} has changed since its sweep: its test images are not the ones "
            f"{result.model} was scored on. Run a new sweep on it. Received: dataset={run.dataset!r}"
        )
    return dataset


def images(records: Sequence[ImageRecord], size: int) -> np.ndarray:
    """The images as one uint8 array (n, size, size, 3), decoded and resized as the sweep did."""
    if not records:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([load_image(record.path, size) for record in records])


def labels(records: Sequence[ImageRecord]) -> np.ndarray:
    return np.array([record.label for record in records], np.int64)
