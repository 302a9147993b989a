"""Tests for core.data: dataset discovery, validation, splits, reports, image decoding and zip safety."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from images import (
    BLUE,
    RED,
    class_folders,
    noise_jpeg,
    png_declaring_size,
    save,
    split_folders,
    truncated_jpeg,
    two_colour,
)
from PIL import Image

from core import data
from core.data import DatasetError, ImageProblem, extract_zip, load_dataset, load_image, open_image, stratified_subset


def skipped_reasons(dataset: data.Dataset) -> dict[str, str]:
    return {item.path: item.reason for item in dataset.report.skipped}


# ---------------------------------------------------------------------------------------------------
# The cats-and-dogs sample


@pytest.fixture(scope="module")
def cats_and_dogs_set(cats_and_dogs) -> data.Dataset:
    return load_dataset(cats_and_dogs)


def test_sample_has_train_and_validation_folders(cats_and_dogs):
    assert cats_and_dogs.name == "cats_and_dogs_filtered"
    assert {"train", "validation"} <= {path.name for path in cats_and_dogs.iterdir()}


def test_sample_loads_as_given(cats_and_dogs_set):
    dataset = cats_and_dogs_set
    assert dataset.classes == ["cats", "dogs"] and dataset.num_classes == 2
    assert (len(dataset.train), len(dataset.validation)) == (2000, 1000)
    assert dataset.report.layout == data.LAYOUT_SPLIT_FOLDERS
    assert dataset.report.counts == {
        "train": {"cats": 1000, "dogs": 1000},
        "validation": {"cats": 500, "dogs": 500},
    }
    assert dataset.report.imbalance == 1.0
    assert dataset.report.skipped == [] and dataset.report.warnings == []
    record = dataset.train[0]
    assert record.path.is_absolute() and record.split == "train" and dataset.classes[record.label] == "cats"
    assert all(record.path.parent.name == dataset.classes[record.label] for record in dataset.validation)


def test_sample_fingerprint_is_stable(cats_and_dogs, cats_and_dogs_set):
    assert load_dataset(cats_and_dogs).fingerprint == cats_and_dogs_set.fingerprint


def test_sample_is_extracted_once(cats_and_dogs):
    assert data.sample_dataset("cats_and_dogs") == cats_and_dogs


def test_unknown_sample_lists_known_names():
    with pytest.raises(ValueError, match=r"cats_and_dogs.*Received: name='mnist'"):
        data.sample_dataset("mnist")


# ---------------------------------------------------------------------------------------------------
# Layouts and splits


def test_class_folders_get_a_seeded_stratified_split(tmp_path):
    root = class_folders(tmp_path / "set", {"cats": 20, "dogs": 10})
    dataset = load_dataset(root)
    assert dataset.report.layout == "class folders, seeded 20% validation split"
    assert dataset.report.counts == {"train": {"cats": 16, "dogs": 8}, "validation": {"cats": 4, "dogs": 2}}
    assert dataset.report.imbalance == 2.0
    assert any("imbalanced" in warning for warning in dataset.report.warnings)

    again = load_dataset(root)
    assert [r.path for r in again.validation] == [r.path for r in dataset.validation]
    assert again.fingerprint == dataset.fingerprint
    other = load_dataset(root, seed=7)
    assert {r.path for r in other.validation} != {r.path for r in dataset.validation}
    assert other.fingerprint != dataset.fingerprint
    assert not {r.path for r in dataset.train} & {r.path for r in dataset.validation}


def test_validation_fraction_is_rounded_with_at_least_one(tmp_path):
    root = class_folders(tmp_path / "set", {"a": 2, "b": 11})
    counts = load_dataset(root, val_split=0.1).report.counts
    assert counts == {"train": {"a": 1, "b": 10}, "validation": {"a": 1, "b": 1}}


@pytest.mark.parametrize("val_split", [0, 1, 1.5, -0.2])
def test_val_split_out_of_range(tmp_path, val_split):
    with pytest.raises(ValueError, match=rf"Received: val_split={val_split}"):
        load_dataset(tmp_path, val_split=val_split)


def test_split_folders_named_val_and_nested_images(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 6, "dogs": 6}, validation="val")
    noise_jpeg(root / "train" / "cats" / "deeper" / "nested.jpg", seed=500)
    dataset = load_dataset(root)
    assert dataset.report.layout == data.LAYOUT_SPLIT_FOLDERS
    assert dataset.report.counts == {"train": {"cats": 7, "dogs": 6}, "validation": {"cats": 3, "dogs": 3}}
    assert any("few images" in warning.lower() and "validation" in warning for warning in dataset.report.warnings)


def test_wrapping_folders_hidden_files_and_macos_debris_are_ignored(tmp_path):
    root = class_folders(tmp_path / "outer" / "inner", {"cats": 5, "dogs": 5})
    (tmp_path / "outer" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "outer" / "__MACOSX" / "inner").mkdir(parents=True)
    (root / "cats" / "._img_000.jpg").write_bytes(b"AppleDouble")
    (root / ".hidden").mkdir()
    dataset = load_dataset(tmp_path / "outer")
    assert dataset.root == root.resolve()
    assert dataset.classes == ["cats", "dogs"]
    assert dataset.report.skipped == []


def test_max_images_keeps_a_stratified_subset(tmp_path):
    root = class_folders(tmp_path / "set", {"cats": 30, "dogs": 10})
    dataset = load_dataset(root, max_images=12)
    counts = dataset.report.counts
    assert sum(map(len, (dataset.train, dataset.validation))) <= 12
    assert all(count >= 1 for split in counts.values() for count in split.values())
    assert counts["train"]["cats"] > counts["train"]["dogs"]
    assert load_dataset(root, max_images=12).fingerprint == dataset.fingerprint
    assert "max_images" in dataset.report.warnings[0]


def test_stratified_subset_for_screening(tmp_path):
    dataset = load_dataset(class_folders(tmp_path / "set", {"cats": 40, "dogs": 20}))
    subset = stratified_subset(dataset, 0.25, seed=7)
    counts = Counter((r.split, r.label) for r in subset.train + subset.validation)
    full = Counter((r.split, r.label) for r in dataset.train + dataset.validation)
    assert 10 <= sum(counts.values()) <= 15 and set(counts) == set(full)  # about a quarter, every class in each split
    assert counts["train", 0] > counts["train", 1]  # in proportion
    assert set(subset.train) <= set(dataset.train) and set(subset.validation) <= set(dataset.validation)
    assert subset.train == [r for r in dataset.train if r in subset.train]  # in the dataset's order
    assert subset.fingerprint != dataset.fingerprint
    assert stratified_subset(dataset, 0.25, seed=7) == subset
    with pytest.raises(ValueError, match="Received: fraction=1"):
        stratified_subset(dataset, 1, seed=7)


def test_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_single_class(tmp_path):
    root = class_folders(tmp_path / "set", {"cats": 3})
    with pytest.raises(DatasetError, match=r"at least 2 classes .*found 1: \['cats'\] in .*set"):
        load_dataset(root)


def test_empty_class_folder(tmp_path):
    root = class_folders(tmp_path / "set", {"cats": 3, "dogs": 3})
    (root / "birds").mkdir()
    with pytest.raises(DatasetError, match=r"Class 'birds' has 0 usable image\(s\).*birds/ holds 0 file"):
        load_dataset(root)


def test_class_with_only_bad_files_in_validation(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 2, "dogs": 2})
    for path in (root / "validation" / "dogs").iterdir():
        path.write_text("not a picture")
    with pytest.raises(DatasetError) as caught:
        load_dataset(root)
    message = str(caught.value)
    assert "Class 'dogs'" in message and "validation split" in message
    assert "validation/dogs/ holds 1 file(s), 1 skipped: 1 not an image" in message


def test_missing_validation_class(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 2, "dogs": 2, "birds": 2})
    for path in (root / "validation" / "birds").iterdir():
        path.unlink()
    (root / "validation" / "birds").rmdir()
    with pytest.raises(DatasetError, match=r"validation .*same class folders.*missing \['birds'\]"):
        load_dataset(root)


# ---------------------------------------------------------------------------------------------------
# Bad files are skipped with a precise reason; the rest loads


def test_each_bad_file_is_skipped_with_its_reason(tmp_path):
    root = class_folders(tmp_path / "set", {"cats": 4, "dogs": 4})
    cats = root / "cats"
    (cats / "text.jpg").write_text("hello, I am not a JPEG")
    (cats / "empty.jpg").write_bytes(b"")
    truncated_jpeg(cats / "truncated.jpg")
    save(Image.new("RGB", (8, 8)), cats / "tiny.png")
    png_declaring_size(cats / "bomb.png", 40000, 40000)
    dataset = load_dataset(root)

    assert skipped_reasons(dataset) == {
        "cats/bomb.png": "too large: more than 89,478,485 px (the limit): refused as a possible decompression bomb",
        "cats/empty.jpg": "empty file (0 bytes)",
        "cats/text.jpg": "not an image (cannot identify image file)",
        "cats/tiny.png": "too small: 8x8 px (minimum 16 px per side)",
        "cats/truncated.jpg": "truncated image",
    }
    assert len(dataset.train) + len(dataset.validation) == 8
    assert "5 file(s) skipped" in dataset.report.warnings[-1]
    assert Image.MAX_IMAGE_PIXELS == 89_478_485


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


def test_load_image_shape_and_resize(tmp_path):
    path = save(two_colour(40, 20), tmp_path / "wide.png")
    array = load_image(path, 24)
    assert array.shape == (24, 24, 3) and array.dtype == np.uint8
    assert tuple(array[12, 0]) == RED and tuple(array[12, 23]) == BLUE
    with pytest.raises(ValueError, match="Received: size=0"):
        load_image(path, 0)


def test_enormous_jpeg_loads_through_draft(tmp_path):
    path = save(two_colour(6000, 4000), tmp_path / "huge.jpg", quality=80)
    array = load_image(path, 224)
    assert array.shape == (224, 224, 3)
    assert array[112, 10, 0] > 240 and array[112, 213, 2] > 240
    with Image.open(path) as image:
        image.draft("RGB", (224, 224))
        assert min(image.size) >= 224 and image.size[0] < 6000  # a reduced decode keeps the target size


# ---------------------------------------------------------------------------------------------------
# Duplicates


def test_duplicates_and_leakage_are_reported(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 5, "dogs": 5})
    copy = root / "train" / "cats" / "copy.jpg"
    copy.write_bytes((root / "train" / "cats" / "img_000.jpg").read_bytes())
    leaked = root / "validation" / "dogs" / "leaked.jpg"
    leaked.write_bytes((root / "train" / "dogs" / "img_004.jpg").read_bytes())
    dataset = load_dataset(root)

    groups = {group.paths: group.leakage for group in dataset.report.duplicates}
    assert groups == {
        ("train/cats/copy.jpg", "train/cats/img_000.jpg"): False,
        ("train/dogs/img_004.jpg", "validation/dogs/leaked.jpg"): True,
    }
    assert len(dataset.train) == 11 and len(dataset.validation) == 5  # duplicates are kept
    warnings = " ".join(dataset.report.warnings)
    assert "1 image(s) appear in both train and validation" in warnings
    assert "1 group(s) of byte-identical images within a split" in warnings
    report = json.loads(json.dumps(dataset.report.to_dict()))
    assert report["duplicates"][1]["leakage"] is True


def test_fingerprint_changes_with_the_data(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 3, "dogs": 3})
    before = load_dataset(root).fingerprint
    noise_jpeg(root / "train" / "cats" / "img_000.jpg", seed=4242)
    assert load_dataset(root).fingerprint != before


# ---------------------------------------------------------------------------------------------------
# Zip files


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_zip_with_wrapping_folder_loads_and_is_extracted_once(tmp_path, tb_home):
    source = class_folders(tmp_path / "src", {"cats": 3, "dogs": 3})
    members = {f"wrapper/{path.relative_to(source).as_posix()}": path.read_bytes() for path in source.rglob("*.jpg")}
    members["__MACOSX/wrapper/._cats"] = b"junk"
    archive = make_zip(tmp_path / "pets.zip", members)

    dataset = load_dataset(archive)
    assert dataset.classes == ["cats", "dogs"]
    assert dataset.root.parent.parent == tb_home / "datasets"
    assert dataset.root.parent.name.startswith("pets-") and dataset.root.name == "wrapper"
    again = load_dataset(archive)
    assert again.root == dataset.root and again.fingerprint == dataset.fingerprint


@pytest.mark.parametrize(
    "name, message",
    [
        ("../evil.txt", "escaping the destination folder refused: ../evil.txt"),
        ("a/../../evil.txt", "escaping the destination folder refused: a/../../evil.txt"),
        ("/etc/evil.txt", "absolute path refused: /etc/evil.txt"),
    ],
)
def test_zip_unsafe_paths_are_refused(tmp_path, name, message):
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"evil"})
    dest = tmp_path / "out"
    with pytest.raises(DatasetError, match=message):
        extract_zip(archive, dest)
    assert not dest.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]


def test_zip_symlink_is_refused(tmp_path):
    link = zipfile.ZipInfo("link")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link entry refused: link"):
        extract_zip(tmp_path / "link.zip", tmp_path / "out")


def test_zip_too_many_files(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(6)})
    with pytest.raises(DatasetError, match="many.zip has 6 entries; the limit is 5"):
        extract_zip(archive, tmp_path / "out", max_files=5)


def test_zip_expanding_too_much(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(100_000)})
    assert archive.stat().st_size < 1000
    with pytest.raises(DatasetError, match="would expand to 100,000 bytes; the limit is 10,000 bytes"):
        extract_zip(archive, tmp_path / "out", max_bytes=10_000)
    assert not (tmp_path / "out").exists()


def test_not_a_zip(tmp_path, tb_home):
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    with pytest.raises(DatasetError, match="not a zip file: fake.zip"):
        load_dataset(fake)


def test_extract_zip_round_trip(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", {"a/b.txt": b"hello", "c.txt": b"world"})
    dest = extract_zip(archive, tmp_path / "out")
    assert (dest / "a" / "b.txt").read_bytes() == b"hello" and (dest / "c.txt").read_bytes() == b"world"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.zip", "out"]
