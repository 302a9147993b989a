"""Training settings of the classification head, and class weights for imbalanced classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.features import FeatureSet
from core.train import HeadSettings, head_batch_size, head_cache_path, train_head


def test_heads_on_few_images_take_smaller_batches():
    settings = HeadSettings()  # batch 64, at least 8 updates per epoch
    assert head_batch_size(2400, settings) == 64  # a full dataset: the batch size as set
    assert head_batch_size(240, settings) == 30 and head_batch_size(80, settings) == 10  # screening subsets
    assert head_batch_size(3, settings) == 1


def imbalanced_features(seed: int = 0, dim: int = 16, shift: float = 0.5) -> FeatureSet:
    """Two overlapping Gaussian classes, ten times more of class 0 to train and validate on, and a balanced test set
    (500 of each) to measure each class's recall on."""
    rng = np.random.default_rng(seed)

    def draw(majority: int, minority: int) -> tuple[np.ndarray, np.ndarray]:
        features = np.concatenate([rng.normal(0, 1, (majority, dim)), rng.normal(shift, 1, (minority, dim))])
        return features.astype(np.float32), np.array([0] * majority + [1] * minority, np.int32)

    (train, train_labels), (validation, validation_labels), (test, test_labels) = (
        draw(400, 40),
        draw(100, 10),
        draw(500, 500),
    )
    return FeatureSet(
        train, train_labels, validation, validation_labels, test, test_labels, 0.0, False, "tf", "", Path("f.npz")
    )


def recalls(head, features: FeatureSet) -> np.ndarray:
    predicted = np.asarray(head.model(features.test, training=False)).argmax(axis=1)
    return np.array([(predicted[features.test_labels == label] == label).mean() for label in (0, 1)])


def test_class_weights_lift_the_minority_class():
    """Unweighted, a head on 10:1 classes learns to say "class 0"; weighted n / (classes * count) per label, as the
    data report gives them, each class counts the same in the loss, and the minority's recall rises."""
    features = imbalanced_features()
    weights = (440 / (2 * 400), 440 / (2 * 40))
    plain = recalls(train_head(features, 2, HeadSettings(epochs=40, learning_rate=0.01)), features)
    weighted = recalls(
        train_head(features, 2, HeadSettings(epochs=40, learning_rate=0.01, class_weights=weights)), features
    )
    assert plain[1] < 0.5 < plain[0]  # the minority mostly missed
    assert weighted[1] > plain[1] + 0.3
    assert weighted.mean() > plain.mean() + 0.05  # balanced accuracy: better overall, not a trade of one for the other


def test_class_weights_are_part_of_the_head_cache_key():
    features = Path("/cache/MobileNet_0.25_224.npz")
    plain = head_cache_path(features, 2, HeadSettings())
    weighted = head_cache_path(features, 2, HeadSettings(class_weights=(0.75, 1.5)))
    assert plain != weighted and plain.parent == weighted.parent == features.parent
    assert weighted != head_cache_path(features, 2, HeadSettings(class_weights=(0.6, 3.0)))
    assert weighted == head_cache_path(features, 2, HeadSettings(class_weights=(0.75, 1.5)))  # stable


def test_a_weighted_head_is_cached_and_read_back(tmp_path):
    features = imbalanced_features(seed=1)
    settings = HeadSettings(epochs=5, class_weights=(0.55, 5.5))
    cache = head_cache_path(tmp_path / "features.npz", 2, settings)
    trained = train_head(features, 2, settings, cache_path=cache)
    again = train_head(features, 2, settings, cache_path=cache)
    assert not trained.cached and again.cached and again.history == trained.history
    assert recalls(again, features) == pytest.approx(recalls(trained, features))


@pytest.mark.parametrize("damaged", [".npz", ".json"])
def test_a_damaged_cached_head_is_trained_again(tmp_path, damaged):
    features = imbalanced_features(seed=2)
    settings = HeadSettings(epochs=3)
    cache = head_cache_path(tmp_path / "features.npz", 2, settings)
    trained = train_head(features, 2, settings, cache_path=cache)
    part = cache.with_suffix(damaged)
    part.write_bytes(part.read_bytes()[:20])  # truncated, as by a crash or a full disk
    replayed = []
    again = train_head(features, 2, settings, on_epoch=lambda epoch, _: replayed.append(epoch), cache_path=cache)
    assert not again.cached and again.history == trained.history  # seeded: the same head, trained anew
    assert replayed == list(range(1, len(trained.history) + 1))  # each epoch reported once
    assert train_head(features, 2, settings, cache_path=cache).cached  # and cached whole again
