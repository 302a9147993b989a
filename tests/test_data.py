"""Tests for core.data: dataset discovery, splits, subsets, skipped files, duplicates, fingerprints and reports."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from images import class_folders, noise_jpeg, png_declaring_size, save, split_folders, truncated_jpeg
from PIL import Image

from core import data
from core.data import load_dataset, stratified_subset
from core.errors import DatasetError
from core.report import DataReport, DuplicateGroup, Skipped


def skipped_reasons(dataset: data.Dataset) -> dict[str, str]:
    return {item.path: item.reason for item in dataset.report.skipped}


# ---------------------------------------------------------------------------------------------------
# The cats-and-dogs sample


@pytest.fixture(scope="module")
def cats_and_dogs_set(cats_and_dogs) -> data.Dataset:
    return load_dataset(cats_and_dogs)


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


# ---------------------------------------------------------------------------------------------------
# Duplicates, fingerprints and the stored report


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


def test_report_round_trips_through_a_dict(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 5, "dogs": 5})
    (root / "train" / "cats" / "text.jpg").write_text("not a picture")
    leaked = root / "validation" / "dogs" / "leaked.jpg"
    leaked.write_bytes((root / "train" / "dogs" / "img_004.jpg").read_bytes())
    copy = root / "train" / "cats" / "copy.jpg"
    copy.write_bytes((root / "train" / "cats" / "img_000.jpg").read_bytes())
    report = load_dataset(root).report
    assert report.skipped == [Skipped("train/cats/text.jpg", "not an image (cannot identify image file)")]
    assert len(report.duplicates) == 2 and all(isinstance(group.paths, tuple) for group in report.duplicates)

    assert DataReport.from_dict(report.to_dict()) == report
    stored = json.loads(json.dumps(report.to_dict()))  # as the store keeps it: tuples become lists
    restored = DataReport.from_dict(stored)
    assert restored == report
    assert all(isinstance(item, Skipped) for item in restored.skipped)
    assert all(isinstance(group, DuplicateGroup) and isinstance(group.paths, tuple) for group in restored.duplicates)
