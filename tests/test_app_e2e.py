"""The whole journey in a real browser: sample data, two pretrained models, a background sweep with
live progress that survives page switches and reloads, the comparison, fine-tuning the best model, its export
in every format with each download, and a prediction checked against the exported file."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path

import pytest
from e2e import VIEWPORT, goto, screenshot, wait_for_app

pytest_plugins = ["e2e"]

MODELS = ["MobileNetV2:0.35", "MobileNet:0.25"]
SWEEP_TIMEOUT_MS = 300_000
FINETUNE_TIMEOUT_MS = 900_000
EXPORT_TIMEOUT_MS = 600_000


class PeakMemory(threading.Thread):
    """Samples the RSS of a process plus all its descendants (the sweep worker) until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self.stopped = pid, 0.0, threading.Event()

    def run(self):
        import psutil

        root = psutil.Process(self.pid)
        while not self.stopped.wait(0.25):
            total = 0
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)


def tall_screenshot(page, name: str) -> Path:
    """Streamlit scrolls inside its main container, so a full-page shot needs a viewport as tall as the page."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMainBlockContainer], [data-testid=stMain]')]"
        ".map(e => e.scrollHeight), window.innerHeight)"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 80, 5000)})
    page.wait_for_timeout(600)  # charts re-layout to the new size
    path = screenshot(page, name)
    page.set_viewport_size(VIEWPORT)
    return path


def nav(page, name: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name, exact=True).first.wait_for(state="visible", timeout=60_000)


@pytest.mark.e2e
def test_sweep_journey(app_server, page, cats_and_dogs):
    print(
        f"\nfirst paint (first load -> title visible): {app_server.first_paint_seconds:.2f} s; "
        f"startup {app_server.startup_seconds:.2f} s"
    )
    goto(page, app_server)

    # Data: the sample is one click away.
    nav(page, "Data")
    wait_for_app(page)
    page.get_by_role("button", name="Load sample").click()
    page.get_by_text("Train images").wait_for(timeout=120_000)
    wait_for_app(page)
    assert page.get_by_test_id("stMetricValue").filter(has_text="2,000").count() == 1
    page.get_by_test_id("stImage").nth(11).wait_for(timeout=30_000)  # 6 sample thumbnails per class
    tall_screenshot(page, "data")

    # Models: the two small defaults are selected.
    nav(page, "Models")
    page.get_by_text("Depth (weighted layers)").first.wait_for(timeout=120_000)
    wait_for_app(page)
    for model in MODELS:
        assert page.get_by_role("heading", name=model).is_visible()
    tall_screenshot(page, "models")

    # Train: start, watch progress, leave and come back, reload, wait for the end.
    nav(page, "Train")
    wait_for_app(page)
    memory = PeakMemory(app_server.process.pid)
    memory.start()
    started = time.perf_counter()
    page.get_by_role("button", name="Start sweep").click()
    running = page.get_by_role("heading", name="Run #").filter(has_text="running")
    running.wait_for(timeout=60_000)
    page.get_by_text("images").filter(has_text="/").first.wait_for(timeout=120_000)  # "n/3000 images"
    page.get_by_text(re.compile(r"\d+:\d\d elapsed")).first.wait_for(timeout=30_000)  # with the time taken so far
    screenshot(page, "train_running")

    nav(page, "Compare")
    nav(page, "Train")
    running.wait_for(timeout=30_000)
    page.get_by_role("progressbar").first.wait_for(state="visible", timeout=30_000)

    goto_started = time.perf_counter()
    page.reload(wait_until="domcontentloaded")
    page.get_by_role("heading", name="Run #").filter(has_text="running").wait_for(timeout=60_000)
    print(f"reload -> running sweep shown again: {time.perf_counter() - goto_started:.2f} s")

    page.get_by_role("heading", name="Run #").filter(has_text="done").wait_for(timeout=SWEEP_TIMEOUT_MS)
    sweep_seconds = time.perf_counter() - started
    memory.stopped.set()
    memory.join()
    print(f"two-model sweep: {sweep_seconds:.1f} s; peak RSS of server + worker: {memory.peak_mb:.0f} MB")
    wait_for_app(page)
    assert page.get_by_text(re.compile(r"\d% \(95% CI [\d.]+%-[\d.]+%\) test accuracy")).count() == 2
    tall_screenshot(page, "train_done")

    # Compare: the scatter plots, the recommendation and the table.
    page.get_by_role("link", name="See the comparison").click()
    page.get_by_test_id("stAlertContentSuccess").filter(has_text="Recommended:").wait_for(timeout=60_000)
    wait_for_app(page)
    assert page.get_by_test_id("stPlotlyChart").count() >= 3
    assert page.get_by_test_id("stDataFrame").count() >= 2
    tall_screenshot(page, "compare")
    tuned = fine_tune_and_export(page)

    # Predict: a real cat photo from the validation set, with the fine-tuned model and its exported ONNX file.
    nav(page, "Predict")
    wait_for_app(page)
    choose(page, "Model", tuned)
    choose(page, "Also run on an exported file", "ONNX float32")
    cat = sorted((cats_and_dogs / "validation" / "cats").glob("*.jpg"))[0]
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(cat))
    page.get_by_text("image(s) classified").wait_for(timeout=120_000)
    wait_for_app(page)
    assert page.get_by_text("cats (", exact=False).first.is_visible()
    assert page.get_by_text(re.compile(r"ONNX float32: max difference [\d.e+-]+; same top class")).is_visible()
    tall_screenshot(page, "predict")


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the select box labelled `label`, and wait for the rerun."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    box.fill(option)  # filters the list down to the option
    page.get_by_role("option", name=option, exact=True).click()
    wait_for_app(page)


def fine_tune_and_export(page) -> str:
    """Compare: fine-tune the preselected best model for one epoch, watch it, then export it in every format and
    download each file. Returns the fine-tuned model's name."""
    from core.store import Store

    page.get_by_text("Settings", exact=True).click()
    epochs = page.get_by_label("Max epochs (early stopping)")
    epochs.fill("1")
    epochs.press("Enter")
    wait_for_app(page)
    started = time.perf_counter()
    page.get_by_role("button", name="Start fine-tuning").click()
    page.get_by_text(re.compile(r"fine-tuned: fine-tuning epoch 1/1")).first.wait_for(timeout=120_000)
    page.get_by_role("button", name="Cancel").wait_for(timeout=10_000)
    screenshot(page, "compare_finetuning")
    page.get_by_text(re.compile(r"% → [\d.]+% test accuracy")).first.wait_for(timeout=FINETUNE_TIMEOUT_MS)
    wait_for_app(page)
    run = Store().runs(limit=1)[0]
    tuned = next(r for r in Store().results(run.id) if getattr(r, "fine_tuning", None))
    print(
        f"fine-tuning {tuned.fine_tuning.source}, 1 epoch: {time.perf_counter() - started:.1f} s in the app, "
        f"{tuned.fine_tuning.seconds_per_epoch:.1f} s per epoch; lift {tuned.fine_tuning.lift * 100:+.1f} points"
    )
    assert page.get_by_test_id("stPlotlyChart").count() >= 3
    tall_screenshot(page, "compare_finetuned")

    choose(page, "Model", tuned.model)
    page.get_by_role("heading", name=f"Export {tuned.model}").wait_for(timeout=30_000)
    started = time.perf_counter()
    page.get_by_role("button", name="Export", exact=True).click()
    page.get_by_text(re.compile(r"^Exported .* in \d+:\d\d")).wait_for(timeout=EXPORT_TIMEOUT_MS)
    wait_for_app(page)
    print(f"export of {tuned.model} in every format: {time.perf_counter() - started:.1f} s")
    files = re.compile(r"\.(keras|zip|tflite|onnx|txt|md|json)$")  # the export's, not the run's CSV and JSON
    buttons = page.get_by_test_id("stDownloadButton").filter(has_text=files)
    names = [text.strip() for text in buttons.all_inner_texts()]
    assert {"model.keras", "saved_model.zip", "model_int8.tflite", "model_int8.onnx", "labels.txt"} <= {
        name.split()[-1] for name in names
    }, names
    for index in range(buttons.count()):
        with page.expect_download(timeout=120_000) as download:
            buttons.nth(index).locator("button").click()
        path = download.value.path()
        assert path.stat().st_size > 0, download.value.suggested_filename
        print(f"  downloaded {download.value.suggested_filename}: {path.stat().st_size / 1e6:.2f} MB")
    tall_screenshot(page, "compare_export")
    return tuned.model
