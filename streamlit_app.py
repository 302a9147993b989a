"""Transfer Bench: entry point. It only sets up the page and routes to the files in `pages/`."""

import streamlit as st

st.set_page_config(page_title="Transfer Bench", page_icon=":material/model_training:", layout="wide")

page = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/folder_open:"),
        st.Page("pages/models.py", title="Models", icon=":material/view_list:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/leaderboard:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
        st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("pages/storage.py", title="Storage", icon=":material/storage:"),
    ]
)
page.run()
