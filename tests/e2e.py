"""Browser-test helpers and fixtures: a live Streamlit server, headless chromium, screenshots.

Not a test module. Pull the fixtures into an e2e test module with, at its top:

    pytest_plugins = ["e2e"]

and then use `app_server`, `browser` and `page` as fixtures, plus the helpers
`wait_for_app(page)`, `goto(page, app_server, path)` and `screenshot(page, name)`; `start_server(env)`,
`wait_until_healthy` and `stop_server` run a server of your own (another environment, e.g. hosted mode):

    from e2e import goto, screenshot, wait_for_app

`tests/conftest.py` has already pointed KERAS_HOME and TRANSFERBENCH_HOME at temporary
directories when this module loads; the server subprocess inherits that environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = os.environ.get("TRANSFERBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APP_TITLE = "Transfer Bench"
HEALTH_TIMEOUT = 60.0
VIEWPORT = {"width": 1400, "height": 900}


@dataclass
class AppServer:
    """A running `streamlit run streamlit_app.py`."""

    url: str
    process: subprocess.Popen
    log_path: Path
    startup_seconds: float = 0.0  # process start -> /_stcore/health says "ok"
    first_paint_seconds: float | None = None  # first page load -> app title visible
    extra: dict = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_mb(self) -> float:
        """Resident memory of the server process, in MB (needs psutil)."""
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss / 2**20


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().decode().strip() == "ok"
    except OSError:
        return False


def wait_for_app(page, timeout: float = 60.0) -> None:
    """Wait until Streamlit is connected and has finished the current script run.

    Streamlit 1.67 marks the root `[data-testid=stApp]` with `data-test-connection-state`
    ("CONNECTED") and `data-test-script-state` ("initial", "running", "notRunning", ...);
    while a run is in progress the toolbar also shows `[data-testid=stStatusWidget]`.
    """
    ms = timeout * 1000
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=ms)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=ms)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=ms)
    page.wait_for_timeout(150)  # let the last deltas paint

    # After a click, the rerun may not have started yet: first wait for something of the new page
    # (e.g. `page.get_by_role("heading", name="Data").wait_for()`), then call wait_for_app(page).


def goto(page, server: AppServer, path: str = "", timeout: float = 60.0) -> None:
    """Open `server.url/path` and wait for the script run to finish."""
    page.goto(f"{server.url}/{path.lstrip('/')}", wait_until="domcontentloaded", timeout=timeout * 1000)
    wait_for_app(page, timeout)


def screenshot(page, name: str) -> Path:
    """Save a full-page PNG to test-artifacts/screenshots/<name>.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (name if name.endswith(".png") else f"{name}.png")
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}; run `bash scripts/test.sh` (it installs Debian chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    yield page
    context.close()


def start_server(env: dict[str, str] | None = None, log_name: str = "streamlit-server") -> AppServer:
    """Start `streamlit run streamlit_app.py` on a free port, with this process's environment plus `env`
    (e.g. `{"TRANSFERBENCH_HOSTED": "1", "TRANSFERBENCH_HOME": ...}`); returns at once, before it is healthy.
    Its output goes to test-artifacts/logs/<log_name>.log. Wait with `wait_until_healthy`, end with `stop_server`."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    (ARTIFACTS / "logs").mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "logs" / f"{log_name}.log"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
    return AppServer(url=url, process=process, log_path=log_path, extra={"launched": started})


def wait_until_healthy(server: AppServer, timeout: float = HEALTH_TIMEOUT) -> None:
    """Wait until /_stcore/health says "ok" (sets `startup_seconds`); fail the test if the server exits or is slow."""
    started = server.extra["launched"]
    while not _health_ok(server.url):
        if server.process.poll() is not None:
            pytest.fail(f"streamlit exited with code {server.process.returncode}:\n{server.output()}")
        if time.perf_counter() - started > timeout:
            pytest.fail(f"streamlit not healthy after {timeout:.0f} s at {server.url}:\n{server.output()}")
        time.sleep(0.1)
    server.startup_seconds = time.perf_counter() - started


def stop_server(server: AppServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def app_server(browser):
    server = start_server()
    try:
        wait_until_healthy(server)

        # First paint: the first page load (this also triggers the first script run) until the title shows.
        context = browser.new_context(viewport=VIEWPORT)
        try:
            first = context.new_page()
            loading = time.perf_counter()
            first.goto(server.url, wait_until="commit", timeout=60_000)
            first.get_by_role("heading", name=APP_TITLE).first.wait_for(state="visible", timeout=60_000)
            server.first_paint_seconds = time.perf_counter() - loading
        finally:
            context.close()

        yield server
    finally:
        stop_server(server)
