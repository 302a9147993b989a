"""Saving uploaded files (a zip, a folder's files, single images) under the data directory, safely.

Browsers send a folder upload's relative paths as file names; those are never trusted as paths:
each part is checked, and anything absolute or escaping the destination is refused.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path, PurePosixPath

from core import config
from core.data import DatasetError

_SAFE = re.compile(r"[^\w.\- ]+")


def uploads_dir() -> Path:
    path = config.home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _safe_parts(name: str) -> tuple[str, ...]:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith("/") or any(part in ("..", "") for part in parts) or ":" in parts[0]:
        raise DatasetError(f"Refused an unsafe file name in the upload: {name!r}")
    return tuple(_SAFE.sub("_", part).strip() or "_" for part in parts)


def save_zip(name: str, data: bytes) -> Path:
    """Write an uploaded zip to `uploads/<digest>-<name>.zip` (once per content) and return its path."""
    if not name.lower().endswith(".zip"):
        raise DatasetError(f"Expected a .zip file. Received: {name}")
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = uploads_dir() / f"{digest}-{_safe_parts(Path(name).name)[-1]}"
    if not path.exists():
        path.write_bytes(data)
    return path


def save_folder(files: list[tuple[str, bytes]]) -> Path:
    """Write `(relative path, bytes)` pairs of a folder upload under a new folder; return that folder.

    The folder is named after a digest of all names and contents, so uploading the same folder again
    reuses it (and the feature cache downstream).
    """
    if not files:
        raise DatasetError("The folder upload holds no files.")
    checked = sorted((_safe_parts(name), data) for name, data in files)
    digest = hashlib.sha1()
    for parts, data in checked:
        digest.update("/".join(parts).encode() + b"\0" + hashlib.sha1(data).digest())
    root = uploads_dir() / f"folder-{digest.hexdigest()[:12]}"
    if not root.exists():
        staging = root.with_name(root.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        for parts, data in checked:
            target = staging.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        staging.rename(root)
    return root


def read_image(name: str, data: bytes):
    """An uploaded image as a validated RGB PIL image; raises `ImageProblem` naming what is wrong."""
    from core.data import open_image

    path = uploads_dir() / "images" / f"{hashlib.sha1(data).hexdigest()[:16]}{Path(_safe_parts(name)[-1]).suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return open_image(path)
