"""The one pixel path: decode, validate and resize an image, for datasets, prediction and thumbnails.

Every file is fully decoded once when a dataset is checked (JPEGs at a reduced scale), so a corrupt,
truncated, tiny or oversized file is skipped with a precise reason instead of failing a sweep later.
Grayscale, palette, RGBA, CMYK, 16-bit and float images become 8-bit RGB; EXIF rotation is applied.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core import config
from core.errors import ImageProblem

MIN_IMAGE_SIDE = 16
_DECODE_DRAFT = (config.DECODE_MAX_SIDE, config.DECODE_MAX_SIDE)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open, validate and decode an image as RGB, with its EXIF orientation applied.

    Files over `config.IMAGE_FILE_BYTES` are not read and canvases over `config.IMAGE_PIXELS` not decoded;
    the image is kept at most `config.DECODE_MAX_SIDE` px per side (a JPEG is decoded at a reduced scale).

    Raises:
        ImageProblem: when the file is unusable; `.reason` says why.
    """
    return _bounded(_decoded_rgb(_read(Path(path)), draft_size=_DECODE_DRAFT))


def decode_image(data: bytes) -> Image.Image:
    """`open_image` for bytes already in memory (an upload)."""
    _check_bytes(len(data))
    return _bounded(_decoded_rgb(data, draft_size=_DECODE_DRAFT))


def _bounded(image: Image.Image) -> Image.Image:
    """The image shrunk (bilinear, aspect kept) to at most `config.DECODE_MAX_SIDE` px per side."""
    image.thumbnail(_DECODE_DRAFT, Image.Resampling.BILINEAR)
    return image


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """An image as a `(size, size, 3)` uint8 RGB array: `open_image`, then a bilinear resize (no crop).

    JPEGs much larger than `size` are decoded at a reduced scale that keeps at least `size` pixels per
    side, which is much faster and hardly changes the result.
    """
    if size < 1:
        raise ValueError(f"`size` must be a positive number of pixels. Received: size={size}")
    return resized(_decoded_rgb(_read(Path(path)), draft_size=(size, size)), size)


def resized(image: Image.Image, size: int) -> np.ndarray:
    """An RGB image as a `(size, size, 3)` uint8 array, resized bilinearly without cropping."""
    return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


@contextlib.contextmanager
def _refusing_bombs() -> Iterator[None]:
    """Make Pillow's DecompressionBombWarning an error, without changing `Image.MAX_IMAGE_PIXELS`.

    Warning filters are process-wide: enter this from one thread around any worker threads.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _decoded_rgb(data: bytes, draft_size: tuple[int, int] | None) -> Image.Image:
    with _refusing_bombs():
        image = _open(data)
    _load(image, draft_size)
    ImageOps.exif_transpose(image, in_place=True)
    return _to_rgb(image)


def _read(path: Path) -> bytes:
    """The file's bytes, unless it is larger than an image file may be (then it is not read)."""
    try:
        _check_bytes(path.stat().st_size)
        return path.read_bytes()
    except OSError as error:
        raise ImageProblem(f"unreadable: {error.strerror or error}") from None


def _check_bytes(size: int) -> None:
    most = config.limit(config.IMAGE_FILE_BYTES)
    if size > most:
        raise ImageProblem(
            f"too large: {size / config.MB:,.1f} MB (the limit for one image is {most / config.MB:g} MB)"
        )


def _open(data: bytes) -> Image.Image:
    """Identify an image from its bytes and check its size; the pixels are not decoded yet."""
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageProblem("not an image (cannot identify image file)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageProblem(
            f"too large: more than {Image.MAX_IMAGE_PIXELS:,} px (the limit): refused as a possible decompression bomb"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageProblem(f"corrupt image: {error}") from None
    if min(image.size) < MIN_IMAGE_SIDE:
        raise ImageProblem(f"too small: {image.width}x{image.height} px (minimum {MIN_IMAGE_SIDE} px per side)")
    most = config.limit(config.IMAGE_PIXELS)
    if image.width * image.height > most:
        raise ImageProblem(
            f"too large: {image.width}x{image.height} px ({image.width * image.height / 1e6:.0f} megapixels; "
            f"the limit is {most / 1e6:.0f}), refused before decoding"
        )
    return image


def _load(image: Image.Image, draft_size: tuple[int, int] | None) -> None:
    """Decode every pixel, for JPEG at the smallest DCT scale that keeps `draft_size`.

    A scaled JPEG decode still reads the whole bitstream, so truncation is detected either way.
    """
    if draft_size is not None:
        image.draft("RGB", draft_size)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        if "truncated" in str(error):
            raise ImageProblem("truncated image") from None
        raise ImageProblem(f"corrupt image: {error}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any Pillow mode: high bit depths scaled to 8 bits, transparency composited onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        image = Image.fromarray((np.clip(np.asarray(image), 0, 65535) >> 8).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(_float_to_uint8(np.asarray(image)))
    if image.has_transparency_data:
        white = Image.new("RGBA", image.size, "white")
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _float_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] scaled by 255; any other range stretched from its minimum to its maximum."""
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 1:
        pixels = (pixels - low) / ((high - low) or 1)
    return np.rint(pixels * 255).astype(np.uint8)


def _inspect_file(path: Path) -> str | ImageProblem:
    """The sha1 digest of a usable image file, or the problem that makes it unusable.

    JPEGs are decoded at 1/8 scale: as thorough a check, at a fraction of the cost.
    """
    try:
        data = _read(path)
        image = _open(data)
        _load(image, (image.width // 8, image.height // 8))
    except ImageProblem as problem:
        return problem
    return hashlib.sha1(data).hexdigest()


CHECK_PROGRESS_EVERY = 500  # files between two calls of `inspect_all`'s `on_checked`


def inspect_all(
    paths: list[Path], on_checked: Callable[[int, int], None] | None = None
) -> tuple[dict[Path, str], dict[Path, str]]:
    """Check every file in threads (Pillow and hashlib release the GIL): (digests, problem reasons).

    `on_checked(done, total)` is called every `CHECK_PROGRESS_EVERY` files and at the end."""
    results = []
    with _refusing_bombs(), ThreadPoolExecutor() as pool:
        for result in pool.map(_inspect_file, paths):
            results.append(result)
            if on_checked and (len(results) % CHECK_PROGRESS_EVERY == 0 or len(results) == len(paths)):
                on_checked(len(results), len(paths))
    digests = {path: result for path, result in zip(paths, results, strict=True) if isinstance(result, str)}
    problems = {
        path: result.reason for path, result in zip(paths, results, strict=True) if isinstance(result, ImageProblem)
    }
    return digests, problems
