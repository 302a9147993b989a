"""Transfer Bench: entry point. It only sets up the page and routes to the files in `app_pages/`.

A read-only share link (`?share=<token>`) sees one page, that run's comparison; everyone else enters their
workspace (hosted mode) and sees every page."""

import streamlit as st

from ui import workspace

st.set_page_config(page_title="Transfer Bench", page_icon=":material/model_training:", layout="wide")

if workspace.shared_token():
    page = st.navigation([st.Page("app_pages/shared.py", title="Shared result", icon=":material/share:")])
else:
    workspace.enter()
    page = st.navigation(
        [
            st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
            st.Page("app_pages/data.py", title="Data", icon=":material/folder_open:"),
            st.Page("app_pages/models.py", title="Models", icon=":material/view_list:"),
            st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
            st.Page("app_pages/compare.py", title="Compare", icon=":material/leaderboard:"),
            st.Page("app_pages/predict.py", title="Predict", icon=":material/image_search:"),
            st.Page("app_pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
            st.Page("app_pages/storage.py", title="Storage", icon=":material/storage:"),
        ]
    )
page.run()
