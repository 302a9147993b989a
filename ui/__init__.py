"""Streamlit-side code shared by the pages: session state, the run picker, status lines, tables and charts.

The pages in `app_pages/` are layout; what two pages share, or what is more than layout, lives here.
"""
