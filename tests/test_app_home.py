"""The app skeleton: the entry file routes, every page renders, and the Home page works in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import APP_TITLE, goto, screenshot, wait_for_app
from streamlit.testing.v1 import AppTest

pytest_plugins = ["e2e"]

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "streamlit_app.py"
PAGES = {
    "home.py": "Transfer Bench",
    "data.py": "Data",
    "models.py": "Models",
    "train.py": "Train",
    "compare.py": "Compare",
    "predict.py": "Predict",
    "embeddings.py": "Embeddings",
    "storage.py": "Storage",
}
TIMEOUT = 120  # pages may import TensorFlow on their first run


def test_entry_file_shows_home():
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == [APP_TITLE]


@pytest.mark.parametrize("page_file", list(PAGES))
def test_page_runs(page_file):
    # AppTest renders multipage apps from the entry file; a page is reached with switch_page() + run().
    # (from_file("app_pages/x.py") would make the page the main script and break st.page_link paths.)
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT).run()
    at.switch_page(f"app_pages/{page_file}").run()
    assert not at.exception, at.exception
    assert PAGES[page_file] in [t.value for t in at.title]


def test_pages_directory_matches_navigation():
    shared = ["shared.py"]  # the one page a share link opens (tests/test_app_workspaces.py)
    assert sorted(p.name for p in (REPO / "app_pages").glob("*.py")) == sorted([*PAGES, *shared])


@pytest.mark.e2e
def test_home_in_browser(app_server, page):
    print(
        f"\nstreamlit startup (process start -> health ok): {app_server.startup_seconds:.2f} s; "
        f"first paint (first load -> title visible): {app_server.first_paint_seconds:.2f} s"
    )
    goto(page, app_server)
    assert page.get_by_role("heading", name=APP_TITLE).is_visible()
    nav = page.get_by_test_id("stSidebarNav")
    assert nav.is_visible()
    for name in ("Home", "Data", "Models", "Train", "Compare", "Predict", "Embeddings", "Storage"):
        assert nav.get_by_role("link", name=name).is_visible(), name
    screenshot(page, "home")

    nav.get_by_role("link", name="Data").click()
    page.get_by_role("heading", name="Data").wait_for(state="visible")
    wait_for_app(page)
    assert page.url.rstrip("/").endswith("/data")
    page.get_by_role("button", name="Load sample").wait_for(state="visible")  # the page body renders after its title
    screenshot(page, "data_empty")
