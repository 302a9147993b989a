"""Tests for core.images: the one pixel path (decode, validate, convert to RGB, resize) and file inspection."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from images import BLUE, RED, noise_jpeg, png_declaring_size, save, truncated_jpeg, two_colour
from PIL import Image

from core.errors import ImageProblem
from core.images import MIN_IMAGE_SIDE, decode_image, inspect_all, load_image, open_image, resized

# ---------------------------------------------------------------------------------------------------
# Unusable files carry a precise reason


def test_decompression_bomb_warning_range_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    save(Image.new("RGB", (40, 40)), tmp_path / "warns.png")  # 1600 px: Pillow warns (not > 2x limit)
    with pytest.raises(ImageProblem, match="too large: more than 1,000 px"):
        open_image(tmp_path / "warns.png")


def test_open_image_problems_carry_a_reason(tmp_path):
    with pytest.raises(ImageProblem) as caught:
        open_image(tmp_path / "missing.jpg")
    assert caught.value.reason == "unreadable: No such file or directory"
    with pytest.raises(ImageProblem, match="truncated image"):
        load_image(truncated_jpeg(tmp_path / "cut.jpg"), 16)


def test_minimum_side_is_inclusive(tmp_path):
    assert MIN_IMAGE_SIDE == 16
    assert open_image(save(Image.new("RGB", (16, 40)), tmp_path / "ok.png")).size == (16, 40)
    with pytest.raises(ImageProblem, match=r"too small: 40x15 px \(minimum 16 px per side\)"):
        open_image(save(Image.new("RGB", (40, 15)), tmp_path / "thin.png"))


def test_inspect_all_gives_the_digest_or_the_problem(tmp_path):
    good = noise_jpeg(tmp_path / "good.jpg", seed=1)
    cut = truncated_jpeg(tmp_path / "cut.jpg")
    assert inspect_all([good, cut]) == ({good: hashlib.sha1(good.read_bytes()).hexdigest()}, {cut: "truncated image"})


def test_inspect_all_separates_digests_from_problems(tmp_path):
    good = [noise_jpeg(tmp_path / f"img_{i}.jpg", seed=i) for i in range(3)]
    (tmp_path / "text.jpg").write_text("hello, I am not a JPEG")
    (tmp_path / "empty.jpg").write_bytes(b"")
    bomb = png_declaring_size(tmp_path / "bomb.png", 40000, 40000)
    bad = [tmp_path / "text.jpg", tmp_path / "empty.jpg", bomb]

    digests, problems = inspect_all(good + bad)
    assert digests == {path: hashlib.sha1(path.read_bytes()).hexdigest() for path in good}
    assert problems == {
        tmp_path / "text.jpg": "not an image (cannot identify image file)",
        tmp_path / "empty.jpg": "empty file (0 bytes)",
        bomb: "too large: more than 89,478,485 px (the limit): refused as a possible decompression bomb",
    }


# ---------------------------------------------------------------------------------------------------
# Decoding to RGB


def test_grayscale(tmp_path):
    path = save(Image.new("L", (20, 20), 100), tmp_path / "gray.png")
    image = open_image(path)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (100, 100, 100)


def test_rgba_transparency_becomes_white(tmp_path):
    picture = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    picture.putpixel((0, 0), (0, 0, 0, 0))
    image = open_image(save(picture, tmp_path / "alpha.png"))
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((5, 5)) == RED


def test_palette_with_transparent_index(tmp_path):
    picture = Image.new("P", (20, 20), 1)
    picture.putpalette([0, 0, 0, *BLUE] + [0] * 762)
    picture.putpixel((0, 0), 0)
    image = open_image(save(picture, tmp_path / "palette.png", transparency=0))
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((5, 5)) == BLUE


def test_cmyk(tmp_path):
    path = save(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    red = np.asarray(open_image(path))[10, 10].astype(int)
    assert np.abs(red - RED).max() <= 3


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    pixels = np.full((20, 20), 65535, dtype=np.uint16)
    pixels[:, 10:] = 32768
    path = save(Image.fromarray(pixels), tmp_path / "deep.png")
    assert Image.open(path).mode == "I;16"
    image = np.asarray(open_image(path))
    assert tuple(image[0, 0]) == (255, 255, 255) and tuple(image[0, 15]) == (128, 128, 128)


def test_float_image_in_unit_range(tmp_path):
    pixels = np.full((20, 20), 0.5, dtype=np.float32)
    path = save(Image.fromarray(pixels), tmp_path / "float.tif")
    assert Image.open(path).mode == "F"
    assert open_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_one_bit(tmp_path):
    path = save(Image.new("1", (20, 20), 1), tmp_path / "bits.png")
    assert open_image(path).getpixel((3, 3)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    path = save(two_colour(64, 32), tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = open_image(path)
    assert image.size == (32, 64)
    top, bottom = np.asarray(image)[5, 16].astype(int), np.asarray(image)[58, 16].astype(int)
    assert np.abs(top - RED).max() < 10 and np.abs(bottom - BLUE).max() < 10
    array = load_image(path, 32)
    assert array.shape == (32, 32, 3) and array[2, 16, 0] > 200 and array[29, 16, 2] > 200


def test_decode_image_from_bytes_matches_open_image(tmp_path):
    path = save(Image.new("LA", (20, 20), (100, 255)), tmp_path / "gray-alpha.png")
    from_bytes = decode_image(path.read_bytes())
    assert from_bytes.mode == "RGB" and from_bytes.tobytes() == open_image(path).tobytes()
    with pytest.raises(ImageProblem, match=r"empty file \(0 bytes\)"):
        decode_image(b"")


# ---------------------------------------------------------------------------------------------------
# Resizing


def test_load_image_shape_and_resize(tmp_path):
    path = save(two_colour(40, 20), tmp_path / "wide.png")
    array = load_image(path, 24)
    assert array.shape == (24, 24, 3) and array.dtype == np.uint8
    assert tuple(array[12, 0]) == RED and tuple(array[12, 23]) == BLUE
    with pytest.raises(ValueError, match="Received: size=0"):
        load_image(path, 0)


def test_resized_matches_load_image_without_draft(tmp_path):
    path = save(two_colour(40, 20), tmp_path / "wide.png")
    array = resized(open_image(path), 24)
    assert array.shape == (24, 24, 3) and array.dtype == np.uint8
    assert np.array_equal(array, load_image(path, 24))  # PNG: no reduced decode, the same pixels


def test_enormous_jpeg_loads_through_draft(tmp_path):
    path = save(two_colour(6000, 4000), tmp_path / "huge.jpg", quality=80)
    array = load_image(path, 224)
    assert array.shape == (224, 224, 3)
    assert array[112, 10, 0] > 240 and array[112, 213, 2] > 240
    with Image.open(path) as image:
        image.draft("RGB", (224, 224))
        assert min(image.size) >= 224 and image.size[0] < 6000  # a reduced decode keeps the target size
