"""Hosted mode in a real browser: two visitors with their own workspaces share one server and its queue, a
third opens a read-only share link, and deep links work as the first request to a fresh server.

A uploads a zip and sweeps it; B loads the sample and starts a sweep that waits behind A's (its place shown),
then cancels it. Neither sees the other's datasets, runs or models on any page, nor a Cancel for the other's
run; no page and no download shows the server's data folder or its hash-prefixed folder names. C opens A's
share link (Compare of that run, read-only, nothing else) until A revokes it. (AppTest checks of the same
rules: test_app_workspaces.py.)"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e import SCREENSHOTS, VIEWPORT, screenshot, start_server, stop_server, wait_for_app, wait_until_healthy
from images import class_folders, truncated_jpeg
from PIL import Image
from playwright.sync_api import expect

pytest_plugins = ["e2e"]
pytestmark = pytest.mark.e2e

HOSTED = {"TRANSFERBENCH_HOSTED": "1", "TRANSFERBENCH_WORKERS": "1"}
NAVIGATION = ("Home", "Data", "Models", "Train", "Compare", "Predict", "Embeddings", "Storage")
DEEP_LINKS = {"data": "Data", "models": "Models", "train": "Train", "compare": "Compare", "predict": "Predict"}
TOURED = ("Data", "Train", "Compare", "Predict", "Embeddings", "Storage")
A_ZIP = "alpha_shapes.zip"  # A's dataset: 2 x 20 noise JPEGs in classes B would never have
A_CLASSES = ("alphacircles", "alphasquares")
B_DATASET = "cats_and_dogs_filtered"
MODELS = ("MobileNetV2:0.35", "MobileNet:0.25")  # the defaults
DIGEST_NAME = re.compile(r"[0-9a-f]{12}-|-[0-9a-f]{12}\b|folder-[0-9a-f]{12}")  # how uploads are stored
SWEEP_TIMEOUT_MS = 180_000
LONG_MS = 120_000


# The servers -----------------------------------------------------------------------------------------
def hosted_env(home: Path) -> dict[str, str]:
    return {**HOSTED, "TRANSFERBENCH_HOME": str(home)}


@contextlib.contextmanager
def serving(*envs: dict[str, str], name: str):
    """Fresh servers, one per environment, started together (their start-up overlaps) and stopped with any
    worker they started."""
    servers = [start_server(env, f"{name}-{index}") for index, env in enumerate(envs)]
    try:
        for server in servers:
            wait_until_healthy(server)
        yield servers
    finally:
        workers = [worker for server in servers for worker in _descendants(server.process.pid)]
        for server in servers:
            server.process.terminate()  # all at once: each takes about a second to shut down
        for server in servers:
            stop_server(server)
        for worker in workers:  # a sweep left running by a failed test
            with contextlib.suppress(Exception):
                worker.kill()


def _descendants(pid: int) -> list:
    import psutil

    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []


class TreeMemory(threading.Thread):
    """Peak resident memory of a process and every descendant (the sweep workers), sampled 4 times a second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stopped = pid, threading.Event()
        self.peak_mb = self.server_peak_mb = 0.0  # with the workers; the server process alone

    def run(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            while not self.stopped.wait(0.25):
                total = server = root.memory_info().rss
                for process in root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
                self.peak_mb = max(self.peak_mb, total / 2**20)
                self.server_peak_mb = max(self.server_peak_mb, server / 2**20)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


# A visitor: one browser context (its own cookies and Streamlit session) ---------------------------------
@dataclass
class Visitor:
    name: str
    page: object
    url: str
    forbidden: list[str] = field(default_factory=list)  # what this visitor must never read
    forbidden_patterns: list[re.Pattern] = field(default_factory=list)

    def open(self, path: str = "") -> None:
        self.page.goto(f"{self.url}/{path.lstrip('/')}", wait_until="domcontentloaded", timeout=LONG_MS)
        wait_for_app(self.page, LONG_MS / 1000)

    def nav(self, name: str, settle: bool = True) -> None:
        self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
        self.page.get_by_role("heading", name=name, exact=True).first.wait_for(timeout=LONG_MS)
        if settle:
            wait_for_app(self.page, LONG_MS / 1000)

    def text(self) -> str:
        """The page's text, the values of its inputs (a select box shows its choice as one), and every table's
        cells (st.dataframe draws them on a canvas: they are read through its "Download as CSV")."""
        settle(self.page)
        shown = self.page.evaluate(
            "() => [document.body.innerText, ...[...document.querySelectorAll('input')].map(i => i.value)].join('\\n')"
        )
        tables = self.page.get_by_test_id("stDataFrame")  # also those in a tab not shown
        for index in range(tables.count()):
            button = tables.nth(index).locator('button[aria-label="Download as CSV"]')  # in its toolbar
            button.wait_for(state="attached", timeout=30_000)
            with self.page.expect_download(timeout=30_000) as download:
                button.dispatch_event("click")  # the toolbar shows on hover only
            shown += "\n" + Path(download.value.path()).read_text(encoding="utf-8-sig")
        return shown

    def check(self, where: str) -> str:
        """The page's text, after asserting that it holds nothing this visitor must not see."""
        text = self.text()
        for item in self.forbidden:
            assert item not in text, f"{self.name} on {where} sees {item!r}:\n{text}"
        for pattern in self.forbidden_patterns:
            assert not pattern.search(text), f"{self.name} on {where} sees {pattern.pattern!r}:\n{text}"
        return text


def settle(page) -> None:
    """`wait_for_app`, then until every element is drawn: a new browser context loads the code of each kind of
    element (tables, charts, downloads) when first shown, showing a placeholder meanwhile, after the run ended."""
    wait_for_app(page, LONG_MS / 1000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stSkeleton], [data-stale=true]')", timeout=LONG_MS
    )


