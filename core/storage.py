"""What the data folder holds, a disk budget for it, and least-recently-used eviction of its caches.

Everything under `$TRANSFERBENCH_HOME` is an `Entry`: a dataset or upload, a run (its store rows and
files), or a cache: decoded images, a model's features (with the heads trained on them) or an exported
graph. Caches can always be computed again, so when the folder is over its budget (`budget_bytes`:
`$TRANSFERBENCH_DISK_BUDGET_GB`, else the saved setting, else `DEFAULT_BUDGET_GB`) the least recently
used ones are evicted, never one that a running sweep uses: a sweep holds a `Lease`, a marker file under
`paths.leases_dir()` naming the cache folders it uses, kept while its process lives.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from core import config, paths
from core.scheduler import process_alive
from core.store import Store

BUDGET_ENV = "TRANSFERBENCH_DISK_BUDGET_GB"
DEFAULT_BUDGET_GB = 4.0
GB = 1024**3
EVICTABLE = ("decoded", "features", "graph")  # kinds computed again when needed
KINDS = ("dataset", "upload", "run", *EVICTABLE)


@dataclass(frozen=True)
class Entry:
    """One thing in the data folder that can be listed and deleted as a whole."""

    kind: str  # one of `KINDS`
    name: str  # `kind:name` is its id on the command line
    files: tuple[Path, ...]  # its files and folders
    bytes: int
    last_used: float  # the newest modification time of its files (a sweep touches the caches it reads)
    in_use: bool  # a running sweep uses it: never deleted

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


def load_settings() -> dict:
    """The saved settings (empty when none were saved, or the file cannot be read)."""
    try:
        return json.loads(paths.settings_file().read_text())
    except (OSError, ValueError):
        return {}


def save_setting(name: str, value: object) -> None:
    """Save one setting (None removes it), atomically."""
    settings = load_settings()
    if value is None:
        settings.pop(name, None)
    else:
        settings[name] = value
    target = paths.settings_file()
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(settings, indent=2))
    partial.replace(target)


def budget_bytes() -> int:
    """The disk budget: `$TRANSFERBENCH_DISK_BUDGET_GB`, else the saved `disk_budget_gb`, else the default."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        try:
            gigabytes = float(text)
        except ValueError:
            raise ValueError(f"{BUDGET_ENV} must be a number of GB, e.g. 4. Received: {text!r}") from None
    else:
        gigabytes = float(load_settings().get("disk_budget_gb", DEFAULT_BUDGET_GB))
    if not gigabytes > 0:
        raise ValueError(f"The disk budget must be a positive number of GB. Received: {gigabytes}")
    return int(gigabytes * GB)


def set_budget(gigabytes: float) -> None:
    if not gigabytes > 0:
        raise ValueError(f"The disk budget must be a positive number of GB. Received: {gigabytes}")
    save_setting("disk_budget_gb", gigabytes)


def executor_settings() -> dict:
    """The saved executor of the app's sweeps: `executor` ("local" or "ray") and Ray's `address` (None: this machine)."""
    saved = load_settings()
    return {"executor": saved.get("executor", "local"), "address": saved.get("ray_address") or None}


class Lease:
    """A running sweep's in-use marker: the cache folders it uses, none of which is evicted meanwhile."""

    def __init__(self):
        self.folders: set[str] = set()
        process = psutil.Process()
        self.path = paths.leases_dir() / f"{process.pid}-{int(process.create_time() * 1000)}.json"
        self._started = process.create_time()

    def add(self, folder: Path) -> None:
        """Mark `folder` (a dataset's cache folder, or the graphs folder) as used by this sweep."""
        if str(folder) in self.folders:
            return
        self.folders.add(str(folder))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        data = {"pid": os.getpid(), "started": self._started, "folders": sorted(self.folders)}
        partial.write_text(json.dumps(data))
        partial.replace(self.path)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        self.folders.clear()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def leased_folders() -> set[Path]:
    """Every folder a live sweep holds; markers of processes that have ended are removed."""
    folders: set[Path] = set()
    for marker in paths.leases_dir().glob("*.json"):
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue  # being written: read again next time
        if process_alive(data.get("pid"), data.get("started")):
            folders |= {Path(folder) for folder in data.get("folders", [])}
        else:
            marker.unlink(missing_ok=True)
    return folders


def touch(*files: Path) -> None:
    """Mark files as just used (least-recently-used order follows modification times)."""
    for file in files:
        try:
            os.utime(file)
        except OSError:
            continue  # gone since: nothing to mark


