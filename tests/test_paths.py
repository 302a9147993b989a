"""Tests for core.paths: every file and folder under `$TRANSFERBENCH_HOME`, and model ids as file names."""

from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path

import pytest

from core import paths

FINGERPRINT = hashlib.sha1(b"one dataset").hexdigest()
OTHER_FINGERPRINT = hashlib.sha1(b"another dataset").hexdigest()
README_IDS = [
    "ResNet50",
    "MobileNet:0.25",
    "MobileNetV2:1.4",
    "MobileNetV3Small:min",
    "MobileNet:0.25@128",
    "ResNet50@160/none",
]

# Each function of core.paths with sample arguments, and where its docstring (or the module's) says it points,
# relative to the data folder.
EXPECTED = {
    "database": ((), "transferbench.db"),
    "datasets_dir": ((), "datasets"),
    "uploads_dir": ((), "uploads"),
    "cache_dir": ((), "cache"),
    "dataset_cache": ((FINGERPRINT,), f"cache/{FINGERPRINT[:16]}"),
    "decoded_images": ((FINGERPRINT, 224), f"cache/{FINGERPRINT[:16]}/images-224.u8"),
    "features": (
        (FINGERPRINT, "ResNet50-imagenet-224", "keras"),
        f"cache/{FINGERPRINT[:16]}/features/ResNet50-imagenet-224-keras.npz",
    ),
    "graphs_dir": ((), "cache/graphs"),
    "onnx_graph": (("ResNet50-imagenet-224",), "cache/graphs/ResNet50-imagenet-224.onnx"),
    "latency_cache": ((), "cache/latency.json"),
    "run_dir": ((7,), "runs/7"),
    "run_head": ((7, "MobileNet:0.25@128/none"), "runs/7/MobileNet_0.25_128_none.keras"),
    "worker_log": ((7,), "runs/7/worker.log"),
    "exports": ((7, "MobileNet:0.25@128/none"), "runs/7/exports/MobileNet_0.25_128_none"),
    "settings_file": ((), "settings.json"),
    "leases_dir": ((), "cache/in-use"),
    "workspaces_dir": ((), "workspaces"),
    "workspace_dir": (("W" * 22,), f"workspaces/{'W' * 22}"),
}


def path_functions() -> set[str]:
    """The public functions of core.paths that build a path from plain values (all but `home` and `file_stem`)."""
    return {
        name
        for name, function in inspect.getmembers(paths, inspect.isfunction)
        if function.__module__ == paths.__name__ and not name.startswith("_") and name not in ("home", "file_stem")
    }


def test_every_path_function_is_checked_here():
    assert path_functions() == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_path_is_at_its_documented_place_under_home(tb_home, name):
    args, relative = EXPECTED[name]
    path = getattr(paths, name)(*args)
    assert isinstance(path, Path) and path.is_absolute()
    assert path == paths.home() / relative == tb_home.resolve() / relative
    assert path.is_relative_to(paths.home())


def test_paths_create_nothing_but_the_data_folder(tb_home):
    assert not tb_home.exists()
    for name, (args, _) in EXPECTED.items():
        getattr(paths, name)(*args)
    assert tb_home.is_dir() and list(tb_home.iterdir()) == []


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "first"))
    first = paths.database()
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "second"))
    assert paths.database() != first and paths.database().parent == (tmp_path / "second").resolve()


# ---------------------------------------------------------------------------------------------------
# home()


def test_home_is_created(tb_home):
    assert not tb_home.exists()
    assert paths.home() == tb_home.resolve() and tb_home.is_dir()
    assert paths.home() == tb_home.resolve()  # a second call finds it


def test_home_expands_the_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv(paths.HOME_ENV, "~/bench-data")
    home = paths.home()
    assert home == (tmp_path / "user" / "bench-data").resolve() and home.is_dir()


def test_home_resolves_a_relative_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(paths.HOME_ENV, "work/../data")
    home = paths.home()
    assert home.is_absolute() and home == (tmp_path / "data").resolve() and home.is_dir()
    assert ".." not in home.parts


@pytest.mark.parametrize("value", [None, ""])
def test_home_defaults_to_a_folder_in_the_working_directory(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv(paths.HOME_ENV, raising=False)
    else:
        monkeypatch.setenv(paths.HOME_ENV, value)
    assert paths.home() == (tmp_path / paths.DEFAULT_HOME).resolve() == (tmp_path / ".transferbench").resolve()
    assert (tmp_path / ".transferbench").is_dir()


# ---------------------------------------------------------------------------------------------------
# Model ids as file names


def test_file_stem_of_a_full_model_id():
    stem = paths.file_stem("MobileNet:0.25@128/none")
    assert stem == "MobileNet_0.25_128_none"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", stem)


@pytest.mark.parametrize("model_id", README_IDS + ["../../etc/passwd", "a\\b c", "Ünïcode"])
def test_file_stem_is_a_plain_file_name(model_id):
    stem = paths.file_stem(model_id)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", stem)
    assert "/" not in stem and "\\" not in stem
    assert Path(stem).name == stem


def test_file_stem_keeps_readme_ids_apart():
    stems = [paths.file_stem(model_id) for model_id in README_IDS]
    assert len(set(stems)) == len(README_IDS)
    assert paths.file_stem("ResNet50") == "ResNet50"


def test_run_head_is_named_by_file_stem(tb_home):
    for model_id in README_IDS:
        head = paths.run_head(3, model_id)
        assert head == paths.run_dir(3) / f"{paths.file_stem(model_id)}.keras"
        assert head.parent == paths.run_dir(3)
    assert len({paths.run_head(3, model_id) for model_id in README_IDS}) == len(README_IDS)
    assert paths.run_head(3, "ResNet50") != paths.run_head(4, "ResNet50")


# ---------------------------------------------------------------------------------------------------
# Per-dataset caches


def test_dataset_caches_are_kept_apart_by_fingerprint(tb_home):
    assert paths.dataset_cache(FINGERPRINT) != paths.dataset_cache(OTHER_FINGERPRINT)
    assert paths.decoded_images(FINGERPRINT, 224) != paths.decoded_images(OTHER_FINGERPRINT, 224)
    assert paths.features(FINGERPRINT, "m", "keras") != paths.features(OTHER_FINGERPRINT, "m", "keras")
    assert paths.decoded_images(FINGERPRINT, 224) != paths.decoded_images(FINGERPRINT, 160)
    assert paths.features(FINGERPRINT, "m", "keras") != paths.features(FINGERPRINT, "m", "onnx")
    for fingerprint in (FINGERPRINT, OTHER_FINGERPRINT):
        cache = paths.dataset_cache(fingerprint)
        assert paths.decoded_images(fingerprint, 224).parent == cache
        assert paths.features(fingerprint, "m", "keras").parent == cache / "features"
