"""Hostile and unlucky inputs for the fault tests, all generated for real: bomb zips, giant canvases, damaged
SQLite files, locks held from a second connection, tiny tmpfs mounts."""

from __future__ import annotations

import io
import sqlite3
import struct
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def bomb_zip(path: Path, expanded_mb: int = 64, member: str = "cats/bomb.jpg") -> Path:
    """A zip of two class folders, one holding `expanded_mb` MB of zeros: about 1,000x compression."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("dogs/ok.png", png_bytes(noise(32, 32, 1)))
        with archive.open(member, "w", force_zip64=True) as out:
            zeros = bytes(1024**2)
            for _ in range(expanded_mb):
                out.write(zeros)
    return path


def zip_declaring(path: Path, members: int, declared_mb: int) -> Path:
    """A stored (uncompressed) zip whose central directory says each member holds `declared_mb` MB: a
    header that lies about sizes, ratio 1."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(members):
            archive.writestr(f"cats/{index}.jpg", b"x" * 1024)
    data = bytearray(path.read_bytes())
    size = declared_mb * 1024**2
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:  # each central directory record
        data[start + 20 : start + 28] = struct.pack("<II", size, size)  # compressed and uncompressed sizes
        start += 4
    path.write_bytes(bytes(data))
    return path


def noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def giant_jpeg(path: Path, width: int = 11000, height: int = 8000) -> Path:
    """A JPEG of `width` x `height` px (88 megapixels by default) in about 1.5 MB: a flat canvas with a pattern."""
    image = Image.new("RGB", (width, height), (200, 180, 160))
    image.paste((40, 60, 200), (0, 0, width // 3, height // 3))
    image.save(path, quality=60)
    return path


def colour_dataset(root: Path, per_class: int = 20, size: int = 48) -> Path:
    """Two easy classes of noise PNGs: reddish and bluish."""
    for name, channel in (("red", 0), ("blue", 2)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            rng = np.random.default_rng(channel * 1000 + index)
            pixels = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            pixels[..., channel] = rng.integers(170, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index:03d}.png")
    return root


@contextmanager
def locked(database: Path, seconds: float | None = None) -> Iterator[threading.Event]:
    """Hold the write lock of `database` from a second connection (in a thread) for `seconds`, or until
    the block ends; yields once the lock is held. The event it yields is set when the lock is released."""
    held, released = threading.Event(), threading.Event()

    def hold() -> None:
        db = sqlite3.connect(database, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        held.set()
        released.wait(seconds)
        db.execute("ROLLBACK")
        db.close()
        released.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    held.wait(10)
    try:
        yield released
    finally:
        released.set()
        thread.join(10)


def damage_table(database: Path, table: str, pages: int = 2) -> None:
    """Overwrite `pages` pages of `table`'s b-tree (its root page first) with garbage: a damaged file."""
    with sqlite3.connect(database) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with database.open("r+b") as file:
        for page in range(root, root + pages):
            file.seek((page - 1) * page_size)
            file.write(bytes(range(256)) * (page_size // 256))


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder`; the test is skipped (with the reason) where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount_read_only(folder: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot remount {folder} read-only: {done.stderr.decode().strip()}")
