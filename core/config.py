"""How Transfer Bench is configured: hosted mode from the environment, and the defaults every front end shares."""

from __future__ import annotations

import os
from typing import TypeVar

HOSTED_ENV = "TRANSFERBENCH_HOSTED"
T = TypeVar("T")

# Defaults of a sweep, shared by the engine, the command line and the app.
DEFAULT_SEED = 1337
DEFAULT_EPOCHS = 20
DEFAULT_HOLDOUT = 0.3  # share of plain class folders held out from training: half validation, half test
DEFAULT_TOLERANCE = 0.01  # the recommendation's accuracy tolerance (0.01 = 1 point)
DEFAULT_MODELS = ("MobileNetV2:0.35", "MobileNet:0.25")

# Hosted mode (`TRANSFERBENCH_HOSTED=1`): what fits a shared app with about 1-3 GB of memory.
HOSTED_MAX_UPLOAD_MB = 50
HOSTED_MAX_IMAGES = 1000
HOSTED_MAX_PARAMS = 5_000_000  # models above this are hidden in hosted mode

# Limits on what arrives from outside, enforced on the server (the browser's own checks can be bypassed).
# Each pair is (on your own machine, in hosted mode); `limit` picks the one for the current mode.
MB = 1024**2
UPLOAD_BYTES = (200 * MB, HOSTED_MAX_UPLOAD_MB * MB)  # one upload (a zip, a folder, images): .streamlit's maxUploadSize
EXTRACTED_BYTES = (2 * 1024 * MB, 400 * MB)  # a zip's content once extracted: well below a hosted app's memory
MAX_ZIP_RATIO = 100  # a zip member may expand to at most this many times its compressed size (above 1 MB)
IMAGE_FILE_BYTES = (200 * MB, 20 * MB)  # one image file: larger ones are skipped unread
IMAGE_PIXELS = (89_478_485, 40_000_000)  # one image's canvas, from its header, before any pixel is decoded
DECODE_MAX_SIDE = 1024  # uploads and thumbnails are kept at most this many px per side (JPEGs decoded scaled)
FOLDER_FILES = (2000, 1000)  # files in one folder upload: larger folders arrive more reliably as one zip
IMAGE_SIZE_RANGE = ((32, 1024), (32, 512))  # a model's input size in px, from `--image-size`, settings or a model id
FEATURE_MEMORY_MB = (256, 64)  # features (float32) a head trains on in memory (~3 copies held); more: from disk
# Workspaces and the queue (`core.workspaces`, `core.scheduler`). Each can be set by an environment variable.
LOCAL_WORKSPACE = "local"  # the one workspace on your own machine
WORKERS_ENV = "TRANSFERBENCH_WORKERS"  # sweeps running at once; the others wait in the queue (default 1)
IDLE_HOURS_ENV = "TRANSFERBENCH_WORKSPACE_IDLE_HOURS"  # hosted workspaces unused this long are deleted
WORKSPACE_IDLE_HOURS = 72.0
QUOTA_ENV = "TRANSFERBENCH_WORKSPACE_QUOTA_MB"  # what one hosted workspace may keep on disk
WORKSPACE_QUOTA_MB = 500
STORE_WAIT_SECONDS = 120.0  # a sweep waits this long for a locked store before giving up on one write
APP_STORE_WAIT_SECONDS = 5.0  # a page waits this long, then says the store is busy


def hosted() -> bool:
    """True when running as a shared hosted app (`TRANSFERBENCH_HOSTED=1`): no server paths, tighter caps."""
    return os.environ.get(HOSTED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def upload_megabytes() -> int | None:
    """What a page's uploader tells the browser to accept: this mode's upload limit (None: the server's)."""
    return HOSTED_MAX_UPLOAD_MB if hosted() else None


def limit(pair: tuple[T, T]) -> T:
    """The value of a `(local, hosted)` limit for the current mode."""
    return pair[1] if hosted() else pair[0]


def number(env: str, default: float) -> float:
    """A positive number from the environment variable `env`, else `default`."""
    text = os.environ.get(env, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{env} must be a positive number. Received: {env}={text!r}") from None
    if value <= 0:
        raise ValueError(f"{env} must be a positive number. Received: {env}={text!r}")
    return value
