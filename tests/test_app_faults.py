"""Issue 15, the pages' side (AppTest): every hostile or unlucky case gives one clear message naming the file,
the rest of the data stays usable, and no page shows traceback text."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from faults import (
    bomb_zip,
    colour_dataset,
    damage_table,
    giant_jpeg,
    locked,
    noise,
    png_bytes,
    remount_read_only,
    tmpfs,
)
from results import model_result
from streamlit.testing.v1 import AppTest

from core import config, paths, workspaces
from core.records import RunStatus
from core.store import Store
from ui.guard import plain

REPO = Path(__file__).resolve().parents[1]
ENTRY = str(REPO / "streamlit_app.py")
SMALL_MODEL = "MobileNet:0.25@128"
SHOWN = ("title", "subheader", "markdown", "caption", "text", "error", "warning", "info", "success", "exception")


def app(page: str, **state) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=180)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    return at


def shown(at: AppTest) -> str:
    """Every piece of text the page shows, as its Markdown source."""
    return "\n".join(str(element.value) for kind in SHOWN for element in at.get(kind))


def assert_clean(at: AppTest) -> None:
    """No exception, and no traceback text anywhere on the page."""
    assert not at.exception, at.exception
    text = shown(at)
    assert "Traceback" not in text and 'File "' not in text, text


def errors(at: AppTest) -> list[str]:
    return [element.value for element in at.error]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label.startswith(label))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> int:
    from core.sweep import SweepSettings, run_sweep

    root = colour_dataset(tmp_path_factory.mktemp("colours") / "colours")
    outcome = run_sweep(root, SweepSettings(models=[SMALL_MODEL], epochs=10, runtime="tf"))
    assert outcome.results[0].status == "ok", outcome.results[0]
    return outcome.run_id


# 1. Limits on the server -----------------------------------------------------------------------------
def test_data_page_refuses_an_oversized_upload_in_hosted_mode(monkeypatch, tb_home):
    monkeypatch.setenv(config.HOSTED_ENV, "1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # 60 MB: the browser's 50 MB cap bypassed
        archive.writestr("cats/noise.bin", np.random.default_rng(0).bytes(60 * 1024**2))
    at = app("data")
    at.radio[0].set_value("Upload a .zip").run()
    at.file_uploader[0].set_value(("pets.zip", buffer.getvalue(), "application/zip")).run()
    assert_clean(at)
    assert errors(at) == [
        plain(
            f"pets.zip is 60.0 MB; this app accepts uploads of up to 50 MB. Received: {len(buffer.getvalue()):,} bytes"
        )
    ]
    assert "dataset" not in at.session_state and not paths.uploads_dir().exists()


def test_data_page_names_the_bomb_in_a_zip_and_extracts_nothing(tmp_path, tb_home):
    data = bomb_zip(tmp_path / "bomb.zip", expanded_mb=64).read_bytes()
    at = app("data")
    at.radio[0].set_value("Upload a .zip").run()
    at.file_uploader[0].set_value(("pets.zip", data, "application/zip")).run()
    assert_clean(at)
    assert len(errors(at)) == 1 and "cats/bomb.jpg would expand" in errors(at)[0].replace("\\", "")
    assert "zip bomb" in errors(at)[0]
    assert not paths.datasets_dir().exists() or not any(paths.datasets_dir().iterdir())


def test_predict_refuses_a_giant_canvas_when_hosted_and_classifies_the_rest(finished_run, tmp_path, monkeypatch):
    giant = giant_jpeg(tmp_path / "giant.jpg").read_bytes()
    files = [("giant.jpg", giant, "image/jpeg"), ("red.png", png_bytes(noise(48, 48, 3)), "image/png")]
    at = app("predict", run_id=finished_run)
    at.file_uploader[0].set_value(files).run()  # on your own machine: decoded small, and classified
    assert_clean(at)
    assert not errors(at) and len(at.get("image")) == 2
    monkeypatch.setenv(config.HOSTED_ENV, "1")  # a visitor of a shared app, whose workspace holds the run
    workspace = workspaces.create(Store())
    with Store().transaction() as db:
        db.execute("UPDATE runs SET workspace = ? WHERE id = ?", (workspace, finished_run))
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params["ws"], at.session_state["run_id"] = workspace, finished_run
    at.run().switch_page("app_pages/predict.py").run()
    at.file_uploader[0].set_value(files).run()
    assert_clean(at)
    reason = "too large: 11000x8000 px (88 megapixels; the limit is 40), refused before decoding"
    assert errors(at) == [f"**giant.jpg**: {plain(reason)}"]
    assert len(at.get("image")) == 1  # red.png is still classified
    assert any("1 image(s) classified" in caption.value for caption in at.caption)


# 6. Folder uploads -----------------------------------------------------------------------------------
def test_data_page_keeps_every_file_of_emoji_class_folders(tb_home):
    files = [
        (f"set/{name}/{index:02d}.png", png_bytes(noise(24, 24, seed * 100 + index)), "image/png")
        for seed, name in enumerate(["😀", "😺"])
        for index in range(8)
    ]
    at = app("data")
    at.radio[0].set_value("Upload a folder").run()
    at.file_uploader[0].set_value(files).run()
    assert_clean(at)
    assert not errors(at), errors(at)
    metrics = {m.label: int(m.value) for m in at.metric if m.label.endswith("images") or m.label == "Classes"}
    assert (
        metrics["Classes"] == 2
        and metrics["Train images"] + metrics["Validation images"] + metrics["Test images"] == 16
    )


# 8. Names as text, never Markdown --------------------------------------------------------------------
def test_folder_and_class_names_are_shown_as_text(tmp_path, tb_home):
    names = ["**bold**", "[link](mailto:me@example.com)", ":red[colour]"]  # (no "/": one folder each)
    root = tmp_path / "<i>set"
    for seed, name in enumerate(names):
        for index in range(4):
            (root / name).mkdir(parents=True, exist_ok=True)
            noise(24, 24, seed * 10 + index).save(root / name / f"{index}.png")
    at = app("data")
    at.radio[0].set_value("Server path").run()
    at.text_input[0].set_value(str(root)).run()
    button(at, "Load path").click().run()
    assert_clean(at)
    text = shown(at)
    for raw in [*names, "<i>set"]:
        assert raw not in text, raw  # nowhere as Markdown source
    for name in names:
        assert f"**{plain(name)}**" in text  # each class heading, escaped
    assert plain(root.name) in text


# 3. Store faults -------------------------------------------------------------------------------------
def test_a_corrupt_store_is_one_message_with_a_fresh_start_on_every_page(tb_home):
    database = paths.database()
    database.parent.mkdir(parents=True, exist_ok=True)
    database.write_bytes(b"this is not a database" * 500)
    for page in ("train", "compare", "predict"):
        at = app(page)
        assert_clean(at)
        assert len(errors(at)) == 1 and plain(f"The store {database} is damaged") in errors(at)[0], errors(at)
    button(at, "Start a fresh store").click().run()
    assert_clean(at)
    assert not errors(at) and any("No trained models yet" in info.value for info in at.info)
    kept = list(database.parent.glob("transferbench.db.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"this is not a database" * 500


def test_damaged_pages_in_the_results_table_are_a_message_not_a_traceback(tb_home):
    store = Store()
    run_id = store.create_run("/data", {"models": [f"m{index}" for index in range(40)]})
    for index in range(40):
        store.save_result(run_id, model_result(model=f"m{index}"))
    store.update_run(run_id, status=RunStatus.DONE)
    damage_table(store.path, "results")
    for page in ("train", "compare", "predict"):
        at = app(page, run_id=run_id)
        assert_clean(at)
        assert len(errors(at)) == 1 and plain(f"The store {store.path} is damaged") in errors(at)[0], (page, errors(at))


def test_start_on_a_locked_store_says_so_within_seconds(tmp_path, tb_home):
    store = Store()
    at = app("train", dataset=str(colour_dataset(tmp_path / "colours", per_class=4)), models=[SMALL_MODEL])
    with locked(store.path):
        started = time.monotonic()
        button(at, "Start sweep").click().run()
        waited = time.monotonic() - started
    assert_clean(at)
    assert waited < config.APP_STORE_WAIT_SECONDS + 5, waited
    assert len(errors(at)) == 1 and plain(f"The store {store.path} is locked by another process") in errors(at)[0]
    assert store.runs() == []  # nothing half-started


def test_a_read_only_data_folder_still_shows_results(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "ro", "8m") as home:
        monkeypatch.setenv(paths.HOME_ENV, str(home))
        store = Store()
        run_id = store.create_run(str(tmp_path), {"models": ["MobileNet:0.25@128"]})
        store.save_result(run_id, model_result())
        store.update_run(run_id, status=RunStatus.DONE)
        remount_read_only(home)
        at = app("compare", run_id=run_id)
        assert_clean(at)
        assert not errors(at) and list(at.dataframe[0].value["model"]) == ["MobileNet:0.25@128"]
        at = app("train", run_id=run_id, dataset=str(tmp_path), models=[SMALL_MODEL])
        assert_clean(at)
        button(at, "Start sweep").click().run()
        assert_clean(at)
        assert len(errors(at)) == 1 and "cannot be written (a read-only data folder?)" in errors(at)[0].replace(
            "\\", ""
        )


# 7. Dead workers and full disks, on every page that shows the run ------------------------------------
def test_a_dead_worker_on_a_full_disk_is_reported_on_train_and_compare(tb_home):
    store = Store()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_id = store.create_run("/data", {"models": ["MobileNet:0.25@128", "MobileNet:0.5@128"]})
    store.save_result(run_id, model_result())
    store.update_run(run_id, status=RunStatus.RUNNING, pid=gone.pid)
    paths.worker_log(run_id).parent.mkdir(parents=True)
    paths.worker_log(run_id).write_text("sqlite3.OperationalError: database or disk is full\n")
    at = app("compare", run_id=run_id)  # noticed here first: not "still running" forever
    assert_clean(at)
    assert len(errors(at)) == 1 and plain(f"the disk holding {paths.home()} is full") in errors(at)[0]
    assert not any("still running" in info.value for info in at.info)
    at = app("train", run_id=run_id)
    assert_clean(at)
    assert any(plain(f"the disk holding {paths.home()} is full") in error for error in errors(at))


# 5. A damaged cache --------------------------------------------------------------------------------
def test_a_truncated_latency_cache_leaves_the_models_page_working(tb_home):
    paths.latency_cache().parent.mkdir(parents=True)
    paths.latency_cache().write_text('{"MobileNet_0.25@224/tf on some host": {"ms": 1.2, "images_per')
    at = app("models")
    assert_clean(at)
    assert any(b.key == "speed-MobileNet:0.25" for b in at.button)  # offered again, to be measured and rewritten


def test_folder_upload_guides_large_folders_to_a_zip(tb_home):
    at = app("data")
    at.radio[0].set_value("Upload a folder").run()
    assert any("upload it as a .zip" in caption.value for caption in at.caption)
