"""Latency: timing a predict function, and the per-host cache of measurements (atomic, and forgiving when damaged).

Most tests time stand-ins for an extractor's engines (plain NumPy functions); one times a small untrained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import latency, paths
from core.features import Extractor
from core.latency import known_latencies, measure_latency, model_latency
from core.records import Latency
from core.zoo import ModelRef

REF = "MobileNet:0.25@32/none"


class _Engine:
    """A stand-in for an engine on `size` px images (mean pixel as the feature): counts its calls."""

    def __init__(self, name: str, size: int):
        self.name, self.size, self.calls = name, size, 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        assert images.dtype == np.uint8 and images.shape[1:] == (self.size, self.size, 3)
        self.calls += 1
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True).astype(np.float32)


class _Extractor:
    """What `model_latency` uses of an `Extractor`: its ref, the runtime asked for, the TensorFlow base and the runtime that runs."""

    def __init__(self, model_id: str = REF, requested: str = "auto", runs_in: str = "onnx"):
        self.ref, self.requested = ModelRef.parse(model_id), requested
        self.base, self.runtime = _Engine("tf", self.ref.size), _Engine(runs_in, self.ref.size)


def _cache_files() -> list[str]:
    return sorted(path.name for path in paths.latency_cache().parent.iterdir())


def test_measure_latency_times_batch_one_and_batch_32():
    shapes = []

    def predict(images):
        shapes.append(images.shape)
        return images.astype(np.float32).mean(axis=(1, 2, 3))

    timed = measure_latency(predict, size=16, budget_seconds=0.05)
    assert isinstance(timed, Latency) and timed.ms > 0 and timed.images_per_second > 0
    ones, batches = shapes.count((1, 16, 16, 3)), shapes.count((32, 16, 16, 3))
    assert ones >= 4 and batches >= 4 and ones + batches == len(shapes)  # a warm-up and at least 3 timed calls each


def test_what_model_latency_measures_known_latencies_reads(tb_home):
    extractor = _Extractor()
    measured = model_latency(extractor)
    assert set(measured) == {"tf", "onnx"} and all(isinstance(t, Latency) and t.ms > 0 for t in measured.values())
    assert known_latencies(extractor.ref) == measured
    assert _cache_files() == ["latency.json"]  # written through a partial file, none left behind
    # Weights don't change the arithmetic: the same network at the same size shares the measurement.
    assert known_latencies(ModelRef.parse("MobileNet:0.25@32")) == measured
    assert known_latencies(ModelRef.parse("MobileNet:0.25@64/none")) == {}
    # Measured once: a second call reads the cache.
    again = _Extractor()
    assert model_latency(again) == measured and again.base.calls == again.runtime.calls == 0


def test_an_engine_the_model_cannot_run_in_is_cached_as_none(tb_home):
    fell_back = _Extractor(runs_in="tf")  # ONNX Runtime was asked for ("auto") but TensorFlow runs
    measured = model_latency(fell_back)
    assert measured["onnx"] is None and measured["tf"].ms > 0 and fell_back.runtime.calls == 0
    assert known_latencies(fell_back.ref) == measured
    forced = _Extractor("ResNet50@32/none", requested="tf")  # TensorFlow forced: ONNX Runtime never tried
    assert set(model_latency(forced)) == {"tf"} and set(known_latencies(forced.ref)) == {"tf"}
    assert known_latencies(fell_back.ref) == measured  # entries of other models are kept


def test_model_latency_times_base_and_head(tb_home):
    extractor, head_calls = _Extractor(requested="tf"), []

    def head(features, training):
        head_calls.append(training)
        return features * 2

    model_latency(extractor, head)
    assert extractor.base.calls > 0 and len(head_calls) == extractor.base.calls and not any(head_calls)


@pytest.mark.parametrize(
    "damage",
    [b"", b'{"MobileNet:0.25@32/tf": [1.5, ', b"\xff\xfe\x00garbage", b"null", b"[]"],
    ids=["empty", "truncated", "binary", "null", "list"],
)
def test_a_damaged_cache_reads_as_empty_and_is_rewritten(tb_home, damage):
    extractor = _Extractor()
    cache = paths.latency_cache()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(damage)
    assert known_latencies(extractor.ref) == {}
    measured = model_latency(extractor)
    assert extractor.base.calls > 0 and extractor.runtime.calls > 0  # measured, not read from the damaged file
    assert set(json.loads(cache.read_text())) == {"MobileNet:0.25@32/tf", "MobileNet:0.25@32/onnx"}
    assert known_latencies(extractor.ref) == measured
    assert _cache_files() == ["latency.json"]


def test_a_write_that_fails_halfway_leaves_the_cache_as_it_was(tb_home, monkeypatch):
    first = _Extractor()
    measured = model_latency(first)
    before = paths.latency_cache().read_text()
    write_text = Path.write_text

    def crash_halfway(path, text, *args, **kwargs):  # any file written in the cache folder
        if path.parent == paths.latency_cache().parent:
            write_text(path, text[: len(text) // 2], *args, **kwargs)
            raise OSError("No space left on device")
        return write_text(path, text, *args, **kwargs)

    with monkeypatch.context() as patched, pytest.raises(OSError, match="No space left"):
        patched.setattr(Path, "write_text", crash_halfway)
        model_latency(_Extractor("MobileNet:0.25@48/none"))
    assert paths.latency_cache().read_text() == before  # readers never see the half-written file
    assert _cache_files() == ["latency.json"]  # and the partial file is gone
    assert known_latencies(first.ref) == measured
    assert known_latencies(ModelRef.parse("MobileNet:0.25@48/none")) == {}
    retried = model_latency(_Extractor("MobileNet:0.25@48/none"))  # the next write succeeds and cleans up
    assert known_latencies(ModelRef.parse("MobileNet:0.25@48/none")) == retried
    assert known_latencies(first.ref) == measured and _cache_files() == ["latency.json"]


def test_a_small_untrained_model_is_timed_in_tensorflow(tb_home):
    ref = ModelRef.parse(REF)
    measured = model_latency(Extractor(None, ref, "tf"))
    assert set(measured) == {"tf"} and measured["tf"].ms > 0 and measured["tf"].images_per_second > 0
    assert known_latencies(ref) == measured
    assert latency.TIMING_BUDGET_SECONDS > 0
