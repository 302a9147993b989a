"""Data: load a folder-per-class image dataset, check it, and keep it for the Train page."""

import streamlit as st
from PIL import ImageOps

from core import archives, config, workspaces
from core.archives import SAMPLE_DATASETS, sample_dataset
from core.data import load_dataset
from core.errors import DatasetError, ImageProblem
from core.images import open_image
from ui import state, workspace
from ui.charts import class_counts_figure
from ui.guard import plain

HOSTED = config.hosted()
PER_CLASS = 6

st.title("Data")
st.caption("A dataset is one folder per class (`cats/`, `dogs/`, …), optionally inside `train/` and `validation/`.")


@st.cache_data(show_spinner="Checking every image…", max_entries=8)
def load(source: str, holdout: float, seed: int):
    return load_dataset(source, holdout=holdout, seed=seed, max_images=config.HOSTED_MAX_IMAGES if HOSTED else None)


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(path: str):
    return ImageOps.fit(open_image(path), (180, 180))  # square crops make an even grid


sources = ["Sample dataset", "Upload a .zip", "Upload a folder"] + ([] if HOSTED else ["Server path"])
how = st.radio("Source", sources, horizontal=True, label_visibility="collapsed")
upload_mb = config.upload_megabytes()
try:
    if how == "Sample dataset":
        name = st.selectbox("Sample", list(SAMPLE_DATASETS), format_func=lambda n: SAMPLE_DATASETS[n].description)
        if st.button("Load sample", type="primary", icon=":material/download:"):
            with st.spinner("Fetching the sample (once)…"):
                state.set_dataset(sample_dataset(name))
    elif how == "Upload a .zip":
        zipped = st.file_uploader("Zip of class folders", type=["zip"], max_upload_size=upload_mb)
        if zipped is not None:
            state.set_dataset(archives.save_zip(zipped.name, zipped.getvalue(), workspace.owner()))
    elif how == "Upload a folder":
        files = st.file_uploader(
            "Folder of class folders", accept_multiple_files="directory", max_upload_size=upload_mb
        )
        st.caption(f"Up to {config.limit(config.FOLDER_FILES):,} files: for a larger folder, upload it as a .zip.")
        if files:  # files the browser listed that never reached the server have no content
            arrived = [(f.name, f.getvalue()) for f in files if hasattr(f, "getvalue")]
            state.set_dataset(archives.save_folder(arrived, listed=len(files), workspace=workspace.owner()))
    else:
        path = st.text_input("Folder or .zip on the server", placeholder="/data/my-images")
        if st.button("Load path", type="primary") and path.strip():
            state.set_dataset(path.strip())
    source = state.dataset()
    dataset = load(source, state.holdout(), state.seed()) if source else None
except (DatasetError, ValueError, OSError) as error:
    st.error(plain(error), icon=":material/error:")
    state.set_dataset(None)
    dataset = None

if dataset is None:
    st.info("Pick a source above. The cats-vs-dogs sample is one click away: **Load sample**.", icon=":material/info:")
    st.stop()

report = dataset.report
name = workspaces.display_name(dataset.root)
where = "" if HOSTED or name == str(dataset.root) else f": {plain(dataset.root)}"  # hosted: no server paths
st.success(f"Using **{plain(name)}**{where}", icon=":material/check_circle:")
cols = st.columns(6)
cols[0].metric("Classes", len(dataset.classes))
cols[1].metric("Train images", f"{len(dataset.train):,}", help="the head learns from these")
cols[2].metric("Validation images", f"{len(dataset.validation):,}", help="choose each head's epoch and rank models")
cols[3].metric("Test images", f"{len(dataset.test):,}", help="give the reported score: no choice is made on them")
cols[4].metric("Imbalance (largest/smallest)", f"{report.imbalance:.2f}x")
cols[5].metric("Skipped files", len(report.skipped))
st.caption(f"Layout: {report.layout}.")
for warning in report.warnings:
    st.warning(plain(warning), icon=":material/warning:")

left, right = st.columns([3, 2])
with left:
    st.subheader("Images per class")
    st.plotly_chart(class_counts_figure(report.counts), key="counts")
with right:
    st.subheader("Counts")
    st.dataframe({"class": report.classes, **{s: list(c.values()) for s, c in report.counts.items()}}, hide_index=True)
    if report.skipped:
        st.subheader("Skipped files")
        st.dataframe([{"file": s.path, "reason": s.reason} for s in report.skipped], hide_index=True)
    if report.duplicates:
        st.subheader("Duplicates")
        st.dataframe(
            [{"files": ", ".join(d.paths), "in both splits (leakage)": d.leakage} for d in report.duplicates],
            hide_index=True,
        )

st.subheader("Samples")
for label, name in enumerate(dataset.classes):
    records = [r for r in dataset.train if r.label == label][:PER_CLASS]
    st.markdown(f"**{plain(name)}**")
    for column, record in zip(st.columns(PER_CLASS), records, strict=False):
        try:
            column.image(thumbnail(str(record.path)), caption=record.path.name)
        except ImageProblem as problem:
            column.error(f"{plain(record.path.name)}: {plain(problem.reason)}")

st.page_link("app_pages/models.py", label="Next: choose the models", icon=":material/arrow_forward:")
