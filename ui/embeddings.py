"""The Embeddings page's parts: the dataset and model, the background job that computes missing embeddings,
the 2-D map with its selection, nearest neighbours, data health lists and the exports."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import cli_embed, config, embeddings, projection, workspaces
from core.data import Dataset, load_dataset
from core.embeddings import Embeddings
from core.errors import DatasetError
from core.progress import Stage
from core.records import ModelResult
from core.zoo import ModelRef, zoo
from ui.guard import plain

DEFAULT_MODEL = "MobileNetV2:0.35"
THUMBNAIL_PX = 160
GALLERY_COLUMNS = 6
GALLERY_IMAGES = 24  # thumbnails shown for a selection or a health list; the CSV has them all
PALETTE = ("#0F766E", "#F59E0B", "#7C3AED", "#DC2626", "#2563EB", "#DB2777", "#65A30D", "#0891B2", "#9333EA")


def pick_dataset(store, preferred: str | None) -> str | None:
    """The dataset to embed: the session's, or one a run used (newest first)."""
    known = list(dict.fromkeys([*([preferred] if preferred else []), *(run.dataset for run in store.runs())]))
    if not known:
        return None
    return st.selectbox("Dataset", known, format_func=workspaces.display_name)


@st.cache_resource(show_spinner="Checking every image…", max_entries=4)
def load(source: str, holdout: float, seed: int) -> Dataset:
    return load_dataset(source, holdout=holdout, seed=seed)


def pick_model(store, source: str, preferred: list[str]) -> str | None:
    """A zoo model (or any model id typed in); the default: one trained on this dataset, else the session's."""
    trained = [r.model for run in store.runs() if run.dataset == source for r in store.results(run.id)]
    options = list(dict.fromkeys([*trained, *preferred, DEFAULT_MODEL, *zoo()]))
    model = st.selectbox("Model", options, accept_new_options=True, help="Any zoo id, e.g. MobileNet:0.25@160")
    try:
        return ModelRef.parse(model).id
    except ValueError as error:
        st.error(plain(error), icon=":material/error:")
        return None


@st.cache_resource(show_spinner="Reading the embeddings…", max_entries=2)
def _embeddings(source: str, holdout: float, seed: int, model: str, cache_file: str, modified: float) -> Embeddings:
    return embeddings.load_embeddings(load(source, holdout, seed), model)


def ready_embeddings(source: str, dataset: Dataset, model: str, holdout: float, seed: int) -> Embeddings | None:
    """The embeddings when cached; otherwise the background job that computes them (start it, or its progress)."""
    cached = embeddings.cached_path(dataset, model)
    if cached:
        return _embeddings(source, holdout, seed, model, str(cached), cached.stat().st_mtime)
    status = cli_embed.job_status(dataset.fingerprint, model)
    if status and status["active"]:
        _live_job(dataset.fingerprint, model)
        return None
    if status and status.get("error"):
        st.error(f"Computing the embeddings failed: {plain(status['error'])}", icon=":material/error:")
    elif status and status["stage"] != Stage.DONE:
        tail = cli_embed.job_log_tail(dataset.fingerprint, model)
        st.error(f"The embedding job stopped unexpectedly: {plain(tail)}", icon=":material/error:")
    st.info(
        f"{model} has not embedded these {len(dataset.images):,} images yet (a sweep with it would have). They are "
        "computed once, in the background, and cached.",
        icon=":material/info:",
    )
    if st.button("Compute embeddings", type="primary", icon=":material/play_arrow:"):
        cli_embed.start_job(source, model, dataset.fingerprint, holdout, seed)
        st.rerun()
    return None


@st.fragment(run_every=1)
def _live_job(fingerprint: str, model: str) -> None:
    status = cli_embed.job_status(fingerprint, model)
    if not status or not status["active"]:
        st.rerun(scope="app")
    total = status.get("total") or 0
    fraction = status["processed"] / total if total else 0.0
    st.progress(fraction, text=f"{model}: {status['stage']} {status['processed']:,}/{total:,} images")


