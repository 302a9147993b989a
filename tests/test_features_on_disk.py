"""Features over the memory budget: written batch by batch, left on disk, and a head trained from them.

The cache file stays what `np.savez` writes (old caches read as before); a head trained from the file is the
head trained from memory, to the bit; training from disk holds a fraction of the memory training from memory
does (measured in a fresh process each).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from images import class_folders

from core import config
from core.data import load_dataset
from core.feature_file import FeatureRows, FeatureWriter, open_features
from core.features import MEMORY_BUDGET_ENV, Extractor, FeatureSet, extract_features, memory_budget_bytes
from core.sweep import SweepSettings, run_sweep
from core.train import HeadSettings, train_head
from core.zoo import ModelRef

REPO = Path(__file__).resolve().parents[1]
DETAILS = dict(seconds=1.5, runtime="onnx", runtime_note="", device="CPU")


def gaussian_features(count: int, dim: int, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes: a head learns them, not perfectly."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count).astype(np.int32)
    centres = rng.normal(0, 1, (classes, dim)).astype(np.float32)
    return centres[labels] + rng.normal(0, 1.5, (count, dim)).astype(np.float32), labels


def write_features(path: Path, features: np.ndarray, labels: np.ndarray, float16_from: int = 1 << 40) -> Path:
    writer = FeatureWriter(path, len(features), float16_from)
    for start in range(0, len(features), 16):
        writer.write(features[start : start + 16])
    writer.close(labels=labels, **DETAILS)
    return path


def feature_set(source: np.ndarray | FeatureRows, labels: np.ndarray, path: Path) -> FeatureSet:
    """60% train, 20% validation, 20% test."""
    train, validation = int(len(labels) * 0.6), int(len(labels) * 0.8)
    cut = (slice(None, train), slice(train, validation), slice(validation, None))
    parts = [value for part in cut for value in (source[part], labels[part])]
    return FeatureSet(*parts, 0.0, False, "tf", "", path)


def test_the_written_file_is_what_np_savez_writes_and_old_caches_open_alike(tmp_path):
    features, labels = gaussian_features(101, 12)
    written = write_features(tmp_path / "streamed.npz", features, labels)
    with np.load(written) as saved:  # readable as any .npz, every member as given
        assert np.array_equal(saved["features"], features) and saved["features"].dtype == np.float32
        assert np.array_equal(saved["labels"], labels) and str(saved["runtime"]) == "onnx"
        assert float(saved["seconds"]) == 1.5
    old = tmp_path / "old.npz"
    np.savez(old, features=features.astype(np.float16), labels=labels, **DETAILS)  # as caches were written before
    for path, expected in ((written, features), (old, features.astype(np.float16).astype(np.float32))):
        rows = open_features(path)
        assert rows.shape == (101, 12) and len(rows[10:20]) == 10
        assert np.array_equal(np.asarray(rows), expected)
        assert np.array_equal(rows[60:].take(np.array([40, 0, 7, 7])), expected[[100, 60, 67, 67]])
        assert np.array_equal(np.concatenate(list(rows[5:].batches(32))), expected[5:])
    with pytest.raises(IndexError, match=r"\[0, 41\)"):
        open_features(written)[60:].take(np.array([41]))


def test_large_features_are_written_as_float16_and_damaged_files_are_refused(tmp_path):
    features, labels = gaussian_features(64, 8)
    half = write_features(tmp_path / "half.npz", features, labels, float16_from=64 * 8 * 4 - 1)
    assert open_features(half).dtype == np.float16
    assert np.array_equal(np.asarray(open_features(half)), features.astype(np.float16).astype(np.float32))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(half.read_bytes()[:300])
    with pytest.raises((ValueError, zipfile.BadZipFile)):
        open_features(truncated)
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, features=features, labels=labels)
    with pytest.raises(ValueError, match="uncompressed"):
        open_features(compressed)
    writer = FeatureWriter(tmp_path / "short.npz", 64, 1 << 40)
    writer.write(features[:16])
    with pytest.raises(ValueError, match="Expected 64 rows of features. Received: 16"):
        writer.close(labels=labels)
    writer.abort()


def test_the_memory_budget_comes_from_the_environment_else_the_config(monkeypatch):
    monkeypatch.delenv(MEMORY_BUDGET_ENV, raising=False)
    assert memory_budget_bytes() == config.limit(config.FEATURE_MEMORY_MB) * config.MB
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "1.5")
    assert memory_budget_bytes() == int(1.5 * config.MB)
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MEMORY_BUDGET_ENV} must be a positive number"):
        memory_budget_bytes()


@pytest.mark.parametrize("class_weights", [None, (0.7, 1.4, 1.0, 1.2)])
def test_a_head_trained_from_disk_is_the_head_trained_in_memory(tmp_path, class_weights):
    features, labels = gaussian_features(1500, 24)
    path = write_features(tmp_path / "features.npz", features, labels)
    on_disk = feature_set(open_features(path), labels, path)
    in_memory = feature_set(features, labels, path)
    assert not on_disk.in_memory and in_memory.in_memory
    settings = HeadSettings(epochs=6, class_weights=class_weights)
    streamed, loaded = train_head(on_disk, 4, settings), train_head(in_memory, 4, settings)
    assert np.array_equal(streamed.kernel, loaded.kernel) and np.array_equal(streamed.bias, loaded.bias)
    assert streamed.history == loaded.history and len(streamed.history) == 6
    assert np.array_equal(streamed.predict(on_disk.test), loaded.predict(in_memory.test))  # read in batches
    accuracy = (streamed.predict(on_disk.test).argmax(axis=1) == on_disk.test_labels).mean()
    assert 0.5 < accuracy < 1.0, accuracy  # learned, from overlapping classes


def test_features_over_the_budget_stay_on_disk_with_the_same_values(tmp_path, tb_home):
    dataset = load_dataset(class_folders(tmp_path / "noise", {"a": 12, "b": 12, "c": 12}))
    extractor = Extractor(dataset, ModelRef.parse("MobileNet:0.25@32/none"), "tf")
    computed = extract_features(dataset, extractor, memory_budget=0)  # written batch by batch, then left on disk
    assert not computed.cached and isinstance(computed.train, FeatureRows) and computed.train.path == computed.path
    in_memory = extract_features(dataset, extractor)  # the cache read back into memory (default budget)
    again = extract_features(dataset, extractor, memory_budget=0)
    assert in_memory.cached and in_memory.in_memory and again.cached and not again.in_memory
    for part in ("train", "validation", "test"):
        assert np.array_equal(np.asarray(getattr(again, part)), getattr(in_memory, part)), part
    assert sorted(p.name for p in computed.path.parent.iterdir()) == [computed.path.name]  # no partial file


def test_a_sweep_over_the_memory_budget_trains_from_disk_and_scores_the_same(tmp_path, monkeypatch):
    import core.sweep

    data = class_folders(tmp_path / "noise", {"a": 20, "b": 20})
    seen, original = [], core.sweep.train_head

    def train_head(features: FeatureSet, *args, **kwargs):  # the real one, noting where its features were
        seen.append(features.in_memory)
        return original(features, *args, **kwargs)

    monkeypatch.setattr(core.sweep, "train_head", train_head)
    results = []
    for budget in ("0.001", "256"):  # a kilobyte: from disk; 256 MB: in memory
        monkeypatch.setenv("TRANSFERBENCH_HOME", str(tmp_path / f"home-{budget}"))
        monkeypatch.setenv(MEMORY_BUDGET_ENV, budget)
        outcome = run_sweep(data, SweepSettings(models=["MobileNet:0.25@32/none"], epochs=3))
        results.append(outcome.results[0])
    assert seen == [False, True]
    streamed, loaded = results
    assert streamed.test_predictions == loaded.test_predictions and streamed.val_loss == loaded.val_loss


MEASURE = textwrap.dedent(
    """
    import json, sys, threading
    import numpy as np, psutil
    from pathlib import Path
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    from test_features_on_disk import feature_set, gaussian_features
    from core.feature_file import open_features
    from core.train import HeadSettings, train_head

    warm_features, warm_labels = gaussian_features(600, 64, seed=1)  # TensorFlow's own start-up, before the baseline
    train_head(feature_set(warm_features, warm_labels, Path("warm")), 4, HeadSettings(epochs=1))
    path, in_memory = Path(sys.argv[2]), sys.argv[3] == "memory"
    process, peak, done = psutil.Process(), [0], threading.Event()
    def watch():
        while not done.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)
    baseline = process.memory_info().rss
    threading.Thread(target=watch, daemon=True).start()
    rows = open_features(path)
    labels = np.load(path)["labels"]
    head = train_head(feature_set(np.asarray(rows) if in_memory else rows, labels, path), 4, HeadSettings(epochs=1))
    done.set()
    print(json.dumps({"growth": max(peak[0], process.memory_info().rss) - baseline, "kernel": head.kernel.sum().item()}))
    """
)


def test_training_from_disk_holds_a_fraction_of_the_memory(tmp_path):
    """200 MB of features (100,000 x 512 float32): in memory the head's training grows the process by more than
    that (about 2.8 times); from disk by less than a third of it (TensorFlow's input pipeline, the shuffled indices,
    labels and a few batches)."""
    features_path = tmp_path / "features.npz"
    writer = FeatureWriter(features_path, 100_000, 1 << 40)
    for start in range(0, 100_000, 10_000):
        writer.write(gaussian_features(10_000, 512, seed=start)[0])
    writer.close(labels=np.random.default_rng(0).integers(0, 4, 100_000).astype(np.int32), **DETAILS)
    size = 100_000 * 512 * 4
    measured = {}
    for mode in ("disk", "memory"):
        command = [sys.executable, "-c", MEASURE, str(REPO), str(features_path), mode]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-3000:]
        measured[mode] = json.loads(completed.stdout.strip().splitlines()[-1])
    assert measured["disk"]["kernel"] == measured["memory"]["kernel"]  # the same head
    assert measured["memory"]["growth"] > size, measured
    assert measured["disk"]["growth"] < size / 3, measured  # measured here: 40-45 MB, against 550-580 MB
