"""Mistakes you can see: the Compare page's drill-down (a confusion-matrix cell's test images, the most confident
mistakes) and Grad-CAM heat maps, there and on the Predict page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from PIL import Image

from core import gradcam, mistakes
from core.images import open_image
from core.records import ModelResult, Run
from ui.charts import confusion_figure
from ui.guard import plain

CELL_IMAGES = 18
MISTAKES_SHOWN = 12


@st.cache_resource(show_spinner="Loading the complete model…", max_entries=2)
def complete_model(run_id: int, model: str, _result: ModelResult):
    from core.complete import load_complete

    return load_complete(_result)


@st.cache_data(show_spinner="Scoring the test images…", max_entries=4)
def _predictions(run_id: int, model: str, _run: Run, _result: ModelResult) -> mistakes.Predictions:
    return mistakes.predict_test_images(_run, _result)


def gradcam_reason(run_id: int, result: ModelResult) -> str | None:
    """Why Grad-CAM cannot explain this model (no spatial feature map), or None when it can."""
    try:
        gradcam.feature_map_layer(complete_model(run_id, result.model, result).get_layer("base"))
    except gradcam.GradCamUnavailable as reason:
        return str(reason)
    return None


def with_heatmap(run_id: int, result: ModelResult, image: Image.Image, class_index: int) -> Image.Image:
    """`image` with its Grad-CAM for `class_index` laid over it."""
    heat, _ = gradcam.heatmap(complete_model(run_id, result.model, result), image, class_index)
    return gradcam.overlay(image, heat)


def gradcam_toggle(run_id: int, result: ModelResult, key: str) -> bool:
    """A toggle for Grad-CAM heat maps, off with the reason for a model that has no spatial feature map."""
    on = st.toggle(
        "Grad-CAM: show where the model looked",
        key=key,
        help="Red: the regions that raised the predicted class's score most (Grad-CAM on the base's last "
        "convolutional feature map).",
    )
    reason = on and gradcam_reason(run_id, result)
    if reason:
        st.caption(f":material/block: No Grad-CAM for {plain(result.model)}: {plain(reason)}")
    return bool(on and not reason)


def gradcam_image(where, run_id: int, result: ModelResult, image: Image.Image, class_index: int) -> None:
    """On Predict: the image with its heat map for the predicted class."""
    where.image(with_heatmap(run_id, result, image, class_index), caption="Grad-CAM of the top class")


def mistakes_panel(run: Run, result: ModelResult) -> None:
    """Click a confusion-matrix cell to see its test images; the most confident mistakes, with Grad-CAM."""
    with st.container(border=True):
        st.subheader("Mistakes you can see")
        try:
            scored = _predictions(run.id, result.model, run, result)
        except (ValueError, OSError) as error:
            st.caption(f":material/block: {plain(error)}")
            return
        left, right = st.columns([2, 3])
        event = left.plotly_chart(
            confusion_figure(result.confusion, result.classes),
            on_select="rerun",
            selection_mode="points",
            key=f"cells-{run.id}-{result.model}",
        )
        clicked = [point["customdata"] for point in event.selection.points if "customdata" in point]
        cells = [(t, p) for t in range(len(result.classes)) for p in range(len(result.classes)) if t != p]
        cells = [cell for cell in cells if result.confusion[cell[0]][cell[1]]] or [(0, 0)]
        chosen = tuple(int(v) for v in clicked[0]) if clicked else None
        chosen = chosen or right.selectbox(
            "Cell (or click one)",
            cells,
            format_func=lambda c: f"true {result.classes[c[0]]} → predicted {result.classes[c[1]]}",
            key=f"cell-{run.id}-{result.model}",
        )
        frame = mistakes.cell(scored, *chosen)
        right.markdown(
            f"**{len(frame)}** test image(s) of class {plain(result.classes[chosen[0]])} predicted as "
            f"{plain(result.classes[chosen[1]])}" + (f" (the first {CELL_IMAGES})" if len(frame) > CELL_IMAGES else "")
        )
        with right:
            _gallery(scored, frame.head(CELL_IMAGES), columns=4)
        st.markdown("**Most confident mistakes**")
        worst = mistakes.confident_mistakes(scored, MISTAKES_SHOWN)
        if worst.empty:
            st.caption("No mistakes on the test images.")
            return
        heat = gradcam_toggle(run.id, result, key=f"cam-{run.id}-{result.model}")
        _gallery(scored, worst, (run.id, result) if heat else None)


def _gallery(
    scored: mistakes.Predictions, frame, heat: tuple[int, ModelResult] | None = None, columns: int = 6
) -> None:
    """Thumbnails captioned with the file's name, its true class, the predicted one and its probability."""
    places = st.columns(columns)
    for place, row in enumerate(frame.itertuples(index=False)):
        image = open_image(scored.paths[row.index])
        predicted = scored.classes.index(row[2])
        shown = with_heatmap(heat[0], heat[1], image, predicted) if heat else image
        shown.thumbnail((240, 240))
        caption = f"{Path(row.file).name}: {row[1]} → {row[2]} {row.probability:.0%}"
        places[place % columns].image(shown, caption=plain(caption))
