"""Streaming at scale: pixels streamed without a file, float16 features with the heads' accuracy, pixels dropped."""

from __future__ import annotations

import dataclasses

import numpy as np

from core import paths
from core.data import load_dataset
from core.decoded import decoded_images
from core.features import Extractor, extract_features
from core.records import Status
from core.stream import PixelStream
from core.sweep import SweepSettings, run_sweep
from core.train import HeadSettings, train_head
from core.zoo import ModelRef


def test_streamed_pixels_equal_the_decoded_file_and_leave_nothing_on_disk(tb_home, cats_and_dogs):
    dataset = load_dataset(cats_and_dogs, max_images=50)
    streamed = np.concatenate(list(PixelStream(dataset, 32, ahead=8).batches(16)))
    assert not list(paths.cache_dir().rglob("images-*"))
    decoded = np.concatenate(list(decoded_images(dataset, 32).batches(16)))
    assert streamed.shape == (len(dataset.images), 32, 32, 3) and np.array_equal(streamed, decoded)


def test_heads_on_float16_features_score_as_on_float32(tb_home, cats_and_dogs):
    dataset = load_dataset(cats_and_dogs, max_images=600)
    features = extract_features(dataset, Extractor(dataset, ModelRef.parse("MobileNet:0.25@128"), "tf"))
    half = dataclasses.replace(
        features, **{name: getattr(features, name).astype(np.float16) for name in ("train", "validation", "test")}
    )
    settings = HeadSettings(epochs=10)
    scores = []
    for feature_set in (features, half):
        head = train_head(dataclasses.replace(feature_set, train=feature_set.train.astype(np.float32)), 2, settings)
        scores.append((head.predict(feature_set.test).argmax(axis=1) == feature_set.test_labels).mean())
    assert abs(scores[0] - scores[1]) <= 0.01, scores


def test_a_sweep_keeps_decoded_pixels_only_while_a_later_model_needs_them(tb_home, cats_and_dogs):
    models = ["MobileNet:0.25@96/none", "MobileNet:0.25@96", "MobileNet:0.25@128"]
    seen = []

    def on_progress(progress):
        seen.append(sorted(path.name for path in paths.cache_dir().rglob("images-*.u8")))

    outcome = run_sweep(cats_and_dogs, SweepSettings(models=models, max_images=60, epochs=1), on_progress=on_progress)
    assert [result.status for result in outcome.results] == [Status.OK] * 3
    assert ["images-96.u8"] in seen  # kept for the second model at 96 px
    assert not any("images-128.u8" in names for names in seen)  # the only model at 128 px streamed its pixels
    assert not list(paths.cache_dir().rglob("images-*"))  # and nothing is left after the sweep
    assert not list(paths.leases_dir().glob("*.json"))  # the sweep's in-use marker is gone
