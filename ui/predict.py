"""Predict's side-by-side check: the same images through an exported file of the model, in its own runtime,
next to the in-app probabilities, with the largest difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from core import paths
from core.export_formats import FORMATS, FormatReport
from core.images import resized
from ui.export import saved_export

IN_APP = "In-app model only"


def pick_export(run_id: int, model: str, where=st) -> tuple[FormatReport, str] | None:
    """A select box over the exports of `model` on disk; the chosen one and its path, or None."""
    folder = paths.exports(run_id, model)
    entries = {entry.label: entry for entry in saved_export(folder) if not entry.error}
    if not entries:
        where.caption(f"{model} has no export yet: export it on the Compare page to check a file here.")
        return None
    label = where.selectbox(
        "Also run on an exported file",
        [IN_APP, *entries],
        help="Loads the exported file in its own runtime and shows its probabilities beside the in-app ones.",
    )
    return None if label == IN_APP else (entries[label], str(folder / entries[label].file))


@st.cache_resource(show_spinner="Loading the exported model…", max_entries=4)
def _predictor(format_name: str, path: str, modified: float):
    return FORMATS[format_name].load(path)


def exported_probabilities(export: tuple[FormatReport, str], images: list[Image.Image], size: int) -> np.ndarray:
    """The exported file's probabilities for `images` (resized as the app does), shape (n, classes)."""
    entry, path = export
    batch = np.stack([resized(image, size) for image in images])
    try:
        return np.asarray(_predictor(entry.format, path, Path(path).stat().st_mtime)(batch), np.float32)
    except Exception as error:  # any runtime's own error: named, with the file, for the page to show
        raise ValueError(f"its export {entry.file} could not run in {entry.runtime}: {error}") from error


def comparison(where, classes: list[str], in_app: np.ndarray, exported: np.ndarray, label: str) -> None:
    """One image's probabilities in the app and in the exported file, and their largest difference."""
    table = pd.DataFrame({"class": classes, "in app": in_app, label: exported, "difference": exported - in_app})
    where.dataframe(
        table.sort_values("in app", ascending=False),
        hide_index=True,
        column_config={
            "in app": st.column_config.NumberColumn(format="%.5f"),
            label: st.column_config.NumberColumn(format="%.5f"),
            "difference": st.column_config.NumberColumn(format="%+.1e"),
        },
    )
    same = int(in_app.argmax()) == int(exported.argmax())
    where.caption(
        f"{label}: max difference {np.abs(exported - in_app).max():.1e}; "
        + ("same top class." if same else "**a different top class**.")
    )
