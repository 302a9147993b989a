"""Issue 12, workspaces: what one visitor owns, kept apart in a real SQLite store and real folders; quotas,
expiry, share links, and what a hosted app shows of the server's paths."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from results import model_result

from core import archives, config, paths, worker, workspaces
from core.progress import Progress
from core.records import RunStatus, result_to_dict
from core.store import Store
from core.workspaces import QuotaExceeded

MODEL = "MobileNet:0.25@128"
TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")  # 16 random bytes, URL-safe base64


def noise_png(seed: int, side: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    image = io.BytesIO()
    Image.fromarray(pixels).save(image, format="PNG")
    return image.getvalue()


def zip_of_images(files: dict[str, int], side: int = 16) -> bytes:
    """A zip of noise PNGs (`name: seed`): random pixels do not compress, so the zip is as large as its images."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, seed in files.items():
            archive.writestr(name, noise_png(seed, side))
    return buffer.getvalue()


PETS = {"cats/000.png": 1, "cats/001.png": 2, "dogs/000.png": 3, "dogs/001.png": 4}


def old_store(path: Path, with_pid_started: bool) -> None:
    """A store as an earlier release wrote it (`git show HEAD~3:core/store.py`, and before it without
    `pid_started`), holding one finished run with a result."""
    pid_started = ",\n    pid_started REAL" if with_pid_started else ""
    schema = f"""
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        status TEXT NOT NULL,
        dataset TEXT NOT NULL,
        settings TEXT NOT NULL,
        report TEXT,
        recommendation TEXT,
        error TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        pid INTEGER{pid_started}
    );
    CREATE TABLE results (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        model TEXT NOT NULL,
        position INTEGER NOT NULL,
        status TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (run_id, model)
    );
    CREATE TABLE history (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        model TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        metrics TEXT NOT NULL,
        PRIMARY KEY (run_id, model, epoch)
    );
    CREATE TABLE progress (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        updated REAL NOT NULL,
        data TEXT NOT NULL
    );
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        db.execute(
            "INSERT INTO runs (created, updated, status, dataset, settings) VALUES (?, ?, 'done', '/data/old', ?)",
            (time.time() - 3600, time.time() - 3000, '{"models": ["MobileNet:0.25@128"]}'),
        )
        db.execute(
            "INSERT INTO results (run_id, model, position, status, data) VALUES (1, ?, 0, 'ok', ?)",
            (MODEL, json.dumps(result_to_dict(model_result()))),
        )


def set_seen(store: Store, workspace: str, seen: float) -> None:
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE workspaces SET seen = ? WHERE id = ?", (seen, workspace))


# Isolation ---------------------------------------------------------------------------------------------
def test_a_workspace_sees_and_changes_only_its_own_runs(tb_home):
    store = Store()
    a, b = workspaces.create(store), workspaces.create(store)
    assert a != b and TOKEN.fullmatch(a) and TOKEN.fullmatch(b)
    assert workspaces.visit(store, a) and not workspaces.visit(store, "x" * 22) and not workspaces.visit(store, "")
    mine, theirs = Store(workspace=a), Store(workspace=b)
    run_id = mine.create_run("/data/pets", {"models": [MODEL]})
    mine.save_result(run_id, model_result())
    mine.save_epoch(run_id, MODEL, 1, {"loss": 0.5, "accuracy": 0.8})
    mine.set_progress(run_id, Progress(run_id=run_id, models=[MODEL]))

    assert theirs.run(run_id) is None and theirs.runs() == []
    assert theirs.results(run_id) == [] and theirs.history(run_id) == [] and theirs.progress(run_id) is None
    assert worker.active_run(theirs) is None and worker.active_run(mine).id == run_id
    refused = {
        "update": lambda: theirs.update_run(run_id, status=RunStatus.CANCELLED),
        "request cancel": lambda: theirs.request_cancel(run_id),
        "cancel": lambda: worker.cancel(run_id, theirs),
        "delete": lambda: theirs.delete_run(run_id),
        "save a result": lambda: theirs.save_result(run_id, model_result(model="MobileNetV2:0.35@128")),
        "save an epoch": lambda: theirs.save_epoch(run_id, MODEL, 2, {"loss": 9.0}),
        "clear the history": lambda: theirs.clear_history(run_id, MODEL),
        "set the progress": lambda: theirs.set_progress(run_id, Progress(run_id=run_id, models=["x"])),
        "share": lambda: workspaces.share(theirs, run_id),
    }
    for what, write in refused.items():
        with pytest.raises(ValueError, match=rf"No run #{run_id} in this workspace"):
            write()
            pytest.fail(f"workspace B could {what} A's run")

    run = mine.run(run_id)  # untouched
    assert (run.workspace, run.status, run.cancel_requested) == (a, RunStatus.QUEUED, False)
    assert [r.model for r in mine.results(run_id)] == [MODEL]
    assert [(row["epoch"], row["loss"]) for row in mine.history(run_id)] == [(1, 0.5)]
    assert mine.progress(run_id).models == [MODEL]
    assert [r.id for r in mine.runs()] == [run_id] == [r.id for r in Store().runs()]  # everyone's store sees it


@pytest.mark.parametrize("with_pid_started", [True, False], ids=["HEAD~3", "older"])
def test_an_older_store_opens_and_gains_the_new_columns(tb_home, with_pid_started):
    old_store(paths.database(), with_pid_started)
    store = Store()
    with sqlite3.connect(store.path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert columns >= {"pid_started", "workspace", "enqueued", "started", "job"}
    assert tables >= {"runs", "results", "history", "progress", "workspaces", "shares"}
    run = store.run(1)
    assert (run.status, run.dataset, run.workspace, run.job) == (
        RunStatus.DONE,
        "/data/old",
        config.LOCAL_WORKSPACE,
        None,
    )
    assert [r.model for r in Store(workspace=config.LOCAL_WORKSPACE).results(1)] == [MODEL]
    assert Store(workspace=workspaces.create(store)).run(1) is None  # an old run belongs to the local workspace

    new = Store(workspace=workspaces.create(store)).create_run("/data/new", {"models": [MODEL]})
    assert [r.id for r in store.runs()] == [new, 1]
    Store()  # opening it again changes nothing
    assert store.run(1) == run


# Quota -------------------------------------------------------------------------------------------------
def test_the_quota_refuses_an_upload_or_extraction_that_would_exceed_it(tb_home, monkeypatch):
    monkeypatch.setenv(config.QUOTA_ENV, "1")  # MB
    store = Store()
    space = workspaces.create(store)
    first = zip_of_images({f"cats/{i}.png": i for i in range(3)}, side=256)  # 3 x 192 KB of noise
    second = zip_of_images({f"dogs/{i}.png": 10 + i for i in range(3)}, side=256)
    assert 0.5 < len(first) / config.MB < 0.6

    saved = archives.save_zip("cats.zip", first, workspace=space)  # 0.6 MB of 1: fits
    assert saved.parent == paths.uploads_dir(space) and workspaces.usage_bytes(store, space) == len(first)

    with pytest.raises(
        QuotaExceeded, match=r"would keep 1\.1 MB; a workspace may keep up to 1 MB\. .*Storage page"
    ) as caught:
        archives.save_zip("dogs.zip", second, workspace=space)
    assert "Received: 0.6 MB more on 0.6 MB" in str(caught.value)
    assert [p.name for p in paths.uploads_dir(space).iterdir()] == [saved.name]  # nothing written

    with pytest.raises(QuotaExceeded, match=r"would keep 1\.1 MB"):  # extracting it would double it
        archives.as_folder(saved)
    assert not paths.datasets_dir(space).exists() or not any(paths.datasets_dir(space).iterdir())

    monkeypatch.setenv(config.QUOTA_ENV, "2")
    folder = archives.as_folder(saved)
    assert folder.parent == paths.datasets_dir(space) and len(list(folder.rglob("*.png"))) == 3

    monkeypatch.setenv(config.QUOTA_ENV, "0.5")  # the local workspace has no quota
    assert archives.save_zip("dogs.zip", second).parent == paths.uploads_dir(config.LOCAL_WORKSPACE)


# Expiry ------------------------------------------------------------------------------------------------
def test_expire_deletes_an_idle_workspace_with_its_files_and_keeps_the_others(tb_home, monkeypatch):
    monkeypatch.setenv(config.IDLE_HOURS_ENV, "1")
    store = Store()
    idle, busy, recent = (workspaces.create(store) for _ in range(3))
    kept, files = {}, {}
    for space in (idle, busy, recent):
        upload = archives.save_zip("pets.zip", zip_of_images(PETS), workspace=space)
        dataset = archives.as_folder(upload)
        run_id = Store(workspace=space).create_run(str(dataset), {"models": [MODEL]})
        Store(workspace=space).save_result(run_id, model_result())
        head = paths.run_dir(run_id) / "heads" / "head.npz"
        head.parent.mkdir(parents=True)
        head.write_bytes(b"weights")
        if space != busy:
            store.update_run(run_id, status=RunStatus.DONE)  # the busy one's run is still queued
        kept[space], files[space] = run_id, [upload, dataset, head]
    token = workspaces.share(Store(workspace=idle), kept[idle])
    local = store.create_run("/data/local", {"models": [MODEL]})  # the local workspace is never expired
    store.update_run(local, status=RunStatus.DONE)
    two_hours_ago = time.time() - 7200
    set_seen(store, idle, two_hours_ago)
    set_seen(store, busy, two_hours_ago)

    assert workspaces.expire(store) == [idle]
    assert not paths.workspace_dir(idle).exists() and not any(path.exists() for path in files[idle])
    assert not paths.run_dir(kept[idle]).exists()
    assert store.run(kept[idle]) is None and store.results(kept[idle]) == []
    assert workspaces.shared_run(store, token) is None and not workspaces.visit(store, idle)
    for space in (busy, recent):
        assert all(path.exists() for path in files[space]) and workspaces.visit(store, space)
        assert [r.id for r in Store(workspace=space).runs()] == [kept[space]]
    assert store.run(local).status == RunStatus.DONE
    assert workspaces.expire(store) == []


# Share links -------------------------------------------------------------------------------------------
def test_a_share_link_shows_one_run_until_its_workspace_revokes_it(tb_home):
    store = Store()
    a, b = workspaces.create(store), workspaces.create(store)
    mine, theirs = Store(workspace=a), Store(workspace=b)
    run_id = mine.create_run("/data/pets", {"models": [MODEL]})
    other = mine.create_run("/data/other", {"models": [MODEL]})
    token, second = workspaces.share(mine, run_id), workspaces.share(mine, run_id)
    assert TOKEN.fullmatch(token) and TOKEN.fullmatch(second) and token != second
    assert token not in (a, b) and str(run_id) not in (token, second)

    for viewer in (store, theirs, Store(workspace=workspaces.create(store))):  # anyone with the link
        shown = workspaces.shared_run(viewer, token)
        assert shown.id == run_id and shown.workspace == a
    assert [s.token for s in workspaces.shares(mine, run_id)] == [second, token]
    assert workspaces.shares(theirs, run_id) == [] and workspaces.shares(mine, other) == []
    for guess in ("", "x" * 22, token[:-1], token + "A", "../" + token[3:], f"{run_id}"):
        assert workspaces.shared_run(store, guess) is None

    workspaces.revoke(theirs, token)  # another workspace cannot revoke it
    assert workspaces.shared_run(store, token).id == run_id
    workspaces.revoke(mine, token)
    assert workspaces.shared_run(store, token) is None and workspaces.shared_run(store, second).id == run_id
    assert [s.token for s in workspaces.shares(mine, run_id)] == [second]
    mine.delete_run(run_id)  # deleting the run ends its links
    assert workspaces.shared_run(store, second) is None


# What a visitor sees of the server ---------------------------------------------------------------------
def test_hosted_names_and_messages_show_no_server_path(tb_home, monkeypatch):
    monkeypatch.setenv(config.HOSTED_ENV, "1")
    space = workspaces.create(Store())
    upload = archives.save_zip("pets.zip", zip_of_images(PETS), workspace=space)
    dataset = archives.as_folder(upload)
    image = dataset / "cats" / "000.png"
    assert image.is_file() and workspaces.owner(upload) == space == workspaces.owner(dataset)
    assert re.fullmatch(r"[0-9a-f]{12}-pets\.zip", upload.name)
    assert re.fullmatch(r"[0-9a-f]{12}-pets-[0-9a-f]{12}", dataset.name)
    folder = archives.save_folder([("birds/0.png", noise_png(5))], workspace=space)

    assert workspaces.display_name(upload) == "pets.zip"
    assert workspaces.display_name(dataset) == "pets"
    assert workspaces.display_name(image) == "pets/cats/000.png"
    assert workspaces.display_name(folder) == "uploaded folder"
    assert workspaces.display_name("/srv/data/flowers") == "flowers"

    weights = Path(os.environ["KERAS_HOME"]) / "models" / "mobilenet_1_0_224_tf_no_top.h5"
    message = f"Cannot decode {image}: truncated. Missing weights {weights} (extracted from {upload})."
    redacted = workspaces.redact(message)
    assert redacted == (
        "Cannot decode pets/cats/000.png: truncated. Missing weights <Keras cache>/mobilenet_1_0_224_tf_no_top.h5 "
        "(extracted from pets.zip)."
    )
    assert str(tb_home) not in redacted and "/tmp" not in redacted and space not in redacted
    here = str(Path(__file__).resolve())
    assert workspaces.redact(f"in {here}, line 3") == f"in <app>/{Path(here).name}, line 3"


def test_locally_paths_are_shown_as_they_are(tb_home, tmp_path):
    upload = archives.save_zip("pets.zip", zip_of_images(PETS))
    dataset = archives.as_folder(upload)
    assert workspaces.owner(dataset) == config.LOCAL_WORKSPACE and dataset.parent == tb_home / "datasets"
    message = f"Cannot decode {dataset / 'cats' / '000.png'}: truncated (from {upload})"
    assert workspaces.redact(message) == message
    assert workspaces.display_name(tmp_path / "flowers") == str(tmp_path / "flowers")
    assert (
        workspaces.display_name(dataset) == "pets"
    )  # the data folder's own names are still shown as a user knows them
    workspaces.check_room(config.LOCAL_WORKSPACE, 10**12)  # no quota on your own machine
