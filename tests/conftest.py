"""Test fixtures: an offline Keras cache built from ../shared, and a private data directory.

Keras reads `KERAS_HOME` when it is first imported, so both variables are set here, at import time,
before any test module imports Keras or `core`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFERBENCH_SHARED", REPO.parent / "shared")).resolve()
SHARED_KERAS = SHARED / "keras"

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="transferbench-tests-"))
KERAS_HOME = _SESSION_DIR / "keras"
for sub in ("models", "datasets"):
    (KERAS_HOME / sub).mkdir(parents=True)
    source = SHARED_KERAS / sub
    if source.is_dir():
        for item in source.iterdir():
            (KERAS_HOME / sub / item.name).symlink_to(item)
os.environ["KERAS_HOME"] = str(KERAS_HOME)
os.environ["TRANSFERBENCH_HOME"] = str(_SESSION_DIR / "home")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def tb_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty data directory for one test."""
    home = tmp_path / "tb-home"
    monkeypatch.setenv("TRANSFERBENCH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def cats_and_dogs() -> Path:
    """The TF tutorial's cats-and-dogs set (train 2000, validation 1000), through the real download code."""
    assert (SHARED_KERAS / "datasets" / "cats_and_dogs_filtered.zip").exists(), f"missing shared cache {SHARED_KERAS}"
    from core.data import sample_dataset

    return sample_dataset("cats_and_dogs")
