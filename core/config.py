"""Where Transfer Bench keeps its files, and how it is configured from the environment."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "TRANSFERBENCH_HOME"
HOSTED_ENV = "TRANSFERBENCH_HOSTED"


def home() -> Path:
    """The data directory: `$TRANSFERBENCH_HOME`, or `./.transferbench`. Created on first use."""
    path = Path(os.environ.get(HOME_ENV) or ".transferbench").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def hosted() -> bool:
    """True when running as a shared hosted app (`TRANSFERBENCH_HOSTED=1`): no server paths, tighter caps."""
    return os.environ.get(HOSTED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# Hosted mode (`TRANSFERBENCH_HOSTED=1`): what fits a shared app with about 1-3 GB of memory.
HOSTED_MAX_UPLOAD_MB = 50
HOSTED_MAX_IMAGES = 1000
HOSTED_MAX_PARAMS = 5_000_000  # models above this are hidden in hosted mode
