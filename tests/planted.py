"""Session fixtures for the embeddings tests: the real cats-and-dogs photos with two planted faults, their
embeddings by a small pretrained model, and a sweep on them (a trained head for Grad-CAM and the drill-down).

Not a test module: test modules import the fixtures they use from here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

MODEL = "MobileNet:0.25@160"  # real ImageNet weights from ../shared; 93% leave-one-out kNN accuracy here
DUPLICATE = "train/cats/cat.5-resized-copy.jpg"  # cat.5.jpg at 70% of its size, re-encoded at JPEG quality 60
DUPLICATED = "train/cats/cat.5.jpg"
MISLABELLED = "train/dogs/planted-cat.jpg"  # validation/cats/cat.2010.jpg (a tabby lying down), moved here
MISLABELLED_FROM = "validation/cats/cat.2010.jpg"
GRADCAM_CAT = "validation/cats/cat.2002.jpg"  # 499x449: a black kitten on a tiled floor, a red toy above it
GRADCAM_BOX = (125, 0, 335, 415)  # the kitten, tail to paws (left, top, right, bottom), read off a 50 px grid


@pytest.fixture(scope="session")
def planted(cats_and_dogs, tmp_path_factory) -> Path:
    """A copy of cats-and-dogs with a near-duplicate and a mislabelled image planted in it."""
    root = tmp_path_factory.mktemp("planted") / "cats_and_dogs"
    shutil.copytree(cats_and_dogs, root)
    original = Image.open(root / DUPLICATED)
    smaller = original.resize((original.width * 7 // 10, original.height * 7 // 10), Image.BICUBIC)
    smaller.save(root / DUPLICATE, quality=60)
    shutil.move(root / MISLABELLED_FROM, root / MISLABELLED)
    return root


@pytest.fixture(scope="session")
def planted_dataset(planted):
    from core.data import load_dataset

    return load_dataset(planted)


@pytest.fixture(scope="session")
def planted_embeddings(planted_dataset):
    from core.embeddings import load_embeddings

    return load_embeddings(planted_dataset, MODEL)


@pytest.fixture(scope="session")
def planted_run(planted, planted_embeddings) -> int:
    """A sweep of `MODEL` on the planted set: its features are already cached, only the head trains."""
    from core.sweep import SweepSettings, run_sweep

    outcome = run_sweep(planted, SweepSettings(models=[MODEL], epochs=20))
    assert outcome.results[0].status == "ok", outcome.results[0]
    return outcome.run_id
