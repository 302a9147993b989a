"""AppTest for the Embeddings page (map, neighbours, data health, export, the background job) and the drill-down
and Grad-CAM on the Compare and Predict pages, on the real cats-and-dogs photos with planted faults."""

from __future__ import annotations

import time

from planted import GRADCAM_CAT, MISLABELLED, MODEL
from test_app_pages import app, colour_dataset, errors

pytest_plugins = ["planted"]  # the session fixtures


def test_embeddings_page_health_neighbours_and_export(planted, planted_embeddings):
    at = app("embeddings", dataset=str(planted), models=[MODEL])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "3,001" and metrics["Dimensions"] == "256"
    assert float(metrics["kNN accuracy"].rstrip("%")) > 90
    assert len(at.get("plotly_chart")) == 1  # the map
    titles = [e.label for e in at.expander]
    assert any(t.startswith("Near-duplicates: ") for t in titles) and any(t.startswith("Outliers: ") for t in titles)
    frames = [frame.value for frame in at.dataframe]
    mislabelled = next(f for f in frames if "neighbours' class" in f.columns)
    assert MISLABELLED in set(mislabelled.file)
    labels = [b.label for b in at.get("download_button")]
    assert {"Download .parquet", "Download .npy", "Download rows (.csv)"} <= set(labels)
    at.file_uploader[0].set_value(("query.jpg", (planted / MISLABELLED).read_bytes(), "image/jpeg")).run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any("Most similar to query.jpg" in c for c in captions), captions


def test_embeddings_page_computes_missing_embeddings_in_the_background(planted_embeddings, tmp_path):
    from core.cli_embed import job_status
    from core.data import load_dataset

    root = colour_dataset(tmp_path / "colours", per_class=12)
    at = app("embeddings", dataset=str(root), models=[MODEL])
    assert any("has not embedded" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Compute embeddings").click().run()
    fingerprint = load_dataset(root).fingerprint
    deadline = time.monotonic() + 150
    while not ((status := job_status(fingerprint, MODEL)) and not status["active"]) and time.monotonic() < deadline:
        time.sleep(1)  # until the job has ended (its file may not be readable at the first look)
    assert status and status["stage"] == "done" and status["processed"] == 24, status
    at = app("embeddings", dataset=str(root), models=[MODEL])
    assert not errors(at) and {m.label: m.value for m in at.metric}["Images"] == "24"


def test_compare_drill_down_and_predict_gradcam(planted, planted_run):
    at = app("compare", run_id=planted_run)
    assert "Mistakes you can see" in [s.value for s in at.subheader]
    cell = at.selectbox(key=f"cell-{planted_run}-{MODEL}")
    assert cell.options == ["true cats → predicted dogs", "true dogs → predicted cats"]  # the mistakes' cells
    assert any("test image(s) of class" in m.value for m in at.markdown)
    shown = len(at.get("image"))
    assert shown > 12  # the cell's images and the 12 most confident mistakes
    at.toggle(key=f"cam-{planted_run}-{MODEL}").set_value(True).run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == shown  # the same images, the mistakes now with their heat maps
    at = app("predict", run_id=planted_run)
    at.file_uploader[0].set_value(("kitten.jpg", (planted / GRADCAM_CAT).read_bytes(), "image/jpeg")).run()
    assert len(at.get("image")) == 1
    at.toggle(key="predict-cam").set_value(True).run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 2  # the photo and its heat map
