"""Tests for core.runtimes: ONNX Runtime features match TensorFlow's, and every failure falls back to TF."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from core import runtimes
from core.images import load_image
from core.runtimes import PARITY_TOLERANCE, FrozenBase, make_runtime, relative_difference
from core.zoo import ModelRef

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

_BASES: dict[tuple[str, int, str], FrozenBase] = {}


def frozen_base(model_id: str, size: int = 224, weights: str = "imagenet") -> FrozenBase:
    """Bases are built once per test session: building one costs seconds."""
    key = (model_id, size, weights)
    if key not in _BASES:
        _BASES[key] = FrozenBase(ModelRef.parse(model_id, size, weights))
    return _BASES[key]


def photos(folder: Path, size: int, start: int, count: int) -> np.ndarray:
    """`count` real cat and dog photos (half each) from `folder`, as a uint8 batch."""
    paths = []
    for animal in ("cats", "dogs"):
        paths += sorted((folder / animal).glob("*.jpg"))[start : start + count // 2]
    return np.stack([load_image(path, size) for path in paths])


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def graph(base: FrozenBase, folder: Path) -> Path:
    return folder / f"{base.ref.stem}.onnx"


@pytest.fixture(scope="module")
def calibration(cats_and_dogs) -> np.ndarray:
    return photos(cats_and_dogs / "train", 224, 0, 8)


@pytest.fixture(scope="module")
def held_out(cats_and_dogs) -> np.ndarray:
    return photos(cats_and_dogs / "validation", 224, 0, 6)


@pytest.mark.parametrize("model_id", ["MobileNetV2:0.35", "MobileNet:0.25"])
def test_onnx_features_match_tensorflow_with_real_weights(model_id, calibration, held_out, onnx_cache):
    base = frozen_base(model_id)
    runtime = make_runtime(base, "onnx", calibration, graph(base, onnx_cache))

    assert (runtime.name, runtime.fallback_reason) == ("onnx", None)
    assert runtime.parity is not None and runtime.parity <= PARITY_TOLERANCE
    features = runtime(held_out)
    assert features.dtype == np.float32 and features.shape == (len(held_out), base.feature_dim)
    assert relative_difference(features, base(held_out)) <= PARITY_TOLERANCE
    assert relative_difference(runtime(held_out[:1]), base(held_out[:1])) <= PARITY_TOLERANCE  # any batch size


def test_export_is_cached_and_reused(calibration, onnx_cache, monkeypatch):
    base = frozen_base("MobileNetV2:0.35")
    path = graph(base, onnx_cache)
    make_runtime(base, "auto", calibration, path)
    assert path.name == "MobileNetV2_0.35-imagenet-224.onnx" and path.exists()
    modified = path.stat().st_mtime_ns

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(runtimes, "_export", no_export)
    runtime = make_runtime(base, "auto", calibration, path)
    assert runtime.name == "onnx"
    assert path.stat().st_mtime_ns == modified
    assert not list(onnx_cache.glob("*.partial*"))


def test_graph_with_extra_inputs_falls_back_to_tensorflow(onnx_cache):
    """EfficientNet's Normalization layer exports its mean and variance as graph inputs."""
    base = frozen_base("EfficientNetB0", 64, "none")
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    for requested in ("onnx", "auto"):  # the second call reuses the exported graph
        runtime = make_runtime(base, requested, images, graph(base, onnx_cache))
        assert runtime.name == "tf" and runtime.parity is None
        assert "Extra inputs" in runtime.fallback_reason and "normalization" in runtime.fallback_reason
        np.testing.assert_array_equal(runtime(images), base(images))


def test_failures_fall_back_with_the_reason(calibration, onnx_cache, tmp_path, monkeypatch):
    base = frozen_base("MobileNet:0.25")

    def failing_export(*args):
        raise RuntimeError("tf2onnx could not convert op X")

    with monkeypatch.context() as patch:
        patch.setattr(runtimes, "_export", failing_export)
        runtime = make_runtime(base, "onnx", calibration, graph(base, tmp_path))
    assert (runtime.name, runtime.fallback_reason) == ("tf", "RuntimeError: tf2onnx could not convert op X")

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "onnxruntime", None)
        runtime = make_runtime(base, "auto", calibration, graph(base, onnx_cache))
    assert runtime.name == "tf" and runtime.parity is None
    assert "not installed" in runtime.fallback_reason and "onnxruntime" in runtime.fallback_reason

    with monkeypatch.context() as patch:
        patch.setattr(runtimes, "PARITY_TOLERANCE", 0.0)
        runtime = make_runtime(base, "auto", calibration, graph(base, onnx_cache))
    assert runtime.name == "tf" and runtime.parity > 0
    assert "differ from TensorFlow's" in runtime.fallback_reason


def test_tf_runtime_and_invalid_arguments(calibration, onnx_cache):
    base = frozen_base("MobileNet:0.25")
    runtime = make_runtime(base, "tf", calibration, graph(base, onnx_cache))
    assert (runtime.name, runtime.fallback_reason, runtime.parity) == ("tf", None, None)
    np.testing.assert_array_equal(runtime(calibration[:2]), base(calibration[:2]))

    with pytest.raises(ValueError, match="Received: runtime=foo"):
        make_runtime(base, "foo", calibration, graph(base, onnx_cache))
    with pytest.raises(ValueError, match=r"\(n, 224, 224, 3\). Received: float32 of shape \(2, 224, 224, 3\)"):
        runtime(calibration[:2].astype(np.float32))
    with pytest.raises(ValueError, match=r"Received: uint8 of shape \(8, 128, 128, 3\)"):
        make_runtime(base, "auto", calibration[:, :128, :128], graph(base, onnx_cache))
