"""AppTest of hosted mode's workspaces: each visitor sees only their own runs and files, a share link shows one
run read-only until revoked, and no page shows a server path. (The browser journey is test_app_hosted.py.)"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from images import class_folders
from results import model_result
from streamlit.testing.v1 import AppTest

from core import archives, paths, workspaces
from core.records import RunStatus
from core.store import Store

REPO = Path(__file__).resolve().parents[1]
ENTRY = str(REPO / "streamlit_app.py")
TIMEOUT = 120
PAGES = ("data", "models", "train", "compare", "predict", "embeddings", "storage")


@pytest.fixture
def hosted(tb_home, monkeypatch):
    monkeypatch.setenv("TRANSFERBENCH_HOSTED", "1")
    return tb_home


def visitor(workspace: str | None = None, share: str | None = None, page: str | None = None) -> AppTest:
    """A new browser session, opened on a link with `?ws=` or `?share=` (or neither)."""
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    for name, value in (("ws", workspace), ("share", share)):
        if value:
            at.query_params[name] = value
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def text(at: AppTest) -> str:
    """Everything a page shows as text (markdown, captions, alerts, titles, select boxes and tables)."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "success", "error", "warning", "title")
        for e in at.get(kind)
    ]
    parts += [str(option) for box in at.selectbox for option in box.options]  # as shown (values may be paths)
    parts += [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(parts)


def finished_run(workspace: str, dataset: Path) -> int:
    """A finished sweep of `workspace` on `dataset`, with one trained model."""
    store = Store(workspace=workspace)
    run_id = store.create_run(str(dataset), {"models": ["MobileNet:0.25@128"]})
    store.save_result(run_id, model_result())
    store.update_run(run_id, status=RunStatus.DONE)
    return run_id


def test_each_visitor_sees_only_their_own_workspace(hosted, tmp_path):
    a = visitor()
    mine = a.query_params["ws"]
    assert workspaces.visit(Store(), mine)  # a new workspace, kept in the URL
    b = visitor()
    theirs = b.query_params["ws"]
    assert theirs != mine
    class_folders(tmp_path / "pets", {"cats": 4, "dogs": 4})
    upload = archives.save_zip("pets.zip", _zip(tmp_path / "pets"), workspace=mine)
    run_id = finished_run(mine, archives.as_folder(upload))
    assert workspaces.owner(upload) == mine and str(paths.workspace_dir(mine)) in str(upload)

    for page in PAGES:
        a.switch_page(f"app_pages/{page}.py").run()
        b.switch_page(f"app_pages/{page}.py").run()
        assert not a.exception and not b.exception, (page, a.exception, b.exception)
        for at in (a, b):
            shown = text(at)
            assert str(hosted) not in shown and "transferbench" not in shown.lower(), (page, shown)
        assert f"#{run_id}" not in text(b), page  # B never sees A's run...
        assert "pets" not in text(b), page  # ...nor A's dataset
    a.switch_page("app_pages/compare.py").run()
    assert "Dataset: pets" in text(a) and f"#{run_id}" in text(a)
    b.switch_page("app_pages/compare.py").run()
    assert "No results yet" in text(b)


def test_a_reload_returns_to_the_workspace_and_an_unknown_id_starts_a_new_one(hosted):
    first = visitor()
    workspace = first.query_params["ws"]
    run_id = finished_run(workspace, Path("/nowhere/pets"))
    again = visitor(workspace=workspace, page="compare")
    assert again.query_params["ws"] == workspace and f"#{run_id}" in text(again)
    stranger = visitor(workspace="A" * 22)  # well formed, but no such workspace
    assert any("expired or is unknown" in toast.value for toast in stranger.toast)
    assert stranger.query_params["ws"] not in (workspace, "A" * 22)
    stranger.switch_page("app_pages/compare.py").run()
    assert "No results yet" in text(stranger)


def test_a_share_link_shows_one_run_read_only_until_revoked(hosted):
    owner = visitor()
    workspace = owner.query_params["ws"]
    shared, private = finished_run(workspace, Path("/x/pets")), finished_run(workspace, Path("/x/secret"))
    owner.switch_page("app_pages/compare.py").run()
    owner.selectbox[0].select(shared).run()  # the run picker
    owner.button(key=f"share-{shared}").click().run()
    (link,) = workspaces.shares(Store(workspace=workspace), shared)
    assert f"?share={link.token}" in "\n".join(code.value for code in owner.code)

    reader = visitor(share=link.token)
    assert [t.value for t in reader.title] == ["Shared result"]
    shown = text(reader)
    assert f"run #{shared}" in shown and "Dataset: pets" in shown and "On the 100 test images" in shown
    assert f"#{private}" not in shown and "secret" not in shown
    assert "ws" not in reader.query_params  # a reader gets no workspace of their own...
    labels = [b.label for b in reader.button]
    assert not [label for label in labels if "fine-tun" in label.lower() or "share" in label.lower()]  # ...nor controls

    stranger = Store(workspace=visitor().query_params["ws"])
    workspaces.revoke(stranger, link.token)  # another workspace cannot revoke it
    assert workspaces.shared_run(Store(), link.token).id == shared
    owner.button(key=f"revoke-{link.token}").click().run()
    assert not workspaces.shares(Store(workspace=workspace), shared)
    reader = visitor(share=link.token)
    assert "This share link is not valid" in text(reader)


def test_hosted_storage_lists_only_the_workspace_and_its_quota(hosted, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERBENCH_WORKSPACE_QUOTA_MB", "1")
    at = visitor(page="storage")
    workspace = at.query_params["ws"]
    class_folders(tmp_path / "pets", {"cats": 3, "dogs": 3})
    archives.save_zip("pets.zip", _zip(tmp_path / "pets"), workspace=workspace)
    other = visitor().query_params["ws"]
    archives.save_zip("other.zip", _zip(tmp_path / "pets", extra=b"x"), workspace=other)
    at.run()
    table = at.dataframe[0].value
    assert list(table["name"]) == ["pets.zip"] and "id" not in table.columns
    with pytest.raises(workspaces.QuotaExceeded, match=r"may keep up to 1 MB"):
        archives.save_zip("big.zip", b"PK" + bytes(2 * 1024**2), workspace=workspace)


def test_local_mode_has_one_workspace_and_shows_paths(tb_home):
    run_id = finished_run("local", Path("/data/pets"))
    at = visitor(page="compare")
    assert "ws" not in at.query_params
    assert f"#{run_id}" in text(at) and "Dataset: /data/pets" in text(at)


def _zip(folder: Path, extra: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder))
        if extra:
            archive.writestr("notes.txt", extra)
    return buffer.getvalue()
