"""Home: what Transfer Bench is for, and where to start."""

import streamlit as st

from core import config, workspaces

st.title("Transfer Bench")
st.markdown(
    "**Which pre-trained Keras model should I use for my images?**  \n"
    "Load a folder-per-class dataset, sweep models with a frozen base and a new head,  \n"
    "then compare accuracy against size and latency and get a recommendation."
)

st.page_link("app_pages/data.py", label="Data: load or pick a dataset", icon=":material/folder_open:")
st.page_link("app_pages/models.py", label="Models: choose the candidates", icon=":material/view_list:")
st.page_link("app_pages/train.py", label="Train: run the sweep", icon=":material/model_training:")
st.page_link("app_pages/compare.py", label="Compare: accuracy vs size and latency", icon=":material/leaderboard:")
st.page_link(
    "app_pages/predict.py", label="Predict: classify new images with a trained model", icon=":material/image_search:"
)

if config.hosted():
    st.info(
        "Your datasets, runs and models are private to this workspace, which lives in this page's address: "
        "bookmark it to come back. Workspaces unused for "
        f"{workspaces.idle_seconds() / 3600:g} hours are deleted. To show a result to someone, create a share "
        "link on the Compare page.",
        icon=":material/lock:",
    )
