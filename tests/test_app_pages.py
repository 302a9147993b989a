"""AppTest for every page through the entry file: real datasets, a real sweep, real predictions."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from images import class_folders, truncated_jpeg
from PIL import Image
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
ENTRY = str(REPO / "streamlit_app.py")
TIMEOUT = 180
SMALL_MODEL = "MobileNet:0.25@128"  # real ImageNet weights from ../shared, tiny and fast


def app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def colour_image(channel: int, seed: int) -> Image.Image:
    """Dark noise with one strong channel: 0 for the "red" class, 2 for "blue"."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, (48, 48, 3), dtype=np.uint8)
    pixels[..., channel] = rng.integers(170, 256, (48, 48), dtype=np.uint8)
    return Image.fromarray(pixels)


def colour_dataset(root: Path, per_class: int = 20) -> Path:
    """Two easy classes: reddish and bluish noise images."""
    for name, channel in (("red", 0), ("blue", 2)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour_image(channel, seed=channel * 1000 + i).save(root / name / f"{i:02d}.png")
    return root


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> int:
    from core.sweep import SweepSettings, run_sweep

    root = colour_dataset(tmp_path_factory.mktemp("colours") / "colours")
    outcome = run_sweep(root, SweepSettings(models=[SMALL_MODEL], epochs=20))
    assert outcome.results[0].status == "ok", outcome.results[0]
    return outcome.run_id


# Data ----------------------------------------------------------------------------------------------
def test_data_sample_dataset_counts(cats_and_dogs):
    at = app("data")
    next(b for b in at.button if b.label == "Load sample").click().run()
    assert not at.exception, at.exception
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Train images"] == "2,000" and metrics["Validation images"] == metrics["Test images"] == "500"
    counts = at.dataframe[0].value
    assert counts.set_index("class").to_dict() == {
        "train": {"cats": 1000, "dogs": 1000},
        "validation": {"cats": 250, "dogs": 250},
        "test": {"cats": 250, "dogs": 250},
    }
    assert any("split in half" in c.value for c in at.caption)  # the layout says where the test set came from
    assert len(at.get("image")) == 12  # 6 sample thumbnails per class
    assert at.session_state["dataset"].endswith("cats_and_dogs_filtered")


def test_data_zip_with_one_class_is_an_error(tmp_path):
    class_folders(tmp_path / "one", {"only": 4})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in (tmp_path / "one").rglob("*.jpg"):
            archive.write(path, path.relative_to(tmp_path).as_posix())
    at = app("data")
    at.radio[0].set_value("Upload a .zip").run()
    at.file_uploader[0].set_value(("one.zip", buffer.getvalue(), "application/zip")).run()
    assert not at.exception, at.exception
    assert any("at least 2 classes" in e for e in errors(at)), errors(at)


def test_data_folder_upload_reports_corrupt_image(tmp_path):
    class_folders(tmp_path, {"a": 3, "b": 3})
    truncated_jpeg(tmp_path / "a" / "broken.jpg")
    files = [
        (f"set/{p.relative_to(tmp_path).as_posix()}", p.read_bytes(), "image/jpeg")
        for p in sorted(tmp_path.rglob("*.jpg"))
    ]
    at = app("data")
    at.radio[0].set_value("Upload a folder").run()
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    skipped = at.dataframe[1].value
    assert list(skipped["file"]) == ["a/broken.jpg"] and "truncated" in skipped["reason"][0]
    assert any("skipped" in w.value for w in at.warning)


def test_data_server_path_missing_is_an_error(tmp_path):
    at = app("data")
    at.radio[0].set_value("Server path").run()
    at.text_input[0].set_value(str(tmp_path / "nope")).run()
    next(b for b in at.button if b.label == "Load path").click().run()
    assert not at.exception, at.exception
    assert any("does not exist" in e for e in errors(at)), errors(at)


# Models --------------------------------------------------------------------------------------------
def test_models_default_selection_shows_parameters():
    at = app("models")
    assert at.sidebar.multiselect(key="models_widget").value == ["MobileNetV2:0.35", "MobileNet:0.25"]
    params = [m.value for m in at.metric if m.label == "Parameters"]
    assert params == ["410,208", "218,544"]
    depths = [int(m.value) for m in at.metric if m.label.startswith("Depth")]
    assert all(d > 10 for d in depths)
    assert at.session_state["models"] == ["MobileNetV2:0.35", "MobileNet:0.25"]


def test_models_measure_speed_on_this_host(tb_home):
    at = app("models")
    next(b for b in at.button if b.key == "speed-MobileNet:0.25").click().run()
    assert not at.exception, at.exception
    speed = [m.value for m in at.markdown if "on this host:" in m.value]
    assert len(speed) == 2 and all("ms/image (IQR " in line and "threads" in line for line in speed)  # TF, then ONNX
    assert "TensorFlow" in speed[0] and "ONNX Runtime" in speed[1]
    assert "speed-MobileNet:0.25" not in [b.key for b in app("models").button]  # measured once, then cached


def test_models_light_filter():
    at = app("models")
    at.sidebar.toggle[0].set_value(True).run()
    assert not at.exception
    options = at.sidebar.multiselect(key="models_widget").options
    assert "ResNet50" not in options and "MobileNetV2:0.35" in options and "MobileNetV3Small:min" in options


def test_hosted_mode_hides_server_paths_and_large_models(monkeypatch):
    monkeypatch.setenv("TRANSFERBENCH_HOSTED", "1")
    assert "Server path" not in app("data").radio[0].options
    options = app("models").sidebar.multiselect(key="models_widget").options
    assert "ResNet50" not in options and "MobileNetV2:0.35" in options


# Train ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def screened_run(cats_and_dogs) -> int:
    """A real screened sweep on 300 cats and dogs: the untrained model is screened out."""
    from core.sweep import SweepSettings, run_sweep

    models = [SMALL_MODEL, "MobileNet:0.5@128/none"]
    outcome = run_sweep(cats_and_dogs, SweepSettings(models=models, max_images=300, screen=0.5, screen_keep=1))
    assert outcome.recommendation.screening.screened_out == models[1:], outcome.recommendation.screening
    return outcome.run_id


def test_train_without_dataset_disables_start(tb_home):
    at = app("train")  # a fresh data directory: no earlier run to take the dataset from
    start = next(b for b in at.button if b.label == "Start sweep")
    assert start.disabled


def test_train_bad_settings_are_an_error_not_a_run(tmp_path):
    at = app("train", dataset=str(tmp_path), models=["NoSuchNet"])
    next(b for b in at.button if b.label == "Start sweep").click().run()
    assert not at.exception, at.exception
    assert any("Unknown model id" in e for e in errors(at)), errors(at)


def test_train_shows_a_finished_run(finished_run):
    at = app("train", run_id=finished_run)
    assert f"Run #{finished_run}: done" in [s.value for s in at.subheader]
    assert at.get("progress")[0].value == 100
    assert any(SMALL_MODEL in m.value and "test accuracy" in m.value and "95% CI" in m.value for m in at.markdown)


# Compare -------------------------------------------------------------------------------------------
def test_compare_shows_recommendation(finished_run):
    at = app("compare", run_id=finished_run)
    assert at.selectbox[0].value == finished_run
    success = [s.value for s in at.success]
    assert success and f"Recommended: {SMALL_MODEL}" in success[0], success
    table = at.dataframe[0].value
    assert list(table["model"]) == [SMALL_MODEL] and table["test_accuracy"].iloc[0] > 80
    low, high = (float(x.strip(" %")) for x in table["test_ci"].iloc[0].split("–"))
    assert low < high and low <= table["test_accuracy"].iloc[0] <= high  # the interval around the score (100% here)
    assert {"balanced_accuracy", "macro_f1", "val_accuracy"} <= set(table.columns)
    assert len(at.get("plotly_chart")) == 3  # size, latency, and the confusion matrix whose cells open their images
    assert [d.label for d in at.get("download_button")] == ["Download CSV", "Download JSON"]


def test_compare_and_train_show_a_screened_run(screened_run):
    at = app("compare", run_id=screened_run)
    info = [i.value for i in at.info]
    assert any("Screened" in text and "MobileNet:0.5@128/none (" in text for text in info), info
    table = at.dataframe[0].value
    assert list(table["model"]) == [SMALL_MODEL] and table["subset_accuracy"].iloc[0] > 50
    assert {"latency_ms_tf", "latency_ms_onnx", "runtime"} <= set(table.columns) and table["runtime"].iloc[0] == "onnx"
    at = app("train", run_id=screened_run)
    assert any("MobileNet:0.5@128/none: screened out at" in m.value for m in at.markdown)


# Predict -------------------------------------------------------------------------------------------
def test_predict_probabilities_sum_to_one_and_bad_files_are_named(finished_run, tmp_path):
    at = app("predict", run_id=finished_run)
    assert at.selectbox[1].value == SMALL_MODEL
    files = [
        ("red.png", png_bytes(colour_image(0, seed=7)), "image/png"),
        ("notes.txt", b"not an image", "text/plain"),
        ("blue.png", png_bytes(colour_image(2, seed=8)), "image/png"),
        ("broken.jpg", truncated_jpeg(tmp_path / "broken.jpg").read_bytes(), "image/jpeg"),
    ]
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    messages = errors(at)
    assert len(messages) == 2 and "notes.txt" in messages[0] and "broken.jpg" in messages[1], messages
    tops = [m.value for m in at.markdown if m.value.startswith("**")]
    assert tops[0].startswith("**red**") and tops[1].startswith("**blue**"), tops
    from core.predict import load_classifier

    classifier = load_classifier(finished_run, SMALL_MODEL)
    probabilities = classifier.predict([colour_image(0, 9), colour_image(2, 10)])
    assert probabilities.shape == (2, 2) and abs(probabilities.sum(axis=1) - 1).max() < 1e-5


def test_predict_imagenet_labels(finished_run):
    at = app("predict", run_id=finished_run)
    at.toggle[0].set_value(True).run()
    at.file_uploader[0].set_value(("red.png", png_bytes(colour_image(0, seed=7)), "image/png")).run()
    assert not at.exception, at.exception
    labels = at.dataframe[0].value
    assert len(labels) == 5 and labels["probability"].between(0, 1).all()
