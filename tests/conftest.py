"""Test fixtures: a temporary Keras cache (`KERAS_HOME`), seeded from the shared offline cache, and a private data
directory.

The shared cache is `$TRANSFERBENCH_SHARED/keras` when that variable is set, else `../shared/keras` beside this
checkout. Its `models/*` and `datasets/*` are symlinked into a temporary `KERAS_HOME`, so the real download code
(`keras.utils.get_file`, the `keras.applications` constructors) finds them and never touches the network.
Without it (a fresh clone) the temporary `KERAS_HOME` starts empty and Keras downloads the ImageNet weights and the
sample dataset into it on first use: that needs internet, and the files are gone when the session ends.

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


def pytest_report_header(config):
    if SHARED_KERAS.is_dir():
        return f"keras cache: {SHARED_KERAS} (shared, offline)"
    return f"keras cache: none at {SHARED_KERAS}; Keras downloads weights and datasets (needs internet)"


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
    """The TF tutorial's cats-and-dogs set (train 2000, validation 1000), through the real download code.

    From the shared cache when it has the zip, else downloaded by Keras into the temporary `KERAS_HOME`.
    """
    from core.archives import sample_dataset

    return sample_dataset("cats_and_dogs")