def head_accuracy(store, source: str, model: str) -> ModelResult | None:
    """The most accurate trained head of `model` on this dataset in any run, to set beside the kNN accuracy."""
    found = [
        r
        for run in store.runs()
        if run.dataset == source
        for r in store.results(run.id)
        if isinstance(r, ModelResult) and r.network == model
    ]
    return max(found, key=lambda r: r.test_accuracy, default=None)


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str) -> bytes:
    from io import BytesIO

    from core.images import open_image

    image = open_image(path)
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def gallery(emb: Embeddings, indices, captions: list[str] | None = None, limit: int = GALLERY_IMAGES) -> None:
    """Thumbnails of images of `emb`, each captioned with its file and class (or `captions`), as plain text."""
    indices = [int(i) for i in indices][:limit]
    columns = st.columns(GALLERY_COLUMNS)
    for place, index in enumerate(indices):
        caption = captions[place] if captions else f"{emb.files[index]} · {emb.class_of(index)}"
        columns[place % GALLERY_COLUMNS].image(thumbnail(str(emb.paths[index])), caption=plain(caption))


@st.cache_data(show_spinner="Drawing the map…", max_entries=8)
def _coordinates(_emb: Embeddings, key: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    sample = projection.map_sample(_emb.labels)
    vectors = _emb.unit[sample]
    return sample, projection.pca(vectors) if method == "PCA" else projection.tsne(vectors)


def map_figure(emb: Embeddings, sample: np.ndarray, xy: np.ndarray) -> go.Figure:
    """The map, one WebGL trace per class; each point's customdata is its image's index."""
    fig = go.Figure()
    for label, name in enumerate(emb.classes):
        rows = np.flatnonzero(emb.labels[sample] == label)
        fig.add_trace(
            go.Scattergl(
                x=xy[rows, 0],
                y=xy[rows, 1],
                mode="markers",
                name=html.escape(name),
                marker=dict(size=6, color=PALETTE[label % len(PALETTE)], opacity=0.75),
                customdata=sample[rows],
                text=[html.escape(emb.files[i]) for i in sample[rows]],
                hovertemplate=f"%{{text}}<br>class {html.escape(name)}<extra></extra>",
            )
        )
    fig.update_layout(
        height=520, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.06), dragmode="select"
    )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def map_section(emb: Embeddings, key: str) -> int | None:
    """The map and, beside it, the clicked point; below, the selection's images. Returns the clicked image."""
    method = st.radio("Map", projection.METHODS, horizontal=True, help="t-SNE takes some seconds the first time.")
    sample, xy = _coordinates(emb, key, method)
    left, right = st.columns([3, 1])
    event = left.plotly_chart(
        map_figure(emb, sample, xy), on_select="rerun", selection_mode=("points", "box", "lasso"), key="emb-map"
    )
    left.caption(
        f"{len(sample):,} of {len(emb):,} images (a sample, every class in proportion). Hover names the file; click "
        "a point, or drag a box or lasso, to see the images here."
    )
    chosen = [int(point["customdata"]) for point in event.selection.points if "customdata" in point]
    with right:
        if not chosen:
            st.caption("Click a point to see its image.")
            return None
        st.image(
            thumbnail(str(emb.paths[chosen[0]])), caption=plain(f"{emb.files[chosen[0]]} · {emb.class_of(chosen[0])}")
        )
    if len(chosen) > 1:
        st.markdown(f"**Selection**: {len(chosen):,} images")
        gallery(emb, chosen)
    return chosen[0]


def query_section(emb: Embeddings, model: str, clicked: int | None) -> None:
    """The k most similar images to an uploaded image, or to the image clicked on the map."""
    k = st.slider("Neighbours", 1, 30, 10)
    upload = st.file_uploader(
        "Find images similar to…", help="Or click a point on the map.", max_upload_size=config.upload_megabytes()
    )
    if upload:
        with tempfile.TemporaryDirectory() as folder:  # decoded exactly as the dataset's images are
            path = Path(folder) / "query"
            path.write_bytes(upload.getvalue())
            try:
                query = embeddings.embed_files(model, [path])[0]
            except ValueError as problem:
                st.error(f"{plain(upload.name)}: {plain(getattr(problem, 'reason', problem))}", icon=":material/error:")
                return
        st.caption(f"Most similar to {plain(upload.name)}:")
    elif clicked is not None:
        query = emb.vectors[clicked]
        st.caption(f"Most similar to {plain(emb.files[clicked])} (itself first):")
    else:
        st.caption("Upload an image, or click a point on the map, to see its nearest neighbours.")
        return
    found = embeddings.neighbours_table(emb, query, k)
    captions = [f"{s:.3f} · {f} · {c}" for s, f, c in zip(found.similarity, found.file, found["class"], strict=True)]
    gallery(emb, found["index"], captions)


