"""Issue 15, the engine's side: limits enforced on the server, a store that survives faults, atomic caches,
prompt Cancel, one sweep per data folder. Every input is generated for real (see `faults.py`)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
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
    zip_declaring,
)
from results import model_result

from core import archives, config, paths, scheduler
from core.cli import main as cli
from core.data import load_dataset
from core.decoded import DecodedImages, decoded_images
from core.errors import DatasetError, ImageProblem
from core.features import Extractor, extract_features
from core.images import decode_image
from core.latency import known_latencies, model_latency
from core.progress import Cancelled, Stage
from core.records import Failed, NotRun, RunStatus, Status
from core.store import Store, StoreError, SweepBusy, start_fresh
from core.sweep import SweepSettings, run_sweep
from core.worker import active_run, checked
from core.zoo import ModelRef

REPO = Path(__file__).resolve().parents[1]
SMALL_MODEL = "MobileNet:0.25@128"


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv(config.HOSTED_ENV, "1")


# 1. Limits on the server -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["local", "hosted"])
def test_a_zip_bomb_is_refused_before_a_byte_is_written(tmp_path, tb_home, monkeypatch, mode):
    monkeypatch.setenv(config.HOSTED_ENV, "1" if mode == "hosted" else "")
    bomb = bomb_zip(tmp_path / "bomb.zip", expanded_mb=64)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DatasetError, match=r"bomb\.zip: cats/bomb\.jpg would expand .* times .* zip bomb"):
        load_dataset(bomb)
    assert not paths.datasets_dir().exists() or not any(paths.datasets_dir().iterdir())  # nothing extracted


def test_hosted_extraction_cap_is_well_below_memory(tmp_path, hosted):
    lying = zip_declaring(tmp_path / "big.zip", members=5, declared_mb=100)  # says 500 MB at ratio 1
    with pytest.raises(DatasetError, match=r"big\.zip would expand to 524,288,000 bytes; the limit is 419,430,400"):
        archives.extract_zip(lying, tmp_path / "out")
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["big.zip"]


def test_hosted_upload_cap_is_enforced_on_the_server(tb_home, hosted):
    data = np.random.default_rng(0).integers(0, 256, 60 * 1024**2, dtype=np.uint8).tobytes()
    with pytest.raises(DatasetError, match=r"pets\.zip is 60\.0 MB; this app accepts uploads of up to 50 MB"):
        archives.save_zip("pets.zip", data)
    with pytest.raises(DatasetError, match="The folder is 60.0 MB"):
        archives.save_folder([("set/a/x.jpg", data)])
    assert not paths.uploads_dir().exists() or not any(paths.uploads_dir().iterdir())


def test_giant_canvas_jpeg_is_decoded_small_locally_and_refused_when_hosted(tmp_path, monkeypatch):
    data = giant_jpeg(tmp_path / "giant.jpg").read_bytes()
    assert len(data) < 3 * 1024**2
    image = decode_image(data)  # 88 megapixels: decoded at 1/8 scale, kept at most 1024 px per side
    assert max(image.size) <= config.DECODE_MAX_SIDE and image.mode == "RGB"
    monkeypatch.setenv(config.HOSTED_ENV, "1")
    with pytest.raises(ImageProblem, match=r"too large: 11000x8000 px \(88 megapixels; the limit is 40\)"):
        decode_image(data)
    with pytest.raises(ImageProblem, match=r"too large: 21\.0 MB \(the limit for one image is 20 MB\)"):
        decode_image(png_bytes(noise(32, 32, 0)) + bytes(21 * 1024**2 - len(png_bytes(noise(32, 32, 0)))))


def test_a_giant_canvas_in_a_hosted_dataset_is_skipped_with_its_reason(tmp_path, tb_home, hosted):
    root = colour_dataset(tmp_path / "set", per_class=4)
    giant_jpeg(root / "red" / "giant.jpg", 9000, 6000)
    dataset = load_dataset(root)
    assert [(s.path, s.reason) for s in dataset.report.skipped] == [
        ("red/giant.jpg", "too large: 9000x6000 px (54 megapixels; the limit is 40), refused before decoding")
    ]
    assert len(dataset.images) == 8  # the rest of the data intact


@pytest.mark.parametrize("size", [0, 31, 100_000])
def test_image_size_bounds_in_settings_and_the_command_line(tmp_path, capsys, size):
    with pytest.raises(ValueError, match=rf"image_size must be 32 to 1024 px\. Received: image_size={size}"):
        SweepSettings(models=[SMALL_MODEL], image_size=size)
    with pytest.raises(ValueError, match=r"input size must be 32 to 1024 px\. Received: MobileNet:0.25@100000"):
        SweepSettings(models=["MobileNet:0.25@100000"])
    with pytest.raises(SystemExit) as exited:
        cli(["sweep", str(tmp_path), "--models", SMALL_MODEL, "--image-size", str(size)])
    assert exited.value.code == 2
    assert f"expected whole pixels from 32 to 1024. Received: {size}" in capsys.readouterr().err


# 6. Folder uploads -----------------------------------------------------------------------------------
def test_emoji_class_folders_do_not_overwrite_each_other(tmp_path, tb_home):
    files = [
        (f"set/{name}/{index:02d}.png", png_bytes(noise(24, 24, seed * 100 + index)))
        for seed, name in enumerate(["😀", "😺"])
        for index in range(8)
    ]
    root = archives.save_folder(files)
    saved = sorted(path for path in root.rglob("*") if path.is_file())
    assert len(saved) == 16 and {path.read_bytes() for path in saved} == {data for _, data in files}
    classes = sorted(path.name for path in (root / "set").iterdir())
    assert len(classes) == 2 and all(name.startswith("_-") for name in classes), classes
    assert archives.save_folder([("set/a_/x.png", files[0][1]), ("set/a😀/x.png", files[1][1])]) != root


def test_a_partial_folder_upload_is_reported_not_taken(tb_home):
    files = [(f"set/a/{index}.png", png_bytes(noise(24, 24, index))) for index in range(5)]
    with pytest.raises(DatasetError, match=r"Only 5 of the 7 files of the folder arrived.* zip the folder"):
        archives.save_folder(files, listed=7)
    assert not paths.uploads_dir().exists() or not any(paths.uploads_dir().iterdir())


def test_a_very_large_folder_upload_is_pointed_to_a_zip(tb_home, hosted):
    files = [(f"set/a/{index}.txt", b"x") for index in range(1001)]
    with pytest.raises(DatasetError, match=r"1,001 files; a folder upload takes up to 1,000\. Zip the folder"):
        archives.save_folder(files)


# 3. The store survives faults ----------------------------------------------------------------------
def test_a_lock_makes_a_write_wait_then_succeed_or_fail_clearly(tb_home):
    store = Store(lock_wait=5)
    with locked(store.path, seconds=1.0):
        started = time.monotonic()
        run_id = store.create_run("/data", {"models": ["a"]})  # waits for the lock, then writes
        assert 0.5 < time.monotonic() - started < 4.5
    quick = Store(lock_wait=0.5)
    with locked(store.path):
        started = time.monotonic()
        with pytest.raises(StoreError, match=rf"The store {store.path} is locked by another process") as caught:
            quick.create_run("/data", {"models": ["b"]})
        assert caught.value.kind == "locked" and time.monotonic() - started < 3
        assert [run.id for run in quick.runs()] == [run_id]  # reads go on while a writer holds the lock
    assert [run.id for run in store.runs()] == [run_id]


def test_a_corrupt_store_is_one_clear_error_and_a_fresh_start_keeps_the_old_file(tb_home):
    database = paths.database()
    database.parent.mkdir(parents=True, exist_ok=True)
    garbage = bytes(range(256)) * 64
    database.write_bytes(garbage)
    with pytest.raises(StoreError, match=rf"The store {database} is damaged .* Start a fresh one") as caught:
        Store()
    assert caught.value.kind == "damaged"
    kept = start_fresh()
    assert kept.read_bytes() == garbage and kept.name.startswith("transferbench.db.damaged-")
    assert Store().runs() == []


def test_damaged_pages_in_one_table_leave_the_others_readable(tb_home):
    store = Store()
    run_id = store.create_run("/data", {"models": [f"m{index}" for index in range(40)]})
    for index in range(40):
        store.save_result(run_id, model_result(model=f"m{index}"))
    damage_table(store.path, "results", pages=2)
    store = Store()
    assert [run.id for run in store.runs()] == [run_id]  # the runs table is intact
    with pytest.raises(StoreError, match=rf"The store {store.path} is damaged") as caught:
        store.results(run_id)
    assert caught.value.kind == "damaged"


def test_a_crash_mid_write_never_leaves_half_a_row(tb_home):
    writer = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from results import model_result\nfrom core.store import Store\n"
        "store = Store(); run = store.create_run('/data', {'models': ['m']}); print(run, flush=True)\n"
        "index = 0\n"
        "while True:\n    store.save_result(run, model_result(model=f'm{index}')); index += 1\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", writer, str(REPO), str(REPO / "tests")], stdout=subprocess.PIPE, text=True
    )
    run_id = int(process.stdout.readline())
    time.sleep(1.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    results = Store().results(run_id)
    assert len(results) > 5 and all(result.test_accuracy == 0.9 for result in results)
    with sqlite3.connect(paths.database()) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_read_only_data_folder_still_shows_existing_results(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "ro", "8m") as home:
        monkeypatch.setenv(paths.HOME_ENV, str(home))
        store = Store()
        run_id = store.create_run("/data", {"models": ["MobileNet:0.25@128"]})
        store.save_result(run_id, model_result())
        store.update_run(run_id, status=RunStatus.DONE)
        del store
        remount_read_only(home)
        readable = Store()
        assert readable.read_only and [r.model for r in readable.results(run_id)] == ["MobileNet:0.25@128"]
        with pytest.raises(StoreError, match=r"cannot be written \(a read-only data folder\?\)") as caught:
            readable.create_run("/data", {"models": ["b"]})
        assert caught.value.kind == "read-only"


# 4. One sweep per data folder, and liveness that a command line run does not trip --------------------
def test_one_sweep_per_data_folder_names_the_holder(tb_home):
    store = Store()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        first = store.create_run("/data/one", {"models": ["a"]})
        scheduler.claim(store, first, holder.pid, psutil.Process(holder.pid).create_time())
        second = store.create_run("/data/two", {"models": ["b"]})
        with pytest.raises(SweepBusy, match=rf"run #{first} on /data/one, pid {holder.pid} \(.*time.sleep") as busy:
            scheduler.claim(store, second, os.getpid(), psutil.Process().create_time())
        assert busy.value.holder.id == first
    finally:
        holder.kill()
        holder.wait()
    scheduler.claim(store, second, os.getpid(), psutil.Process().create_time())  # the holder is gone: its run failed
    assert store.run(first).status == RunStatus.FAILED and "stopped unexpectedly" in store.run(first).error
    assert store.run(second).status == RunStatus.RUNNING


def test_a_command_line_run_is_not_taken_for_a_dead_worker(tb_home):
    store = Store()
    run_id = store.create_run("/data", {"models": ["a"]})
    scheduler.claim(store, run_id, os.getpid(), psutil.Process().create_time())  # what `python -m core sweep` does
    with sqlite3.connect(store.path) as db:  # started a minute ago: past the 30 s a starting run is given
        db.execute("UPDATE runs SET created = created - 60 WHERE id = ?", (run_id,))
    assert active_run(store).id == run_id and store.run(run_id).status == RunStatus.RUNNING
    reused = store.create_run("/data", {"models": ["b"]})  # a pid now used by another process: not the holder
    store.update_run(reused, status=RunStatus.RUNNING, pid=os.getpid(), pid_started=1.0)
    assert checked(store.run(reused), store).status == RunStatus.FAILED


# 7. Dead workers and full disks ----------------------------------------------------------------------
def test_a_dead_worker_is_reported_with_the_cause_from_its_log(tb_home):
    store = Store()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_id = store.create_run("/data", {"models": ["a"]})
    store.update_run(run_id, status=RunStatus.RUNNING, pid=gone.pid)
    paths.worker_log(run_id).parent.mkdir(parents=True)
    paths.worker_log(run_id).write_text("Traceback (most recent call last):\nMemoryError: out of memory in decode\n")
    run = checked(store.run(run_id), store)
    assert run.status == RunStatus.FAILED
    assert (
        run.error
        == f"the background worker (pid {gone.pid}) stopped unexpectedly; its log ends: MemoryError: out of memory in decode"
    )
    assert store.run(run_id).error == run.error
    paths.worker_log(run_id).write_text("OSError: [Errno 28] No space left on device\n")
    other = store.create_run("/data", {"models": ["b"]})
    store.update_run(other, status=RunStatus.RUNNING, pid=gone.pid)
    paths.worker_log(other).parent.mkdir(parents=True)
    paths.worker_log(other).write_text("sqlite3.OperationalError: database or disk is full\n")
    assert checked(store.run(other), store).error.startswith(f"the disk holding {paths.home()} is full")


def test_a_full_disk_fails_the_sweep_with_its_real_cause(tmp_path, monkeypatch):
    data = colour_dataset(tmp_path / "colours", per_class=60, size=64)
    with tmpfs(tmp_path / "full", "3m") as home:
        monkeypatch.setenv(paths.HOME_ENV, str(home))
        store = Store()
        models = [SMALL_MODEL, f"{SMALL_MODEL}/none"]  # two at one size: the decoded pixels (5.9 MB) are kept
        with pytest.raises(OSError, match=rf"The disk holding {home} is full \(\d+\.\d MB free\)"):
            run_sweep(data, SweepSettings(models=models, epochs=2), store=store)
        run = store.runs()[0]
        assert run.status == RunStatus.FAILED and f"The disk holding {home} is full" in run.error
        assert run.report is not None  # what was written before the disk filled up is intact


# 5. Caches: atomic, and a damaged file is discarded and rebuilt ------------------------------------
def test_a_truncated_latency_cache_is_measured_again(tb_home):
    extractor = Extractor(None, ModelRef.parse("MobileNet:0.25@32/none"), "tf")
    measured = model_latency(extractor)
    cache = paths.latency_cache()
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    assert known_latencies(extractor.ref) == {}  # damaged: nothing known, nothing raised
    again = model_latency(extractor)
    assert set(again) == set(measured) and known_latencies(extractor.ref) == again
    entries = json.loads(cache.read_text())
    cache.write_text(json.dumps(dict.fromkeys(entries, {"ms": "fast"})))  # valid JSON, damaged entries
    assert known_latencies(extractor.ref) == {}  # ignored, then measured again


def test_a_truncated_features_cache_is_computed_again(tmp_path, tb_home):
    dataset = load_dataset(colour_dataset(tmp_path / "colours", per_class=6))
    extractor = Extractor(dataset, ModelRef.parse("MobileNet:0.25@32/none"), "tf")
    first = extract_features(dataset, extractor)
    path = extractor.cache_path
    path.write_bytes(path.read_bytes()[:200])
    again = extract_features(dataset, extractor)
    assert not again.cached and np.allclose(again.train, first.train)
    assert extract_features(dataset, extractor).cached  # rewritten whole
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no partial file left


def test_a_truncated_onnx_graph_is_exported_again(tmp_path, tb_home):
    dataset = load_dataset(colour_dataset(tmp_path / "colours", per_class=6))
    ref = ModelRef.parse("MobileNet:0.25@32/none")
    assert Extractor(dataset, ref, "onnx").runtime.name == "onnx"
    graph = paths.onnx_graph(ref.stem)
    graph.write_bytes(graph.read_bytes()[:1000])
    runtime = Extractor(dataset, ref, "onnx").runtime
    assert runtime.name == "onnx" and runtime.fallback_reason is None and graph.stat().st_size > 100_000


# 2. Cancel at every stage --------------------------------------------------------------------------
@pytest.mark.parametrize("stage", [Stage.DECODING, Stage.TRAINING])
def test_cancel_takes_effect_within_seconds_and_the_run_says_cancelled(tmp_path, tb_home, stage):
    data = colour_dataset(tmp_path / "colours", per_class=150, size=96)
    pressed: dict[str, float] = {}

    def on_progress(progress) -> None:
        if progress.stage == stage and (stage != Stage.DECODING or progress.done >= 32) and not pressed:
            pressed["at"] = time.monotonic()

    outcome = run_sweep(
        data,
        SweepSettings(models=[SMALL_MODEL, "MobileNet:0.5@128"], epochs=200, runtime="tf"),
        on_progress=on_progress,
        should_stop=lambda: bool(pressed),
    )
    latency = time.monotonic() - pressed["at"]
    assert latency < 5, latency
    first, second = outcome.results
    assert first.status == (Status.NOT_RUN if stage == Stage.DECODING else Status.PARTIAL)
    assert isinstance(second, NotRun) and not isinstance(first, Failed)
    assert Store().run(outcome.run_id).status == RunStatus.CANCELLED
    assert not list(paths.cache_dir().rglob("*.partial"))  # nothing half-written is left behind


def test_a_cancelled_reader_stops_the_decoding(tmp_path, tb_home):
    dataset = load_dataset(colour_dataset(tmp_path / "colours", per_class=200, size=256))
    images = DecodedImages(dataset, 224)
    read: list = []
    with pytest.raises(Cancelled, match="cancelled at image 32 of 400"):
        for batch in images.batches(16, should_stop=lambda: len(read) >= 2):
            read.append(batch)
    deadline = time.monotonic() + 5
    while images.usable and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not images.usable and isinstance(images._error, Cancelled)
    assert not list(paths.cache_dir().rglob("images-*"))  # neither the partial file nor a finished one
    assert decoded_images(dataset, 224) is not images  # the next request starts over


def test_a_lock_mid_sweep_never_turns_a_finished_model_into_a_failure(tmp_path, tb_home):
    data = colour_dataset(tmp_path / "colours", per_class=20)
    store = Store(lock_wait=20)
    holding: list = []

    def on_progress(progress) -> None:
        if progress.stage == Stage.TRAINING and not holding:  # a 4 s lock while the head trains and is saved
            holding.append(locked(store.path, seconds=4.0))
            holding[0].__enter__()

    outcome = run_sweep(data, SweepSettings(models=[SMALL_MODEL], epochs=20), store=store, on_progress=on_progress)
    holding[0].__exit__(None, None, None)
    result = outcome.results[0]
    assert result.status == Status.OK and outcome.recommendation.model == SMALL_MODEL
    run = store.run(outcome.run_id)
    assert run.status == RunStatus.DONE and [r.status for r in store.results(run.id)] == [Status.OK]
    assert len(store.history(run.id, SMALL_MODEL)) == result.epochs_run  # every epoch kept
