"""Test fixtures: a temporary Keras cache (`KERAS_HOME`), seeded from the shared offline cache, and a private data
directory.

The shared cache is `$TRANSFERBENCH_SHARED/keras` when that variable is set, else `../shared/keras` beside this
checkout. Its `models/*` and `datasets/*` are symlinked into a temporary `KERAS_HOME`, so the real download code
(`keras.utils.get_file`, the `keras.applications` constructors) finds them and never touches the network.
Without it (a fresh clone) the temporary `KERAS_HOME` starts empty and Keras downloads the ImageNet weights and the
sample dataset into it on first use: that needs internet, and the files are gone when the session ends.

Keras reads `KERAS_HOME` when it is first imported, so both variables are set here, at import time,
before any test module imports Keras or `core`.

Data folders: `tb_home` gives a test an empty one, `module_home` a module (a module that needs it for every
test says `pytestmark = pytest.mark.usefixtures("module_home")`). `finished_sweep` is one real sweep, made once
per session in a data folder of its own, for the modules that need a finished run: `finished_copy` gives such a
module a copy of that folder as its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from core.records import SweepOutcome

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


@contextmanager
def data_folder(home: Path) -> Iterator[Path]:
    """`TRANSFERBENCH_HOME` set to `home` inside the block (for fixtures broader than a test)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERBENCH_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def module_home(tmp_path_factory) -> Iterator[Path]:
    """A fresh, empty data directory for one test module."""
    with data_folder(tmp_path_factory.mktemp("module-home")) as home:
        yield home


FINISHED_MODEL = "MobileNet:0.25@128"  # real ImageNet weights, small and fast
FINISHED_PHOTOS = 120  # cats and as many dogs of the tutorial's training photos: 168 train, 36 validation, 36 test


@dataclass(frozen=True)
class FinishedSweep:
    """A finished run, and the data folder it is stored in."""

    home: Path
    outcome: SweepOutcome

    @property
    def run_id(self) -> int:
        return self.outcome.run_id


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory, cats_and_dogs) -> FinishedSweep:
    """A real sweep of `FINISHED_MODEL` on `FINISHED_PHOTOS` cats and dogs (class folders of symlinks), done once
    per session and stored in a data folder of its own: a module that uses it takes a copy (`finished_copy`)."""
    from core.sweep import SweepSettings, run_sweep

    photos = tmp_path_factory.mktemp("finished-photos") / "pets"
    for animal in ("cats", "dogs"):
        (photos / animal).mkdir(parents=True)
        for photo in sorted((cats_and_dogs / "train" / animal).glob("*.jpg"))[:FINISHED_PHOTOS]:
            (photos / animal / photo.name).symlink_to(photo)
    with data_folder(tmp_path_factory.mktemp("finished-home")) as home:
        outcome = run_sweep(photos, SweepSettings(models=[FINISHED_MODEL], epochs=10))
    assert [result.status for result in outcome.results] == ["ok"], outcome.results
    return FinishedSweep(home, outcome)


@pytest.fixture(scope="module")
def finished_copy(finished_sweep, tmp_path_factory) -> Iterator[FinishedSweep]:
    """The finished run in a copy of its data folder, the module's data folder: its tests may write into the run
    (fine-tune it, export into its folder) without touching another module's.

    A copy of a finished folder costs a fraction of a second against a sweep's many; its results still name the
    original folder's trained heads, which are only ever read."""
    copy = tmp_path_factory.mktemp("finished-copy") / "home"
    shutil.copytree(finished_sweep.home, copy, symlinks=True)
    with data_folder(copy) as home:
        yield FinishedSweep(home, finished_sweep.outcome)
