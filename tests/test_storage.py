"""Tests for core.storage: listing the data folder, the disk budget, LRU eviction, in-use markers, deleting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from core import paths, storage
from core.cli import main
from core.records import RunStatus
from core.store import Store

MB = 1024**2


def cache_files(fingerprint: str, age: float) -> list:
    """Decoded images (3 MB) and one model's features (1 MB) with a head beside them, last used `age` s ago."""
    decoded = paths.decoded_images(fingerprint, 64)
    features = paths.features(fingerprint, "MobileNet_0.25_128_imagenet", "onnx")
    head = features.with_name(f"{features.stem}.head-abc.npz")
    features.parent.mkdir(parents=True, exist_ok=True)
    for path, size in ((decoded, 3 * MB), (features, MB), (head, 1000)):
        path.write_bytes(b"\0" * size)
        os.utime(path, (time.time() - age, time.time() - age))
    return [decoded, features, head]


def test_entries_list_datasets_runs_and_caches_with_sizes(tb_home):
    cache_files("a" * 40, age=10)
    (paths.datasets_dir() / "flowers").mkdir(parents=True)
    (paths.datasets_dir() / "flowers" / "x.png").write_bytes(b"\0" * 2000)
    (paths.graphs_dir()).mkdir(parents=True)
    paths.onnx_graph("MobileNet_0.25_128_imagenet").write_bytes(b"\0" * 500)
    store = Store()
    run_id = store.create_run("flowers", {"models": ["MobileNet:0.25"]})
    store.update_run(run_id, status=RunStatus.DONE)
    paths.run_dir(run_id).mkdir(parents=True)
    (paths.run_dir(run_id) / "head.keras").write_bytes(b"\0" * 300)

    found = {entry.id: entry for entry in storage.entries(store)}
    fingerprint = "a" * 16
    assert found[f"decoded:{fingerprint}/64"].bytes == 3 * MB
    features = found[f"features:{fingerprint}/MobileNet_0.25_128_imagenet-onnx"]
    assert features.bytes == MB + 1000 and len(features.files) == 2  # the head goes with its features
    assert found["dataset:flowers"].bytes == 2000 and found["graph:MobileNet_0.25_128_imagenet"].bytes == 500
    assert found[f"run:{run_id}"].bytes == 300 and not found[f"run:{run_id}"].in_use
    assert storage.total_bytes() >= 4 * MB + 3800


def test_eviction_keeps_the_folder_within_budget_across_datasets_oldest_first(tb_home):
    Store()  # the store is part of the folder too
    oldest, middle, newest = (cache_files(letter * 40, age) for letter, age in (("a", 300), ("b", 200), ("c", 100)))
    budget = storage.total_bytes() - 4 * MB  # room for all but one dataset's caches
    evicted = storage.evict(budget)
    assert [entry.kind for entry in evicted] == ["decoded", "features"]  # dataset a's, least recently used first
    assert not any(path.exists() for path in oldest) and not paths.dataset_cache("a" * 40).exists()
    assert all(path.exists() for path in middle + newest)
    assert storage.total_bytes() <= budget
    for letter in "def":  # more datasets arrive: the budget still holds, evicting the oldest caches first
        cache_files(letter * 40, age=0)
        storage.evict(budget)
        assert storage.total_bytes() <= budget
    assert all(path.exists() for path in cache_files("f" * 40, age=0))


def test_a_cache_in_use_is_never_evicted_and_markers_of_ended_processes_are_dropped(tb_home):
    used = cache_files("a" * 40, age=1000)  # the oldest: first in line, but a sweep uses it
    cache_files("b" * 40, age=10)
    with storage.Lease() as lease:
        lease.add(paths.dataset_cache("a" * 40))
        assert storage.evict(budget=1) and all(path.exists() for path in used)
        assert all(entry.in_use for entry in storage.entries() if entry.name.startswith("a" * 16))
        with pytest.raises(ValueError, match="used by a running sweep"):
            storage.delete(f"decoded:{'a' * 16}/64")
    assert not lease.path.exists()

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = paths.leases_dir() / "ended.json"
    marker.write_text(
        json.dumps({"pid": int(ended.stdout), "started": 1.0, "folders": [str(paths.dataset_cache("a" * 40))]})
    )
    storage.evict(budget=1)
    assert not any(path.exists() for path in used) and not marker.exists()


def test_deleting_a_run_removes_its_rows_and_files_but_not_an_active_one(tb_home):
    store = Store()
    done, running = store.create_run("d", {}), store.create_run("d", {})
    store.update_run(done, status=RunStatus.DONE)
    store.update_run(running, status=RunStatus.RUNNING)
    paths.run_dir(done).mkdir(parents=True)
    (paths.run_dir(done) / "worker.log").write_text("log")
    storage.delete(f"run:{done}", store)
    assert store.run(done) is None and not paths.run_dir(done).exists()
    with pytest.raises(ValueError, match="used by a running sweep"):
        storage.delete(f"run:{running}", store)
    with pytest.raises(ValueError, match="Expected an entry id KIND:NAME.*Received: run:999"):
        storage.delete("run:999", store)


def test_budget_from_environment_setting_or_default(tb_home, monkeypatch):
    monkeypatch.delenv(storage.BUDGET_ENV, raising=False)
    assert storage.budget_bytes() == storage.DEFAULT_BUDGET_GB * storage.GB
    storage.set_budget(2.5)
    assert storage.budget_bytes() == 2.5 * storage.GB
    monkeypatch.setenv(storage.BUDGET_ENV, "1")
    assert storage.budget_bytes() == storage.GB  # the environment wins
    monkeypatch.setenv(storage.BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match="must be a number of GB, e.g. 4. Received: 'lots'"):
        storage.budget_bytes()
    with pytest.raises(ValueError, match="positive number of GB. Received: 0"):
        storage.set_budget(0)


def test_cli_storage_lists_deletes_and_sets_the_budget(tb_home, capsys, monkeypatch):
    monkeypatch.delenv(storage.BUDGET_ENV, raising=False)
    cache_files("a" * 40, age=10)
    assert main(["storage", "--budget", "3"]) == 0
    listed = capsys.readouterr().out
    assert f"decoded:{'a' * 16}/64" in listed and "of a 3 GB budget" in listed
    assert main(["storage", "--delete", f"decoded:{'a' * 16}/64"]) == 0
    assert f"deleted decoded:{'a' * 16}/64 (3.0 MB)" in capsys.readouterr().out
    assert not paths.decoded_images("a" * 40, 64).exists()
    assert main(["storage", "--delete", "nothing:here"]) == 2
    assert "Expected an entry id" in capsys.readouterr().err
