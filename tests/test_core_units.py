"""Engine pieces on small generated data: metrics, recommendation, settings, store, background worker."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from core import worker
from core.evaluate import classification_metrics, recommend, screen
from core.store import Store
from core.sweep import Progress, SweepSettings
from core.train import HeadSettings, head_batch_size
from core.zoo import model_weights, parse_model_id


def test_classification_metrics_from_known_predictions():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    metrics = classification_metrics(labels, np.eye(3)[predicted], ["a", "b", "c"])
    assert metrics["val_accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    a, b, c = metrics["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"]) == (pytest.approx(2 / 3), 1.0)
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)


def _result(model, accuracy, params, latency):
    return {"model": model, "val_accuracy": accuracy, "params": params, "latency_ms": latency}


def test_recommend_picks_smallest_and_fastest_within_tolerance():
    results = [
        _result("big", 0.980, 20e6, 30.0),
        _result("small", 0.975, 1e6, 12.0),
        _result("tiny", 0.940, 0.2e6, 5.0),
        _result("quick", 0.972, 3e6, 8.0),
        {"model": "broken", "status": "failed", "error": "no weights"},
    ]
    recommendation = recommend(results, tolerance=0.01)
    assert (recommendation["model"], recommendation["fastest"], recommendation["best"]) == ("small", "quick", "big")
    assert "small is the smallest of the 3 models within 1 point of the best" in recommendation["reason"]
    assert "20.0x fewer" in recommendation["reason"] and "Fastest by the same rule: quick" in recommendation["reason"]
    alone = recommend(results[:1])
    assert alone["reason"].startswith("big has the best validation accuracy (98.0%, 20.00M parameters)")
    assert recommend(results, tolerance=0.05)["model"] == "tiny"
    assert recommend([{"model": "broken", "status": "failed"}]) is None


def test_recommend_without_latency_has_no_fastest():
    recommendation = recommend([_result("a", 0.9, 1e6, None), _result("b", 0.95, 2e6, None)])
    assert (recommendation["model"], recommendation["fastest"]) == ("b", None)
    assert recommendation["reason"].endswith("within 1 point of it.")


def test_screen_keeps_the_top_few_and_the_close_pareto_front():
    results = [
        _result("big", 0.97, 20e6, None),  # most accurate
        _result("mid", 0.96, 5e6, None),  # on the front, within the margin
        _result("dominated", 0.955, 8e6, None),  # bigger and worse than "mid": off the front
        _result("tiny", 0.90, 0.5e6, None),  # on the front but far below the best
        _result("untrained", 0.5, 3e6, None),
        {"model": "broken", "status": "failed", "error": "no weights"},
    ]
    outcome = screen(results, keep=1, tolerance=0.01, validation_images=400)
    # margin = tolerance + 2 standard errors of 97% on 400 images (Agresti-Coull: 390 of 404): 0.01 + 2 * 0.0087
    assert outcome["margin"] == pytest.approx(0.01 + 2 * ((390 / 404) * (14 / 404) / 404) ** 0.5)
    assert outcome["finalists"] == ["big", "mid"]  # in the sweep's order
    assert outcome["screened_out"] == ["dominated", "tiny", "untrained"]  # by subset accuracy; "broken" is neither
    assert screen(results, keep=3, tolerance=0.01, validation_images=400)["finalists"] == ["big", "mid", "dominated"]
    # A first round drops only the models clearly beaten: the close one off the front stays.
    assert screen(results, keep=1, tolerance=0.01, validation_images=400, front_only=False)["finalists"] == ["big", "mid", "dominated"]
    # Few validation images: a wider margin lets the small model through.
    assert "tiny" in screen(results, keep=1, tolerance=0.01, validation_images=20)["finalists"]
    # Every image right is no certainty: on 30 images the margin still exceeds the tolerance by 2 standard errors.
    perfect = [_result("perfect", 1.0, 20e6, None), _result("close", 0.94, 1e6, None)]
    assert screen(perfect, keep=1, tolerance=0.01, validation_images=30)["finalists"] == ["perfect", "close"]
    assert screen(results[-1:], keep=2, tolerance=0.01, validation_images=400)["finalists"] == []
    with pytest.raises(ValueError, match="Received: keep=0"):
        screen(results, keep=0, tolerance=0.01, validation_images=400)


def test_heads_on_few_images_take_smaller_batches():
    settings = HeadSettings()  # batch 64, at least 8 updates per epoch
    assert head_batch_size(2400, settings) == 64  # a full dataset: the batch size as set
    assert head_batch_size(240, settings) == 30 and head_batch_size(80, settings) == 10  # screening subsets
    assert head_batch_size(3, settings) == 1


def test_model_ids_may_carry_size_and_weights():
    spec, size = parse_model_id("MobileNet:0.25@128/none")
    assert (spec.id, size, model_weights("MobileNet:0.25@128/none", "imagenet")) == ("MobileNet:0.25", 128, "none")
    assert model_weights("MobileNet:0.25@128", "imagenet") == "imagenet"
    with pytest.raises(ValueError, match="one of .*Received: model='MobileNet:0.25/random'"):
        model_weights("MobileNet:0.25/random", "imagenet")
    with pytest.raises(ValueError, match="Received: model='MobileNet:0.25/random'"):
        SweepSettings(models=["MobileNet:0.25/random"])


def test_screening_settings_are_checked():
    assert SweepSettings(models=["ResNet50", "ResNet50/none"], screen=0.2).screen == 0.2
    with pytest.raises(ValueError, match="Received: screen=1.5"):
        SweepSettings(models=["ResNet50"], screen=1.5)
    with pytest.raises(ValueError, match="Received: screen_keep=0"):
        SweepSettings(models=["ResNet50"], screen=0.2, screen_keep=0)
    with pytest.raises(ValueError, match="once"):
        SweepSettings(models=["ResNet50", "ResNet50"])


def test_sweep_settings_check_arguments_up_front():
    with pytest.raises(ValueError, match="at least one model"):
        SweepSettings(models=[])
    with pytest.raises(ValueError, match="Received: weights=random"):
        SweepSettings(models=["ResNet50"], weights="random")
    with pytest.raises(ValueError, match="Received: epochs=0"):
        SweepSettings(models=["ResNet50"], epochs=0)
    with pytest.raises(ValueError, match="Unknown model id"):
        SweepSettings(models=["ResNet51"])
    with pytest.raises(ValueError, match="at least 75 px"):
        SweepSettings(models=["InceptionV3"], image_size=64)
    settings = SweepSettings(models=["MobileNet:0.25@128", "ResNet50"], image_size=96)
    assert (settings.input_size("MobileNet:0.25@128"), settings.input_size("ResNet50")) == (128, 96)


def test_hosted_mode_caps_models_and_images(monkeypatch):
    monkeypatch.setenv("TRANSFERBENCH_HOSTED", "1")
    with pytest.raises(ValueError, match=r"up to 5M parameters.*Received: models=\['ResNet50'\]"):
        SweepSettings(models=["MobileNet:0.25", "ResNet50"])
    assert SweepSettings(models=["MobileNet:0.25"]).max_images == 1000
    assert SweepSettings(models=["MobileNet:0.25"], max_images=200).max_images == 200
    monkeypatch.setenv("TRANSFERBENCH_HOSTED", "0")
    assert SweepSettings(models=["ResNet50"]).max_images is None


def test_progress_fraction_grows_through_the_stages():
    progress = Progress(run_id=1, models=["a", "b"])
    seen = [progress.fraction]
    for stage, done, total in [("building", 0, 0), ("decoding images and extracting features", 50, 100), ("extracting features", 100, 100)]:
        progress.model, progress.stage, progress.done, progress.total = "a", stage, done, total
        seen.append(progress.fraction)
    progress.stage, progress.epoch, progress.epochs = "training head", 10, 20
    seen.append(progress.fraction)
    progress.stage = "measuring latency"
    seen.append(progress.fraction)
    progress.finished.append("a")
    progress.stage, progress.model = "building", "b"
    seen.append(progress.fraction)
    progress.finished.append("b")
    progress.stage = "done"
    seen.append(progress.fraction)
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 1
    assert seen[3] == pytest.approx((0.05 + 0.75) / 2)


def test_store_round_trip(tb_home):
    store = Store()
    assert store.path == tb_home / "transferbench.db"
    run_id = store.create_run("/data", {"models": ["a"]})
    store.update_run(run_id, status="running", report={"classes": ["x", "y"]})
    store.save_epoch(run_id, "a", 1, {"loss": 0.5, "val_accuracy": 0.9})
    store.save_result(run_id, {"model": "a", "status": "ok", "val_accuracy": 0.9})
    store.set_progress(run_id, {"stage": "features", "fraction": 0.4})
    run = store.run(run_id)
    assert (run["status"], run["settings"], run["report"]) == ("running", {"models": ["a"]}, {"classes": ["x", "y"]})
    assert store.results(run_id) == [{"model": "a", "status": "ok", "val_accuracy": 0.9}]
    assert store.history(run_id) == [{"model": "a", "epoch": 1, "loss": 0.5, "val_accuracy": 0.9}]
    assert store.progress(run_id)["fraction"] == 0.4
    with pytest.raises(ValueError, match="Received: status=finished"):
        store.update_run(run_id, status="finished")
    assert not store.cancel_requested(run_id)
    store.request_cancel(run_id)
    assert store.cancel_requested(run_id)


def _tiny_dataset(root):
    """Two classes of flat-colour 40 px images: red-ish and blue-ish, with noise."""
    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_background_worker_runs_a_sweep_and_keeps_results(tb_home, tmp_path):
    data = _tiny_dataset(tmp_path / "data")
    settings = SweepSettings(models=["MobileNet:0.25@32"], weights="none", epochs=3)
    run_id = worker.start_sweep(str(data), settings)
    assert worker.active_run()["id"] == run_id
    store = Store()
    deadline = time.time() + 180
    while store.run(run_id)["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    run = store.run(run_id)
    assert run["status"] == "done", (run, (tb_home / "runs" / str(run_id) / "worker.log").read_text()[-2000:])
    (result,) = store.results(run_id)
    assert result["status"] == "ok" and result["input_size"] == 32 and result["weights"] == "none"
    assert len(store.history(run_id, "MobileNet:0.25@32")) == result["epochs_run"]
    assert store.progress(run_id)["fraction"] == 1.0
    assert worker.active_run() is None


def test_a_dead_worker_is_marked_failed(tb_home):
    store = Store()
    run_id = store.create_run("/nowhere", {"models": ["ResNet50"]})
    store.update_run(run_id, status="running", pid=2**22 + 12345)  # no such process
    assert worker.active_run() is None
    assert store.run(run_id)["status"] == "failed"
    assert "stopped unexpectedly" in store.run(run_id)["error"]
