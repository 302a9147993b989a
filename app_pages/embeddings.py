"""Embeddings: a model's vector of every image: a 2-D map, nearest neighbours, data health, kNN accuracy, export."""

import streamlit as st

from core import workspaces
from core.paths import file_stem
from ui import state
from ui.embeddings import (
    ask_for_health,
    export_section,
    head_accuracy,
    health_if_ready,
    health_section,
    load_or_error,
    map_section,
    pick_dataset,
    pick_model,
    query_section,
    ready_embeddings,
)
from ui.guard import page_store, plain

st.title("Embeddings")
st.caption(
    "A frozen base turns every image into a vector. Similar images lie close together: search them, map them, "
    "and find duplicates, likely mislabelled images and outliers."
)
store = page_store()
left, right = st.columns(2)
with left:
    source = pick_dataset(store, state.dataset())
if source is None:
    st.info("No dataset yet: load one on the Data page.", icon=":material/info:")
    st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
    st.stop()
holdout, seed = state.holdout(), state.seed()
dataset = load_or_error(source, holdout, seed)
with right:
    model = pick_model(store, source, state.models())
if dataset is None or model is None:
    st.stop()
emb = ready_embeddings(source, dataset, model, holdout, seed)
if emb is None:
    st.stop()

key = f"{dataset.fingerprint[:12]}-{file_stem(model)}"
found = health_if_ready(emb, key)
head = head_accuracy(store, source, model)
cols = st.columns(4)
cols[0].metric("Images", f"{len(emb):,}")
cols[1].metric("Dimensions", emb.dim)
cols[2].metric(
    "kNN accuracy",
    f"{found['knn']:.1%}" if found else "not computed",
    help="Leave-one-out: each image takes the similarity-weighted vote of its 10 nearest other images. "
    "A quick measure of how well this model's embedding space separates your classes, with no training.",
)
cols[3].metric(
    "Head's test accuracy",
    f"{head.test_accuracy:.1%}" if head else "not trained",
    help="The best trained head of this model on this dataset (Compare page), on the test images.",
)
st.caption(f"Dataset: {plain(workspaces.display_name(source))} · vectors from {plain(emb.source.name)}")

tabs = st.tabs(["Map", "Neighbours", "Data health", "Export"])
with tabs[0]:
    clicked = map_section(emb, key)
with tabs[1]:
    query_section(emb, model, clicked)
with tabs[2]:
    health_section(emb, found, key) if found else ask_for_health(emb, key)
with tabs[3]:
    export_section(emb, key)
