"""Warm answers: with features, heads and latencies cached, a repeat sweep imports neither TensorFlow nor Keras.

Each sweep runs in a fresh Python process (a test process has imported Keras long before), on a private data
folder and the tests' `KERAS_HOME`. The head a cached sweep uses predicts with NumPy, exactly as Keras does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from images import class_folders

from core.features import FeatureSet
from core.train import HeadSettings, TrainedHead, head_cache_path, train_head

REPO = Path(__file__).resolve().parents[1]
MODEL = "MobileNet:0.25@32/none"  # untrained: needs no weights file, builds in a second
COMPARED = ("test_accuracy", "test_predictions", "best_epoch", "epochs_run", "val_accuracy", "val_loss", "params")

# Runs a sweep and prints, as JSON, its results, its wall time (from before `core` is imported) and which of
# TensorFlow and Keras were imported by the end.
SWEEP = """
import json, sys, time
started = time.perf_counter()
from core.sweep import SweepSettings, run_sweep
outcome = run_sweep(sys.argv[1], SweepSettings(models=[sys.argv[2]], epochs=5))
seconds = time.perf_counter() - started
results = [
    {key: getattr(r, key, None) for key in (*sys.argv[3].split(","), "status", "features_cached", "head_cached",
                                            "head_path", "latency")}
    for r in outcome.results
]
print(json.dumps({"results": results, "seconds": seconds, "imported": sorted({"keras", "tensorflow"} & set(sys.modules))},
                 default=repr))
"""


def sweep_in_fresh_process(data: Path, home: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRANSFERBENCH_HOME": str(home)}
    run = subprocess.run(
        [sys.executable, "-c", SWEEP, str(data), MODEL, ",".join(COMPARED)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cold_and_warm(tmp_path_factory) -> tuple[dict, dict]:
    """One sweep on a fresh data folder, then the same sweep again in another process."""
    root = tmp_path_factory.mktemp("warm")
    data = class_folders(root / "data", {"cats": 30, "dogs": 30})
    cold = sweep_in_fresh_process(data, root / "home")
    warm = sweep_in_fresh_process(data, root / "home")
    print(f"\n{MODEL} sweep: cold {cold['seconds']:.2f} s, warm repeat {warm['seconds']:.2f} s")
    return cold, warm


def test_a_warm_repeat_imports_no_tensorflow(cold_and_warm):
    cold, warm = cold_and_warm
    (cold_result,), (warm_result,) = cold["results"], warm["results"]
    assert cold_result["status"] == warm_result["status"] == "ok"
    assert not cold_result["head_cached"] and "tensorflow" in cold["imported"]
    assert warm_result["features_cached"] and warm_result["head_cached"]
    assert warm["imported"] == []
    assert warm["seconds"] < cold["seconds"]


def test_a_warm_repeat_answers_what_the_cold_sweep_did(cold_and_warm):
    cold, warm = cold_and_warm
    (cold_result,), (warm_result,) = cold["results"], warm["results"]
    assert {key: warm_result[key] for key in COMPARED} == {key: cold_result[key] for key in COMPARED}
    assert warm_result["latency"] == cold_result["latency"]  # read back from the cache


def test_a_warm_repeat_keeps_a_head_that_keras_loads(cold_and_warm):
    cold, warm = cold_and_warm
    cold_head, warm_head = (keras.models.load_model(run["results"][0]["head_path"]) for run in (cold, warm))
    assert cold["results"][0]["head_path"] != warm["results"][0]["head_path"]  # each run keeps its own
    for cold_weights, warm_weights in zip(cold_head.get_weights(), warm_head.get_weights(), strict=True):
        np.testing.assert_array_equal(cold_weights, warm_weights)
    keras.backend.clear_session()


def random_features(tmp_path: Path, classes: int = 3, dim: int = 16) -> FeatureSet:
    """Features that a head can learn something from: each class shifted along its own direction."""
    rng = np.random.default_rng(0)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(count, dtype=np.int32) % classes
        return (rng.standard_normal((count, dim)) + 2 * np.eye(classes, dim)[labels]).astype(np.float32), labels

    (train, train_labels), (validation, validation_labels), (test, test_labels) = split(120), split(30), split(30)
    path = tmp_path / "features.npz"
    return FeatureSet(train, train_labels, validation, validation_labels, test, test_labels, 0.0, False, "tf", "", path)


def test_a_head_predicts_with_numpy_what_keras_predicts(tmp_path):
    features = random_features(tmp_path)
    settings = HeadSettings(epochs=3)
    cache = head_cache_path(features.path, 3, settings)
    trained = train_head(features, 3, settings, cache_path=cache)
    expected = np.asarray(trained.model(features.test, training=False))
    np.testing.assert_allclose(trained.predict(features.test), expected, atol=1e-5, rtol=0)
    assert trained.params == trained.model.count_params() == 16 * 3 + 3
    assert cache.exists() and cache.with_suffix(".npz").exists() and not trained.cached

    epochs = []
    cached = train_head(features, 3, settings, on_epoch=lambda epoch, metrics: epochs.append(epoch), cache_path=cache)
    assert cached.cached and cached.keras_model is None  # read from its arrays, not by Keras
    assert epochs == list(range(1, len(trained.history) + 1)) and cached.best_epoch == trained.best_epoch
    np.testing.assert_array_equal(cached.predict(features.test), trained.predict(features.test))
    assert cached.params == trained.params

    copy = tmp_path / "run" / "head.keras"
    copy.parent.mkdir()
    cached.save(copy)
    assert cached.keras_model is None and copy.read_bytes() == cache.read_bytes()
    np.testing.assert_allclose(np.asarray(cached.model(features.test, training=False)), expected, atol=1e-6)
    keras.backend.clear_session()


def test_a_head_cached_without_its_arrays_is_read_once_by_keras(tmp_path):
    features = random_features(tmp_path)
    settings = HeadSettings(epochs=2)
    cache = head_cache_path(features.path, 3, settings)
    trained = train_head(features, 3, settings, cache_path=cache)
    cache.with_suffix(".npz").unlink()  # as cached before heads were saved as arrays too
    again = train_head(features, 3, settings, cache_path=cache)
    assert again.cached and cache.with_suffix(".npz").exists()
    np.testing.assert_array_equal(again.predict(features.test), trained.predict(features.test))
    keras.backend.clear_session()


def test_a_head_without_a_model_or_a_file_says_so():
    head = TrainedHead(np.zeros((4, 2), np.float32), np.zeros(2, np.float32))
    assert head.params == 10
    np.testing.assert_allclose(head.predict(np.ones((1, 4), np.float32)), [[0.5, 0.5]])
    with pytest.raises(ValueError, match="no Keras model.*Received: path=None"):
        head.model  # noqa: B018
