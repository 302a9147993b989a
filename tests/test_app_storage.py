"""AppTest of the Storage page on a real data folder: a dataset, a finished sweep's run and its features cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import paths, storage
from core.store import Store

REPO = Path(__file__).resolve().parents[1]
ENTRY = str(REPO / "streamlit_app.py")
MODEL = "MobileNet:0.25@32/none"  # untrained: no weights to load, and fast


def storage_page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=120)
    at.run()
    at.switch_page("app_pages/storage.py").run()
    assert not at.exception, at.exception
    return at


def listed(at: AppTest) -> dict[str, float]:
    """The page's table: size in MB by entry id."""
    table = at.dataframe(key="storage_table").value if at.dataframe else None
    return {} if table is None else dict(zip(table["id"], table["size_mb"], strict=True))


@pytest.fixture
def swept(tb_home) -> tuple[int, Path]:
    """A dataset of 2 x 15 noise photos (160 x 120 px, about 24 KB each) in the data folder, and a finished sweep on it."""
    from core.sweep import SweepSettings, run_sweep

    root = paths.datasets_dir() / "noise"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for index in range(15):
            pixels = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index:02d}.jpg", quality=95)
    outcome = run_sweep(root, SweepSettings(models=[MODEL], epochs=2))
    assert outcome.results[0].status == "ok", outcome.results[0]
    return outcome.run_id, root


def test_storage_lists_the_dataset_run_and_features_with_their_sizes(swept):
    run_id, root = swept
    at = storage_page()
    table = listed(at)
    expected = {entry.id: storage.describe(entry)["size_mb"] for entry in storage.entries()}
    assert table == expected  # every entry, each with its size as measured on disk
    features = [entry for entry in storage.entries() if entry.kind == "features"]
    assert len(features) == 1 and features[0].bytes > 30 * 256 * 4  # 30 images x 256 float32 features, and a head
    assert {"dataset:noise", f"run:{run_id}", features[0].id} <= table.keys()
    photos = sum(file.stat().st_size for file in root.rglob("*.jpg"))
    assert table["dataset:noise"] == round(photos / 1024**2, 1) >= 0.5  # 30 photos of about 24 KB
    used = storage.total_bytes() / storage.GB
    assert any(f"{used:.2f} GB used of 4 GB" in bar.text for bar in at.get("progress"))


def test_deleting_a_run_removes_it_and_its_files(swept):
    run_id, _ = swept
    assert paths.run_dir(run_id).is_dir() and Store().run(run_id) is not None
    at = storage_page()
    ids = list(at.dataframe(key="storage_table").value["id"])
    at.session_state["storage_table"] = {"selection": {"rows": [ids.index(f"run:{run_id}")], "columns": []}}
    at.run()
    delete = next(button for button in at.button if button.label.startswith("Delete"))
    assert delete.label == "Delete 1 selected" and not delete.disabled
    delete.click().run()
    assert not at.exception, at.exception
    assert not paths.run_dir(run_id).exists() and Store().run(run_id) is None
    assert f"run:{run_id}" not in listed(at) and "dataset:noise" in listed(at)  # only the run went
    assert Store().results(run_id) == [] and at.button[-1].label == "Delete 0 selected"


def test_a_new_disk_budget_is_saved_and_shown(swept):
    at = storage_page()
    at.number_input[0].set_value(0.5)
    next(button for button in at.button if button.label == "Save settings").click().run()
    assert not at.exception, at.exception
    assert storage.load_settings()["disk_budget_gb"] == 0.5 and storage.budget_bytes() == 0.5 * storage.GB
    at = storage_page()  # a fresh session reads it back
    assert at.number_input[0].value == 0.5
    assert any("GB used of 0.5 GB" in bar.text for bar in at.get("progress"))


def test_a_budget_below_the_folder_evicts_caches_and_says_so(swept):
    run_id, _ = swept
    caches = [entry for entry in storage.entries() if entry.kind in storage.EVICTABLE]
    assert caches and storage.total_bytes() > 0.001 * storage.GB
    at = storage_page()
    at.number_input[0].set_value(0.001)
    next(button for button in at.button if button.label == "Save settings").click().run()
    assert not at.exception, at.exception
    gone = [entry for entry in caches if not any(file.exists() for file in entry.files)]
    assert gone and (storage.total_bytes() <= 0.001 * storage.GB or len(gone) == len(caches))
    assert [toast.value for toast in at.toast] == [
        f"Saved: new sweeps use these settings; evicted {len(gone)} cache(s), "
        f"{sum(entry.bytes for entry in gone) / storage.GB:.3f} GB."
    ]
    kept = listed(at)
    assert f"run:{run_id}" in kept and "dataset:noise" in kept  # runs and datasets are never evicted