def visitor(browser, server, name: str) -> Visitor:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.add_init_script("delete window.showSaveFilePicker")  # a table's CSV then downloads as a file would
    return Visitor(name, context.new_page(), server.url)


def shapes_zip(root: Path) -> Path:
    """A's upload: one folder per class, 20 distinct noise JPEGs each, plus a truncated file and a duplicate
    (the Data page lists both by their names in the dataset), zipped."""
    folders = class_folders(root / "shapes", dict.fromkeys(A_CLASSES, 20))
    truncated_jpeg(folders / A_CLASSES[0] / "broken.jpg")
    shutil.copy(folders / A_CLASSES[1] / "img_000.jpg", folders / A_CLASSES[1] / "img_000_again.jpg")
    path = root / A_ZIP
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folders.rglob("*.jpg")):
            archive.write(file, file.relative_to(folders).as_posix())
    return path


def server_names(home: Path) -> list[str]:
    """The folder and file names the server keeps visitors' data under (hash-prefixed, or the workspace ids)."""
    names = []
    for workspace in (home / "workspaces").glob("*"):
        names.append(workspace.name)
        for kind in ("uploads", "datasets"):
            names += [item.name for item in (workspace / kind).glob("*") if DIGEST_NAME.search(item.name)]
    return names


def side_by_side(left: Path, right: Path, name: str) -> Path:
    """Two screenshots in one image, top-aligned, with a gutter between them."""
    one, two = Image.open(left), Image.open(right)
    gutter = 24
    canvas = Image.new("RGB", (one.width + gutter + two.width, max(one.height, two.height)), (40, 40, 40))
    canvas.paste(one, (0, 0))
    canvas.paste(two, (one.width + gutter, 0))
    path = SCREENSHOTS / name
    canvas.save(path)
    return path


