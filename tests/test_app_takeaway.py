"""AppTest for taking the answer away: fine-tune from Compare (a real background job), export with downloads,
Predict on a fine-tuned model, the camera and an exported file; the untrained offer and weights by size.

The run is the session's `finished_sweep` (cats-and-dogs photos), in this module's own copy of its data folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_app_pages import SMALL_MODEL, app, colour_dataset, errors, png_bytes

from core import paths, run_data, worker
from core.complete import load_complete
from core.export_formats import FORMATS
from core.finetune import FineTuneSettings, fine_tune, fine_tuned_name
from core.images import open_image, resized
from core.records import ModelResult
from core.store import Store

TUNED = fine_tuned_name(SMALL_MODEL)
JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def finished_run(finished_copy) -> int:
    assert [result.model for result in finished_copy.outcome.results] == [SMALL_MODEL]
    return finished_copy.run_id


@pytest.fixture(scope="module")
def tuned_run(finished_run) -> int:
    """The run with its model fine-tuned (in this process, when the panel's job has not done it yet)."""
    results = {r.model: r for r in Store().results(finished_run)}
    if not isinstance(results.get(TUNED), ModelResult):
        fine_tune(finished_run, SMALL_MODEL, FineTuneSettings(epochs=1))
    return finished_run


def no_traceback(at) -> None:
    assert not at.exception, at.exception
    texts = [e.value for e in [*at.markdown, *at.error, *at.caption, *at.warning]]
    assert not [t for t in texts if "Traceback" in t], texts


def confident_photos(run_id: int, model: str) -> dict[str, Path]:
    """The test photo of each class that `model` of the run gives its class the highest probability, with the
    photo decoded as the app decodes an upload."""
    store = Store()
    result = next(r for r in store.results(run_id) if r.model == model)
    dataset = run_data.run_dataset(store.run(run_id), result)
    pixels = np.stack([resized(open_image(record.path), result.input_size) for record in dataset.test])
    labels = run_data.labels(dataset.test)
    right = np.asarray(load_complete(result).predict(pixels, verbose=0))[np.arange(len(labels)), labels]
    best = {}
    for index in np.argsort(-right):
        best.setdefault(dataset.classes[labels[index]], Path(dataset.test[index].path))
    return best


def model_choice(at):
    return next(box for box in at.selectbox if box.label == "Model")


def wait_until_idle(run_id: int) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT
    while worker.active_run() is not None:
        assert time.monotonic() < deadline, f"the fine-tuning job of run {run_id} did not finish"
        time.sleep(1)


# Compare: fine-tune -------------------------------------------------------------------------------
def test_compare_fine_tune_job_runs_in_background_and_table_shows_lift(finished_run):
    at = app("compare", run_id=finished_run)
    models = at.multiselect(key=f"ft-models-{finished_run}")
    assert models.value == [SMALL_MODEL]  # the most accurate frozen model, preselected
    at.number_input(key="ft-epochs").set_value(2).run()
    at.toggle(key="ft-augment").set_value(True).run()  # rotations, zoom and contrast...
    at.toggle(key="ft-flip").set_value(False).run()  # ...without flips
    next(b for b in at.button if b.label == "Start fine-tuning").click().run()
    no_traceback(at)
    assert worker.active_run() is not None  # the job runs in the background worker
    assert at.get("progress") and at.button(key="ft-cancel").label == "Cancel"  # live progress, with Cancel
    at = app("compare", run_id=finished_run)  # another session (a reload) follows the same job
    assert at.get("progress") and not at.button(key="ft-cancel").disabled
    wait_until_idle(finished_run)

    at = app("compare", run_id=finished_run)
    no_traceback(at)
    assert not errors(at), errors(at)
    result = next(r for r in Store().results(finished_run) if r.model == TUNED)
    assert result.fine_tuning.augment["flip"] is False and result.epochs_planned == 2
    table = at.dataframe[0].value.set_index("model")
    assert TUNED in table.index and {"lift", "lift_ci"} <= set(table.columns)
    lift = float(table.loc[TUNED, "lift"])
    assert lift == pytest.approx(result.fine_tuning.lift * 100, abs=0.05)
    low, high = (float(x) for x in table.loc[TUNED, "lift_ci"].split(" – "))
    assert low <= lift <= high and table.loc[SMALL_MODEL, "lift"] == ""  # blank for the frozen model
    assert any(
        m.value.startswith(f":material/check_circle: **{TUNED}**") and "points (95% CI" in m.value for m in at.markdown
    )
    if result.fine_tuning.kept_frozen:
        assert any("frozen weights are kept" in c.value for c in at.caption)
    assert Store().run(finished_run).status == "done"  # back to its own status


def test_compare_start_is_disabled_while_a_run_is_active(finished_run, monkeypatch):
    busy = Store().run(finished_run)
    monkeypatch.setattr(worker, "active_run", lambda store=None: busy)
    monkeypatch.setattr("ui.finetune.finetuning", lambda run: False)
    at = app("compare", run_id=finished_run)
    start = next(b for b in at.button if b.label == "Start fine-tuning")
    assert start.disabled
    assert any(f"Run #{finished_run} is {busy.status}: one job at a time" in c.value for c in at.caption)


# Compare: export ----------------------------------------------------------------------------------
def test_compare_export_writes_every_format_with_downloads(tuned_run):
    at = app("compare", run_id=tuned_run)
    model_choice(at).set_value(TUNED).run()  # the "Per model" choice
    assert at.multiselect(key=f"export-formats-{tuned_run}-{TUNED}").value == list(FORMATS)  # all by default
    assert any(c.value == "Not exported yet." for c in at.caption)
    at.button(key=f"export-{tuned_run}-{TUNED}").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    folder = paths.exports(tuned_run, TUNED)
    report = at.dataframe[-1].value
    assert list(report["format"]) == [f.label for f in FORMATS.values()]
    assert report["accuracy"].notna().all() and report["latency_ms"].notna().all()
    assert all(flag in ("✓", "⚠ dropped > 1 point") for flag in report["flag"])
    labels = [d.label for d in at.get("download_button")]
    expected = [f.download for f in FORMATS.values()] + ["labels.txt", "model_card.md", "model_card.json"]
    assert set(expected) <= set(labels), labels
    for name in expected:
        assert (folder / name).stat().st_size > 0, name
    assert sorted((folder / "labels.txt").read_text().split()) == ["cats", "dogs"]

    at = app("compare", run_id=tuned_run)  # a new session: the export on disk is shown without running again
    model_choice(at).set_value(TUNED).run()
    assert set(expected) <= {d.label for d in at.get("download_button")}
    assert not any(c.value == "Not exported yet." for c in at.caption)


# Predict ------------------------------------------------------------------------------------------
def test_predict_fine_tuned_model_with_camera_and_exported_file(tuned_run):
    from core.export import export_model

    if not (paths.exports(tuned_run, TUNED) / FORMATS["onnx_float32"].file_name).is_file():
        export_model(tuned_run, TUNED, ["onnx_float32"])  # unless the Compare export test has written every format
    at = app("predict", run_id=tuned_run)
    at.selectbox[1].set_value(TUNED).run()
    choice = at.selectbox[2]
    assert "ONNX float32" in choice.options
    choice.set_value("ONNX float32").run()
    at.toggle[-1].set_value(True).run()  # the camera
    photos = confident_photos(tuned_run, TUNED)
    at.camera_input[0].set_value(("photo.jpg", photos["cats"].read_bytes(), "image/jpeg")).run()
    dog = png_bytes(Image.open(photos["dogs"]).convert("RGB"))  # the same pixels, as an uploaded PNG
    at.file_uploader[0].set_value(("dog.png", dog, "image/png")).run()
    no_traceback(at)
    assert not errors(at), errors(at)
    tops = [m.value for m in at.markdown if m.value.startswith("**")]
    assert tops[0].startswith("**dogs**") and tops[1].startswith("**cats**"), tops  # uploads first, then the photo
    differences = [c.value for c in at.caption if c.value.startswith("ONNX float32: max difference")]
    assert len(differences) == 2 and all("same top class" in d for d in differences), differences
    assert all(float(d.split("max difference ")[1].split(";")[0]) < 1e-3 for d in differences)
    assert any(f"with {TUNED} from run" in c.value for c in at.caption)


# Models without weights ---------------------------------------------------------------------------
def test_models_page_shows_weights_per_input_size():
    at = app("models")
    lines = {m.value.split("**ImageNet weights:** ")[1] for m in at.markdown if "ImageNet weights:" in m.value}
    mobilenet = next(line for line in lines if line.startswith("128 px"))  # MobileNet: 128-224 px, all cached
    assert "128 px cached · 160 px cached · 192 px cached · 224 px cached" in mobilenet
    v2 = next(line for line in lines if line.startswith("96 px"))  # MobileNetV2:0.35: only 224 px is in the cache
    assert "96 px to download (" in v2 and "224 px cached" in v2


def test_train_offers_the_untrained_variant_where_weights_are_missing(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(worker, "start_sweep", lambda source, settings, store=None: started.append(settings) or 10**6)
    at = app("train", dataset=str(colour_dataset(tmp_path / "c", per_class=4)), models=["ResNet50", SMALL_MODEL])
    assert any("ImageNet weights are not cached here for ResNet50:" in w.value for w in at.warning)
    choice = at.multiselect(key="untrained_widget")
    assert choice.options == ["ResNet50"] and choice.value == []  # offered, never imposed
    choice.set_value(["ResNet50"]).run()
    next(b for b in at.button if b.label == "Start sweep").click().run()
    no_traceback(at)
    assert started and started[0].models == ("ResNet50/none", SMALL_MODEL)


def test_train_offers_the_untrained_variant_after_a_weights_failure(tmp_path):
    from core.records import Failed, RunStatus

    store = Store()
    run_id = store.create_run(str(tmp_path), {"models": ["ResNet50"], "holdout": 0.3, "seed": 1})
    store.save_result(run_id, Failed("ResNet50", "WeightsUnavailable: ImageNet weights for ResNet50 are not ..."))
    store.update_run(run_id, status=RunStatus.DONE)
    at = app("train", run_id=run_id, dataset=str(tmp_path), models=["ResNet50"])
    next(b for b in at.button if b.label == "Sweep ResNet50/none (untrained) instead").click().run()
    no_traceback(at)
    assert at.multiselect(key="untrained_widget").value == ["ResNet50"]
    assert not [b for b in at.button if "(untrained) instead" in b.label]
