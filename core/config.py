"""How Transfer Bench is configured: hosted mode from the environment, and the defaults every front end shares."""

from __future__ import annotations

import os

HOSTED_ENV = "TRANSFERBENCH_HOSTED"

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


def hosted() -> bool:
    """True when running as a shared hosted app (`TRANSFERBENCH_HOSTED=1`): no server paths, tighter caps."""
    return os.environ.get(HOSTED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