def tall_screenshot(page, name: str) -> Path:
    """Streamlit scrolls inside its main container: a whole-page shot needs a viewport as tall as the page."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 80, 5000)})
    page.wait_for_timeout(600)  # charts re-layout to the new size
    path = screenshot(page, name)
    page.set_viewport_size(VIEWPORT)
    return path


def run_id_on(page, status: str) -> int:
    """The id of the run the Train page shows with `status` (`Run #3: running`)."""
    heading = page.get_by_role("heading", name="Run #").filter(has_text=status).first
    heading.wait_for(timeout=LONG_MS)
    return int(re.search(r"Run #(\d+)", heading.inner_text()).group(1))


def set_number(page, label: str, value: int) -> None:
    field_ = page.get_by_label(label)
    field_.fill(str(value))
    field_.press("Enter")
    wait_for_app(page)


# The tests -------------------------------------------------------------------------------------------
def test_deep_links_on_a_fresh_server(browser, tmp_path):
    """Each of these pages as the first request to a freshly started hosted server gets the app's navigation
    and its wide layout (not Streamlit's lower-case file-based page list). One server per page, all started
    and opened at once."""
    started = time.perf_counter()
    envs = [hosted_env(tmp_path / f"home-{path}") for path in DEEP_LINKS]
    with serving(*envs, name="streamlit-deeplink") as servers:
        contexts = [browser.new_context(viewport=VIEWPORT) for _ in servers]
        try:
            pages = [context.new_page() for context in contexts]
            for page, server, path in zip(pages, servers, DEEP_LINKS, strict=True):
                page.goto(f"{server.url}/{path}", wait_until="commit", timeout=LONG_MS)
            for page, (path, title) in zip(pages, DEEP_LINKS.items(), strict=True):
                page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=LONG_MS)
                nav = page.get_by_test_id("stSidebarNav")
                links = [text.split()[-1] for text in nav.get_by_role("link").all_inner_texts()]  # after the icon
                assert links == list(NAVIGATION), (path, links)
                layout = page.get_by_test_id("stAppViewContainer").get_attribute("data-layout")
                width = page.get_by_test_id("stMainBlockContainer").bounding_box()["width"]
                assert layout == "wide" and width > 900, (path, layout, width)  # centred is at most 736 px
                page.wait_for_url(re.compile(r"[?&]ws="), timeout=30_000)  # a workspace on this first request too
                assert page.url.split("?")[0].endswith(f"/{path}"), page.url
                if path == "compare":
                    wait_for_app(page, LONG_MS / 1000)
                    screenshot(page, "hosted_deeplink_compare")
        finally:
            for context in contexts:
                context.close()
    print(f"\ndeep links on {len(DEEP_LINKS)} fresh hosted servers: {time.perf_counter() - started:.1f} s")


def test_two_visitors_a_queue_and_a_share_link(browser, tmp_path):
    started = time.perf_counter()
    home = tmp_path / "hosted-home"
    keras_home = os.environ["KERAS_HOME"]
    upload = shapes_zip(tmp_path / "upload")
    with serving(hosted_env(home), name="streamlit-hosted") as (server,):
        memory = TreeMemory(server.process.pid)
        memory.start()
        a, b = visitor(browser, server, "A"), visitor(browser, server, "B")
        for who in (a, b):
            who.forbidden += [str(home), keras_home]
            who.forbidden_patterns.append(DIGEST_NAME)

        # A uploads a zip; B loads the sample meanwhile (the server does both at once).
        a.open()
        b.open()
        assert "ws=" in a.page.url and "ws=" in b.page.url
        assert a.page.url != b.page.url  # two workspaces
        a.nav("Data")
        a.page.get_by_text("Upload a .zip", exact=True).click()
        a.page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
        b.nav("Data")
        b.page.get_by_role("button", name="Load sample").click()
        a.page.get_by_role("heading", name="Duplicates").wait_for(timeout=LONG_MS)  # the last table of the report
        wait_for_app(a.page)
        expect(a.page.get_by_test_id("stDataFrame")).to_have_count(3)  # counts, skipped files, duplicates
        text = a.check("Data")
        assert "Using alpha_shapes" in text, text
        assert f"{A_CLASSES[0]}/broken.jpg,truncated image" in text, text  # the skipped file, by its name only

        # A sweeps the two default models (ImageNet weights cached at their 224 px), at most 3 epochs each.
        a.nav("Train")
        assert f"Models: {', '.join(MODELS)}" in a.text()
        set_number(a.page, "Max epochs (early stopping)", 3)

        b.page.get_by_text("Train images").wait_for(timeout=LONG_MS)
        wait_for_app(b.page, LONG_MS / 1000)
        assert f"Using {B_DATASET}" in b.check("Data")
        b.nav("Train")
        assert B_DATASET in b.text()

        names = server_names(home)
        assert len([n for n in names if DIGEST_NAME.search(n)]) >= 1, names  # the upload's stored names
        for who in (a, b):
            who.forbidden += names

        # A starts; B starts right after and waits in the queue, its place shown.
        a.page.get_by_role("button", name="Start sweep").click()
        run_a = run_id_on(a.page, "")
        b.page.get_by_role("button", name="Start sweep").click()
        b_started = time.perf_counter()
        queued = b.page.get_by_text("Queued: 1 run ahead of yours (number 2 of 2 in the queue)")
        queued.wait_for(timeout=30_000)
        run_b = run_id_on(b.page, "queued")
        assert run_b != run_a
        a.forbidden += [B_DATASET]
        a.forbidden_patterns += [re.compile(rf"#{run_b}\b")]
        b.forbidden += ["alpha_shapes", *A_CLASSES]
        b.forbidden_patterns += [re.compile(rf"#{run_a}\b")]
        a.page.get_by_text(re.compile(r"\d+:\d\d elapsed")).first.wait_for(timeout=LONG_MS)  # A's is running
        # The Train page redraws a live run every second: these assertions retry until the redraw settles.
        expect(b.page.get_by_role("button", name="Cancel")).to_have_count(1)  # its own queued run, not A's
        shots = [screenshot(a.page, "hosted_a_running"), screenshot(b.page, "hosted_b_queued")]
        side_by_side(*shots, "hosted_two_visitors.png")
        b.check("Train (queued)")

        # B cancels its own queued run: no Cancel is left for B, though A's run still runs.
        b.page.get_by_role("button", name="Cancel").click()
        b.page.get_by_role("heading", name=f"Run #{run_b}").filter(has_text="cancelled").wait_for(timeout=30_000)
        wait_for_app(b.page)
        assert b.page.get_by_role("button", name="Cancel").count() == 0
        assert b.page.get_by_role("button", name="Start sweep").is_enabled()
        expect(a.page.get_by_role("heading", name=f"Run #{run_a}").filter(has_text="running")).to_have_count(1)
        cancelled = time.perf_counter() - b_started
        b.check("Train (cancelled)")
        expect(a.page.get_by_role("button", name="Cancel")).to_have_count(1)  # A's own
        expect(a.page.get_by_role("button", name="Start sweep")).to_be_disabled()
        a.check("Train (running)")

        a.page.get_by_role("heading", name=f"Run #{run_a}").filter(has_text="done").wait_for(timeout=SWEEP_TIMEOUT_MS)
        queue_wait = time.perf_counter() - b_started
        wait_for_app(a.page)
        a.check("Train (done)")

        # Every page of each visitor, once A's run has results: nothing of the other, nothing of the server.
        for who in (a, b):
            for name in TOURED:
                who.nav(name)
                text = who.check(name)
                if name == "Compare":
                    downloads(who, server_names(home), expected=2 if who is a else 0)
                if who is a and name in ("Compare", "Predict"):
                    assert f"#{run_a}" in text, (name, text)
                if who is b and name in ("Compare", "Predict"):
                    assert "No " in text, (name, text)  # no results, no trained models: A's are not offered
                if name == "Storage":
                    assert f"run #{run_a if who is a else run_b}" in text, text  # its own run, in the table
                if who is b:
                    assert b.page.get_by_role("button", name="Cancel").count() == 0, name
            if who is a:
                screenshot(a.page, "hosted_a_storage")

        # A shares the run; C, a stranger, sees its comparison read-only and nothing else.
        a.nav("Compare")
        a.page.get_by_role("button", name="Create a share link").click()
        link = a.page.get_by_test_id("stCode").filter(has_text="?share=").first
        link.wait_for(timeout=30_000)
        wait_for_app(a.page)
        url = link.inner_text().strip()
        assert re.fullmatch(rf"{re.escape(server.url)}/\?share=[A-Za-z0-9_-]{{22}}", url), url
        c = visitor(browser, server, "C")
        c.forbidden += [str(home), keras_home, *names, B_DATASET]
        c.forbidden_patterns += [DIGEST_NAME, re.compile(rf"#{run_b}\b")]
        c.page.goto(url, wait_until="domcontentloaded", timeout=LONG_MS)
        c.page.get_by_role("heading", name="Shared result").wait_for(timeout=LONG_MS)
        c.page.get_by_test_id("stAlertContentSuccess").filter(has_text="Recommended:").wait_for(timeout=LONG_MS)
        wait_for_app(c.page)
        text = c.check("the share link")
        assert f"run #{run_a}" in text and "alpha_shapes" in text, text
        assert c.page.get_by_role("heading", name="Per model").is_visible()  # the comparison, in full
        for panel in ("^Fine-tune$", "^Export ", "^Mistakes you can see$", "^Share$"):  # what changes a run, or shares
            assert c.page.get_by_role("heading", name=re.compile(panel)).count() == 0, panel
        assert c.page.get_by_role("button", name=re.compile("fine-tun|Export|share link|Revoke", re.I)).count() == 0
        assert c.page.get_by_role("combobox", name="Run").count() == 0  # this run only: no run to pick
        assert c.page.get_by_test_id("stSidebarNav").count() == 0  # no way to the workspace's other pages
        for name in NAVIGATION[1:]:
            assert c.page.get_by_role("link", name=name, exact=True).count() == 0, name
        assert "ws=" not in c.page.url
        downloads(c, names, expected=2)  # the run's CSV and JSON, as on Compare
        tall_screenshot(c.page, "hosted_shared")

        a.page.get_by_role("button", name="Revoke").click()
        a.page.get_by_role("button", name="Revoke").wait_for(state="detached", timeout=30_000)
        c.page.reload(wait_until="domcontentloaded")
        c.page.get_by_text("This share link is not valid").wait_for(timeout=LONG_MS)
        assert "Recommended" not in c.check("a revoked link")

        # A's workspace is in its URL: a reload (a new session) returns to it.
        workspace = re.search(r"[?&]ws=([\w-]+)", a.page.url).group(1)
        a.page.reload(wait_until="domcontentloaded")
        a.page.get_by_role("heading", name="Compare").wait_for(timeout=LONG_MS)
        a.page.get_by_test_id("stAlertContentSuccess").filter(has_text="Recommended:").wait_for(timeout=LONG_MS)
        wait_for_app(a.page)
        assert f"#{run_a}" in a.check("Compare after a reload")
        assert re.search(r"[?&]ws=([\w-]+)", a.page.url).group(1) == workspace, a.page.url
        memory.stop()
    print(
        f"\nqueue wait (B's Start -> A's run done): {queue_wait:.1f} s (B cancelled, with no Cancel left while A's "
        f"run ran, {cancelled:.1f} s after its Start); peak RSS with two visitors: server and its "
        f"workers {memory.peak_mb:.0f} MB, server alone {memory.server_peak_mb:.0f} MB; "
        f"whole test {time.perf_counter() - started:.1f} s"
    )


def downloads(who: Visitor, names: list[str], expected: int) -> None:
    """Compare's CSV and JSON downloads (when the page has a run) hold no server path or stored name."""
    buttons = who.page.get_by_test_id("stDownloadButton").filter(has_text=re.compile("Download (CSV|JSON)"))
    expect(buttons).to_have_count(expected)
    for index in range(expected):
        with who.page.expect_download(timeout=60_000) as download:
            buttons.nth(index).locator("button").click()
        content = Path(download.value.path()).read_text()
        label = download.value.suggested_filename
        print(f"{who.name} downloaded {label}: {len(content):,} characters")
        for item in [*who.forbidden, *names]:
            assert item not in content, f"{who.name}'s {label} holds {item!r}"
        for pattern in who.forbidden_patterns:
            assert not pattern.search(content), f"{who.name}'s {label} matches {pattern.pattern!r}"