def entries(store: Store | None = None) -> list[Entry]:
    """Everything in the data folder, largest first. For a store of one workspace (a hosted visitor's): its
    uploads, datasets and runs only; caches are shared and not listed."""
    leased = leased_folders()
    store = store or Store()
    workspace = store.workspace or config.LOCAL_WORKSPACE
    folders = ((kind, parent(workspace)) for kind, parent in _FOLDERS)
    found = [_entry(kind, folder.name, [folder], False) for kind, parent in folders for folder in _children(parent)]
    active = {run.id for run in store.runs(limit=1_000_000) if run.status.active}
    known = {run.id for run in store.runs(limit=1_000_000)}
    run_folders = {int(f.name): f for f in _children(paths.home() / "runs") if f.name.isdigit()}
    for run_id in sorted(known if store.workspace else known | run_folders.keys()):
        files = [run_folders[run_id]] if run_id in run_folders else []
        found.append(_entry("run", str(run_id), files, run_id in active))
    if store.workspace:
        return sorted(found, key=lambda entry: -entry.bytes)
    for folder in _children(paths.cache_dir()):
        if folder in (paths.graphs_dir(), paths.leases_dir()) or not folder.is_dir():
            continue
        in_use = folder in leased
        for images in sorted(folder.glob("images-*.u8")):
            found.append(_entry("decoded", f"{folder.name}/{images.stem.removeprefix('images-')}", [images], in_use))
        for features in sorted((folder / "features").glob("*.npz")):
            if ".head-" in features.name or features.name.startswith("."):
                continue  # a head: listed with its features
            heads = sorted(features.parent.glob(f"{features.stem}.head-*"))
            found.append(_entry("features", f"{folder.name}/{features.stem}", [features, *heads], in_use))
    graphs_in_use = paths.graphs_dir() in leased
    for graph in sorted(paths.graphs_dir().glob("*.onnx")) if paths.graphs_dir().is_dir() else []:
        found.append(_entry("graph", graph.stem, [graph], graphs_in_use))
    return sorted(found, key=lambda entry: -entry.bytes)


def total_bytes() -> int:
    """Disk used by the whole data folder."""
    return size(paths.home())


def delete(entry_id: str, store: Store | None = None) -> Entry:
    """Delete one entry by its id (`run:12`, `features:<folder>/<stem>`...): its files, and a run's store rows.

    Raises ValueError for an unknown id or an entry a running sweep uses.
    """
    store = store or Store()
    by_id = {entry.id: entry for entry in entries(store)}
    entry = by_id.get(entry_id)
    if entry is None:
        kinds = ", ".join(KINDS)
        raise ValueError(
            f"Expected an entry id KIND:NAME ({kinds}; see `python -m core storage`). Received: {entry_id}"
        )
    if entry.in_use:
        raise ValueError(f"{entry_id} is used by a running sweep: cancel it first. Received: {entry_id}")
    _remove(entry)
    if entry.kind == "run":
        store.delete_run(int(entry.name))
    return entry


def evict(budget: int | None = None, store: Store | None = None) -> list[Entry]:
    """Delete least recently used caches, never one in use, until the data folder fits `budget` (bytes;
    default `budget_bytes()`). The evicted entries, oldest first; the folder may stay over the budget
    when what is left is not a cache or is in use."""
    budget = budget_bytes() if budget is None else budget
    total = total_bytes()
    if total <= budget:
        return []
    evicted = []
    candidates = [e for e in entries(store) if e.kind in EVICTABLE and not e.in_use]
    total = total_bytes()  # listing may have created the store
    for entry in sorted(candidates, key=lambda e: e.last_used):
        if total <= budget:
            break
        _remove(entry)
        total -= entry.bytes
        evicted.append(entry)
    return evicted


def describe(entry: Entry) -> dict:
    """One row for a table: id, kind, size in MB, when last used, whether in use."""
    return {
        "id": entry.id,
        "kind": entry.kind,
        "size_mb": round(entry.bytes / 1024**2, 1),
        "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used)) if entry.last_used else "",
        "in_use": entry.in_use,
    }


_FOLDERS = (("dataset", paths.datasets_dir), ("upload", paths.uploads_dir))


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _entry(kind: str, name: str, files: list[Path], in_use: bool) -> Entry:
    stats = [size(file) for file in files]
    last_used = max((file.stat().st_mtime for file in files if file.exists()), default=0.0)
    return Entry(kind, name, tuple(files), sum(stats), last_used, in_use)


def size(path: Path) -> int:
    """Bytes on disk of a file, or of everything under a folder (files vanishing meanwhile count as 0)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _remove(entry: Entry) -> None:
    for file in entry.files:
        if file.is_dir() and not file.is_symlink():
            shutil.rmtree(file, ignore_errors=True)
        else:
            file.unlink(missing_ok=True)
    folder = entry.files[0].parent if entry.files else None
    while folder is not None and folder != paths.cache_dir() and folder.is_relative_to(paths.cache_dir()):
        if any(folder.iterdir()):
            break
        folder.rmdir()  # an emptied cache folder goes too
        folder = folder.parent
