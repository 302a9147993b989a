"""Small image files for tests, written with Pillow: good ones, odd ones and broken ones."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def noise_jpeg(path: Path, seed: int, size: tuple[int, int] = (32, 24)) -> Path:
    """A JPEG of seeded random noise: different seeds give different bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return save(Image.fromarray(pixels), path)


def save(image: Image.Image, path: Path, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **params)
    return path


def class_folders(root: Path, counts: dict[str, int], first_seed: int = 0) -> Path:
    """`root/<class>/img_<i>.jpg` noise JPEGs, all distinct."""
    seed = first_seed
    for name, count in counts.items():
        for index in range(count):
            noise_jpeg(root / name / f"img_{index:03d}.jpg", seed)
            seed += 1
    return root


def split_folders(root: Path, counts: dict[str, int], validation: str = "validation") -> Path:
    """`root/train/<class>/` with `counts` images and `root/<validation>/<class>/` with half as many."""
    class_folders(root / "train", counts)
    class_folders(root / validation, {name: max(1, count // 2) for name, count in counts.items()}, 1000)
    return root


def truncated_jpeg(path: Path) -> Path:
    noise_jpeg(path, seed=99, size=(64, 64))
    path.write_bytes(path.read_bytes()[:-300])
    return path


def png_declaring_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims `width` x `height`: a decompression bomb as Pillow sees it."""
    save(Image.new("1", (16, 16)), path, format="PNG")
    data = bytearray(path.read_bytes())
    # The IHDR chunk follows the 8-byte signature: length (4), type (4), then width and height.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def two_colour(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    return image