@st.cache_data(show_spinner="Finding every image's neighbours…", max_entries=4)
def health(_emb: Embeddings, key: str) -> dict[str, pd.DataFrame | float]:
    graph = embeddings.neighbour_graph(_emb)
    return {
        "knn": embeddings.knn_accuracy(_emb, graph),
        "duplicates": embeddings.near_duplicates(_emb, graph),
        "mislabelled": embeddings.likely_mislabelled(_emb, graph),
        "outliers": embeddings.outliers(_emb, graph),
    }


HEALTH_AUTO_IMAGES = 20_000  # above this the exact neighbour graph of every image takes minutes: on request only


def health_if_ready(emb: Embeddings, key: str) -> dict | None:
    """The health lists and kNN accuracy: at once for up to `HEALTH_AUTO_IMAGES` images, else once asked for."""
    if len(emb) <= HEALTH_AUTO_IMAGES or st.session_state.get(f"health-{key}"):
        return health(emb, key)
    return None


def ask_for_health(emb: Embeddings, key: str) -> None:
    st.caption(
        f"{len(emb):,} images: the exact neighbours of every image take minutes (12 s at 20,000 vectors of 1,024 on "
        "two idle cores, so about 2.5 min at 70,000; 18 min measured on two busy ones). Search and the map do not "
        "need them."
    )
    if st.button("Compute data health and kNN accuracy", icon=":material/play_arrow:"):
        st.session_state[f"health-{key}"] = True
        st.rerun()


HEALTH_LISTS = {
    "duplicates": (
        "Near-duplicates",
        f"Pairs of different files (not byte-identical) at cosine similarity ≥ {embeddings.DUPLICATE_SIMILARITY}",
    ),
    "mislabelled": (
        "Likely mislabelled",
        f"Images whose {embeddings.K} nearest neighbours mostly (≥ {embeddings.MISLABELLED_SHARE:.0%}) carry one "
        "other label",
    ),
    "outliers": ("Outliers", "Images far from all their neighbours (mean similarity below Tukey's lower fence)"),
}


def health_section(emb: Embeddings, found: dict, key: str) -> None:
    for name, (title, rule) in HEALTH_LISTS.items():
        frame = found[name]
        with st.expander(f"{title}: {len(frame):,}", expanded=bool(len(frame))):
            st.caption(f"{rule}.")
            if len(frame):
                shown = frame.drop(columns=[c for c in frame if "index" in c])
                st.dataframe(shown, hide_index=True, height=min(220, 35 * (len(frame) + 1) + 3))
                indices = frame["index"] if name != "duplicates" else np.ravel(frame[["index", "similar index"]])
                gallery(emb, indices, limit=GALLERY_COLUMNS * 2)
                st.download_button(
                    "Download CSV", frame.to_csv(index=False), f"{key}-{name}.csv", "text/csv", key=f"csv-{name}"
                )


def export_section(emb: Embeddings, key: str) -> None:
    st.caption(
        f"{len(emb):,} rows (file, split, class, vector of {emb.dim} float32) in the dataset's order. The .npy is "
        "the (images, dimensions) matrix; the CSV names its rows."
    )
    cols = st.columns(3)
    for column, suffix in zip(cols, embeddings.EXPORTS, strict=False):
        column.download_button(
            f"Download {suffix}",
            lambda suffix=suffix: embeddings.export_bytes(emb, suffix),
            f"{key}{suffix}",
            icon=":material/download:",
            on_click="ignore",
        )
    rows = embeddings.table(emb).drop(columns="vector").rename_axis("row")
    cols[2].download_button("Download rows (.csv)", rows.to_csv(), f"{key}.csv", "text/csv", on_click="ignore")


def load_or_error(source: str, holdout: float, seed: int) -> Dataset | None:
    try:
        return load(source, holdout, seed)
    except (DatasetError, ValueError) as error:
        st.error(plain(error), icon=":material/error:")
        return None
