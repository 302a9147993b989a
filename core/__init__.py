"""Transfer Bench engine: data prep, feature extraction, head training, evaluation and storage.

Nothing in this package imports Streamlit: the app's pages and the command line (`python -m core`) are
both thin clients of it.
"""
