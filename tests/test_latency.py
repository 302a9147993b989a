"""Latency: one definition (base + a numpy head, median and quartiles of the repeats), a cache keyed by
what the figure depends on (atomic, and forgiving when damaged), shared by the sweep and the Models page.

Most tests time stand-ins for an extractor's engines (plain NumPy functions); two time a small untrained model.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from core import latency, paths
from core.features import Extractor
from core.latency import NumpyHead, known_latencies, measure_latency, measure_model, model_latency
from core.records import Latency, ModelResult
from core.runtimes import ONNX_THREADS
from core.train import build_head
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


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """A short budget and few repeats: these tests check what is measured, not how steadily."""
    monkeypatch.setattr(latency, "TIMING_BUDGET_SECONDS", 0.02)
    monkeypatch.setattr(latency, "MIN_REPEATS", 3)


def _cache_files() -> list[str]:
    return sorted(path.name for path in paths.latency_cache().parent.iterdir())


def test_measure_latency_times_batch_one_and_batch_32_after_warm_up():
    shapes = []

    def predict(images):
        shapes.append(images.shape)
        return images.astype(np.float32).mean(axis=(1, 2, 3))

    timed = measure_latency(predict, size=16, threads=3)
    assert isinstance(timed, Latency) and timed.ms > 0 and timed.images_per_second > 0
    assert timed.ms_q1 <= timed.ms <= timed.ms_q3 and timed.ms_iqr == timed.ms_q3 - timed.ms_q1
    ones, batches = shapes.count((1, 16, 16, 3)), shapes.count((32, 16, 16, 3))
    assert ones + batches == len(shapes) and shapes[0] == (1, 16, 16, 3) and shapes[-1] == (32, 16, 16, 3)
    assert timed.repeats >= latency.MIN_REPEATS and 1 <= ones - timed.repeats <= latency.WARMUP_CALLS  # warm-up
    assert batches >= 1 + latency.MIN_BATCH_REPEATS and timed.threads == 3


def test_the_median_and_quartiles_come_from_the_timed_repeats(monkeypatch):
    """A fake clock that each call advances by a known duration. A warm-up call of 1 s uses up the warm-up
    time (a tenth of the budget): no second one, and it is not counted."""
    clock = [0.0]
    monkeypatch.setattr(latency.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(latency, "MIN_REPEATS", 5)
    monkeypatch.setattr(latency, "MAX_REPEATS", 5)
    monkeypatch.setattr(latency, "MAX_BATCH_REPEATS", 3)
    durations = {1: iter([1.0, 0.004, 0.001, 0.010, 0.002, 0.003]), 32: iter([1.0, 0.064, 0.016, 0.032])}

    def predict(images):
        clock[0] += next(durations[len(images)])

    timed = measure_latency(predict, size=4)
    assert (timed.ms, timed.ms_q1, timed.ms_q3, timed.repeats) == pytest.approx((3.0, 2.0, 4.0, 5))
    assert timed.images_per_second == pytest.approx(32 / 0.032)  # the median batch-32 call
    assert next(durations[1], None) is None and next(durations[32], None) is None  # every call made, no more


def test_the_numpy_head_computes_the_keras_heads_probabilities():
    head = build_head(64, 5, dropout=0.5)  # dropout: the identity at inference, in both
    rng = np.random.default_rng(1)
    kernel, bias = head.layers[-1].get_weights()
    head.layers[-1].set_weights([kernel * 4, rng.standard_normal(bias.shape).astype(np.float32)])
    features = rng.standard_normal((32, 64)).astype(np.float32) * 3
    expected = np.asarray(head(features, training=False))
    computed = NumpyHead.of(head)(features)
    assert computed.dtype == np.float32 and np.allclose(computed, expected, rtol=0, atol=1e-5)
    assert np.allclose(computed.sum(axis=1), 1, atol=1e-6)
    random = NumpyHead.random(64)
    assert random.kernel.shape == (64, latency.HEAD_CLASSES) and random(features).shape == (32, latency.HEAD_CLASSES)


def test_a_head_of_another_shape_is_refused():
    import keras

    hidden = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="one softmax Dense layer"):
        NumpyHead.of(hidden)


def test_what_model_latency_measures_known_latencies_reads(tb_home):
    extractor = _Extractor()
    measured = model_latency(extractor)
    assert set(measured) == {"tf", "onnx"} and all(isinstance(t, Latency) and t.ms > 0 for t in measured.values())
    assert all(t.threads == latency.engine_threads(engine) and t.repeats >= 3 for engine, t in measured.items())
    assert known_latencies(extractor.ref) == measured
    assert _cache_files() == ["latency.json"]  # written through a partial file, none left behind
    # Weights don't change the arithmetic: the same network at the same size shares the measurement.
    assert known_latencies(ModelRef.parse("MobileNet:0.25@32")) == measured
    assert known_latencies(ModelRef.parse("MobileNet:0.25@64/none")) == {}
    # Measured once: a second call reads the cache.
    again = _Extractor()
    assert model_latency(again) == measured and again.base.calls == again.runtime.calls == 0


def test_the_key_holds_the_host_threads_and_library_versions(tb_home, monkeypatch):
    extractor = _Extractor()
    measured = model_latency(extractor)
    key = latency._key(extractor.ref, "onnx")
    assert key.startswith("MobileNet:0.25@32/onnx on ") and latency.cpu_model() in key
    assert all(f"{name} {version}" in key for name, version in latency.library_versions().items())
    threads, versions = latency.engine_threads, latency.library_versions()
    changes = {
        "thread count": ("engine_threads", lambda engine: threads(engine) + 1),
        "TensorFlow version": ("library_versions", lambda: {**versions, "tensorflow": "9.9.9"}),
        "ONNX Runtime version": ("library_versions", lambda: {**versions, "onnxruntime": "0.0.1"}),
        "CPU model": ("cpu_model", lambda: "Another CPU"),
    }
    for change, (name, function) in changes.items():
        with monkeypatch.context() as patched:
            patched.setattr(latency, name, function)
            assert latency._key(extractor.ref, "onnx") != key, change
            assert known_latencies(extractor.ref) == {}, change  # not found: measured again
            remeasured = _Extractor()
            model_latency(remeasured)
            assert remeasured.base.calls > 0 and remeasured.runtime.calls > 0, change
    assert known_latencies(extractor.ref) == measured  # back on this host: the first figures


def test_entries_stored_under_the_old_key_are_not_found(tb_home):
    cache = paths.latency_cache()
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"MobileNet:0.25@32/tf": [1.5, 600.0], "MobileNet:0.25@32/onnx": [0.5, 2000.0]}))
    extractor = _Extractor()
    assert known_latencies(extractor.ref) == {}
    measured = model_latency(extractor)
    assert extractor.base.calls > 0 and extractor.runtime.calls > 0 and measured["tf"].threads is not None


def test_a_latency_stored_before_the_spread_reads_with_none():
    old = {"ms": 4.2, "images_per_second": 310.0}
    assert Latency.from_dict(old) == Latency(**old) == Latency(4.2, 310.0, None, None, None, None)
    assert Latency(**old).ms_iqr is None
    assert Latency.from_dict({**old, "ms_q1": 4.0, "ms_q3": 4.5, "later": 1}).ms_iqr == pytest.approx(0.5)
    from test_records import model_result

    stored = asdict(model_result(runtime="tf"))
    stored["latency"] = {"tf": old, "onnx": None}  # as a result was stored before
    result = ModelResult.from_dict(stored)
    assert result.latency == {"tf": Latency(4.2, 310.0), "onnx": None} and result.latency_ms == 4.2


def test_an_engine_the_model_cannot_run_in_is_cached_as_none(tb_home):
    fell_back = _Extractor(runs_in="tf")  # ONNX Runtime was asked for ("auto") but TensorFlow runs
    measured = model_latency(fell_back)
    assert measured["onnx"] is None and measured["tf"].ms > 0 and fell_back.runtime.calls == 0
    assert known_latencies(fell_back.ref) == measured
    forced = _Extractor("ResNet50@32/none", requested="tf")  # TensorFlow forced: ONNX Runtime never tried
    assert set(model_latency(forced)) == {"tf"} and set(known_latencies(forced.ref)) == {"tf"}
    assert known_latencies(fell_back.ref) == measured  # entries of other models are kept


def test_model_latency_times_base_and_the_head_as_array_math(tb_home, monkeypatch):
    extractor, head_calls = _Extractor(requested="tf"), []
    keras_head = build_head(1, 3, 0.2)  # the stand-in engines compute one feature
    numpy_call = NumpyHead.__call__

    def counted(self, features):
        head_calls.append(self.kernel.shape)
        return numpy_call(self, features)

    monkeypatch.setattr(NumpyHead, "__call__", counted)
    monkeypatch.setattr(type(keras_head), "__call__", lambda *args, **kwargs: pytest.fail("the Keras head was called"))
    model_latency(extractor, keras_head)
    assert extractor.base.calls > 0 and head_calls == [(1, 3)] * extractor.base.calls


@pytest.mark.parametrize(
    "damage",
    [b"", b'{"MobileNet:0.25@32/tf": [1.5, ', b"\xff\xfe\x00garbage", b"null", b"[]", b"entry"],
    ids=["empty", "truncated", "binary", "null", "list", "entry"],
)
def test_a_damaged_cache_reads_as_empty_and_is_rewritten(tb_home, damage):
    extractor = _Extractor()
    keys = {latency._key(extractor.ref, "tf"), latency._key(extractor.ref, "onnx")}
    cache = paths.latency_cache()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(json.dumps(dict.fromkeys(keys, [1.5, 600.0])).encode() if damage == b"entry" else damage)
    assert known_latencies(extractor.ref) == {}
    measured = model_latency(extractor)
    assert extractor.base.calls > 0 and extractor.runtime.calls > 0  # measured, not read from the damaged file
    assert set(json.loads(cache.read_text())) == keys
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


def test_the_models_page_and_the_sweep_share_one_entry(tb_home):
    """The Models page times an untrained base + a 2-class numpy head in both engines; a sweep of the same
    model and size (trained weights, its own head) then finds that entry and builds nothing to time."""
    page = measure_model(REF)
    assert set(page) == {"tf", "onnx"} and all(t and t.ms > 0 and t.images_per_second > 0 for t in page.values())
    sweep = Extractor(None, ModelRef.parse("MobileNet:0.25@32"), "auto")
    assert model_latency(sweep, build_head(256, 7, 0.2)) == page
    assert "base" not in sweep.__dict__ and "runtime" not in sweep.__dict__  # not re-measured: nothing built


def test_engine_threads_follow_the_settings(monkeypatch):
    assert latency.engine_threads("onnx") == ONNX_THREADS >= 1  # as core.runtimes sets its sessions
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")  # TensorFlow's own setting is left at 0 (its default) here
    assert latency.engine_threads("tf") == 3
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert latency.engine_threads("tf") == len(os.sched_getaffinity(0))  # every usable core
    with pytest.raises(ValueError, match="engine must be one of"):
        latency.engine_threads("torch")
