"""Tests for core.complete: the preprocessing layers, the complete model against the sweep's own math, and
loading its file in a plain Python process that does not have this project."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from core.complete import complete_model, head_arrays, preprocessing_layers
from core.images import load_image
from core.runtimes import FrozenBase, relative_difference
from core.train import head_probabilities
from core.zoo import ModelRef, zoo

TOLERANCE = 1e-4  # relative, as everywhere a runtime is compared with another
PREPROCESSING_TOLERANCE = 1e-6
MODES = ("tf", "torch", "caffe", "none")


def pixels(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def photos(folder, size: int, count: int = 6) -> np.ndarray:
    """The first `count` cat and dog photos of the training set, decoded as the sweep does."""
    paths = [
        path for kind in ("cats", "dogs") for path in sorted((folder / "train" / kind).glob("*.jpg"))[: count // 2]
    ]
    return np.stack([load_image(path, size) for path in paths])


def random_head(features: int, classes: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (features, classes)).astype(np.float32), rng.normal(0, 0.1, classes).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_each_preprocessing_mode_equals_the_modules_own_preprocess_input(mode):
    spec = next(spec for spec in zoo().values() if spec.family.preprocessing.mode == mode)  # one model per mode
    images = pixels(4, 16)
    x = keras.ops.convert_to_tensor(images)
    for layer in preprocessing_layers(mode):
        x = layer(x)
    expected = spec.preprocess_input(images.astype(np.float32))
    assert keras.ops.convert_to_numpy(x).dtype == np.float32
    assert relative_difference(keras.ops.convert_to_numpy(x), np.asarray(expected)) <= PREPROCESSING_TOLERANCE, spec.id


def test_an_unknown_preprocessing_mode_is_refused():
    with pytest.raises(ValueError, match=r"mode must be one of .* Received: mode='bgr'"):
        preprocessing_layers("bgr")


@pytest.mark.parametrize("model_id", ["MobileNet:0.25@128", "ResNet50@32/none"])  # [-1, 1]; caffe's BGR swap
def test_complete_model_equals_frozen_base_and_head(model_id, cats_and_dogs):
    ref = ModelRef.parse(model_id)
    frozen = FrozenBase(ref)
    kernel, bias = random_head(frozen.feature_dim, 3)
    images = photos(cats_and_dogs, ref.size)
    model = complete_model(ref, kernel, bias, base=frozen.model)
    expected = head_probabilities(frozen(images), kernel, bias)
    assert relative_difference(np.asarray(model.predict(images, verbose=0)), expected) <= TOLERANCE
    assert all(np.array_equal(a, b) for a, b in zip(head_arrays(model), (kernel, bias), strict=True))


def test_a_head_of_the_wrong_shape_is_refused():
    ref = ModelRef.parse("MobileNet:0.25@32/none")
    with pytest.raises(ValueError, match=r"gives 256 features; the head expects 100. Received: kernel=\(100, 2\)"):
        complete_model(ref, np.zeros((100, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"Received: kernel=\(256, 2\), bias=\(3,\)"):
        complete_model(ref, np.zeros((256, 2)), np.zeros(3))


def test_complete_model_loads_in_safe_mode_without_the_project(tmp_path, cats_and_dogs):
    """A fresh `python -I` process, outside the repository, with no PYTHONPATH: plain Keras reads the file."""
    ref = ModelRef.parse("MobileNet:0.25@128")
    model = complete_model(ref, *random_head(256, 2))
    images = photos(cats_and_dogs, ref.size)
    model.save(tmp_path / "complete.keras")
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(
        """
        import importlib.util, sys
        import keras, numpy as np
        assert importlib.util.find_spec("core") is None, "the project is importable"
        model = keras.saving.load_model("complete.keras", safe_mode=True)
        assert not any(type(layer).__name__ == "Lambda" for layer in model._flatten_layers())
        np.save("probabilities.npy", model.predict(np.load("images.npy"), verbose=0))
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    expected = np.asarray(model.predict(images, verbose=0))
    assert relative_difference(np.load(tmp_path / "probabilities.npy"), expected) <= TOLERANCE
