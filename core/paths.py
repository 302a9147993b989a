"""Every file and folder Transfer Bench keeps under its data folder, `$TRANSFERBENCH_HOME`.

Each function builds one path from plain values (a fingerprint, a run id, a file stem) and creates
nothing but the data folder itself; writers create parents as they write. Model ids become file names
only through `file_stem`.

    $TRANSFERBENCH_HOME/
        transferbench.db                     the store: runs, results, history, progress
        datasets/<name>/                     extracted zips and sample datasets
        uploads/                             uploaded zips and folders
        workspaces/<id>/datasets, uploads/   the same, of one hosted visitor's workspace (core.workspaces)
        cache/latency.json                   latencies measured on this host
        cache/in-use/<pid>-<start>.json      a running sweep's in-use marker (core.storage)
        settings.json                        disk budget, executor, Ray address (core.storage)
        cache/graphs/<stem>.onnx             exported frozen bases, per host
        cache/<fingerprint>/images-<size>.u8 decoded images of one dataset at one size
        cache/<fingerprint>/features/<stem>-<runtime>.npz  (+ trained heads beside them)
        runs/<run id>/<model stem>.keras     each run's trained heads, and worker.log
        runs/<run id>/exports/<model stem>/  a model exported in every format, with its model card
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from core.config import LOCAL_WORKSPACE

HOME_ENV = "TRANSFERBENCH_HOME"
DEFAULT_HOME = ".transferbench"
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def home() -> Path:
    """The data folder: `$TRANSFERBENCH_HOME`, or `./.transferbench`. Created on first use."""
    path = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_stem(model_id: str) -> str:
    """A model id (or any label) as a file name: `MobileNet:0.25@128/none` -> `MobileNet_0.25_128_none`."""
    return _UNSAFE_CHARACTERS.sub("_", model_id)


def database() -> Path:
    return home() / "transferbench.db"


def workspaces_dir() -> Path:
    """The hosted visitors' workspaces, one folder each (`core.workspaces`)."""
    return home() / "workspaces"


def workspace_dir(workspace: str) -> Path:
    """A workspace's own files: the data folder itself for the local workspace."""
    return home() if workspace == LOCAL_WORKSPACE else workspaces_dir() / workspace


def datasets_dir(workspace: str = LOCAL_WORKSPACE) -> Path:
    """Where a workspace's zips (and sample datasets) are extracted, one folder each."""
    return workspace_dir(workspace) / "datasets"


def uploads_dir(workspace: str = LOCAL_WORKSPACE) -> Path:
    return workspace_dir(workspace) / "uploads"


def cache_dir() -> Path:
    return home() / "cache"


def dataset_cache(fingerprint: str) -> Path:
    """One dataset's own caches (decoded images, features, heads), named by its content fingerprint."""
    return cache_dir() / fingerprint[:16]


def decoded_images(fingerprint: str, size: int) -> Path:
    """Every image of a dataset decoded at `size` px, as one raw uint8 file."""
    return dataset_cache(fingerprint) / f"images-{size}.u8"


def features(fingerprint: str, model_stem: str, runtime: str) -> Path:
    """Features of one model (its `ModelRef.stem`) on one dataset, as computed in `runtime`."""
    return dataset_cache(fingerprint) / "features" / f"{model_stem}-{runtime}.npz"


def graphs_dir() -> Path:
    """Exported frozen bases: per host, not per dataset."""
    return cache_dir() / "graphs"


def onnx_graph(model_stem: str) -> Path:
    return graphs_dir() / f"{model_stem}.onnx"


def latency_cache() -> Path:
    return cache_dir() / "latency.json"


def run_dir(run_id: int) -> Path:
    return home() / "runs" / str(run_id)


def run_head(run_id: int, model_id: str) -> Path:
    """The head a run trained for `model_id`."""
    return run_dir(run_id) / f"{file_stem(model_id)}.keras"


def exports(run_id: int, model_id: str) -> Path:
    """Where a run's model is exported by default: one folder per model."""
    return run_dir(run_id) / "exports" / file_stem(model_id)


def settings_file() -> Path:
    """Settings kept between sessions (the disk budget, the executor): JSON, written by `core.storage`."""
    return home() / "settings.json"


def leases_dir() -> Path:
    """In-use markers: one JSON file per running sweep, naming the cache folders it uses (`core.storage`)."""
    return cache_dir() / "in-use"


def worker_log(run_id: int) -> Path:
    return run_dir(run_id) / "worker.log"
