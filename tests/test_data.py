"""Tests for core.data: dataset discovery, splits, subsets, skipped files, duplicates, fingerprints and reports."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from images import class_folders, noise_jpeg, png_declaring_size, save, split_folders, truncated_jpeg
from PIL import Image

from core import data
from core.data import load_dataset, stratified_subset
from core.errors import DatasetError
from core.report import DataReport, DuplicateGroup, Skipped

ALL_THREE = "train/, validation/ and test/ folders, used as given"
TRAIN_AND_VALIDATION = "train/ and validation/ folders; validation/ split in half (seeded, stratified) for a test set"
SPLITS = ("train", "validation", "test")


def three_folders(root: Path, counts: dict[str, int]) -> Path:
    """`train/` with `counts`, and `validation/` and `test/` with half as many each, all distinct images."""
    split_folders(root, counts)
    class_folders(root / "test", {name: max(1, count // 2) for name, count in counts.items()}, first_seed=2000)
    return root


def paths(dataset: data.Dataset, split: str) -> set[Path]:
    return {record.path for record in getattr(dataset, split)}


def split_of(dataset: data.Dataset) -> dict[Path, str]:
    return {record.path: record.split for record in dataset.images}


def skipped_reasons(dataset: data.Dataset) -> dict[str, str]:
    return {item.path: item.reason for item in dataset.report.skipped}


# ---------------------------------------------------------------------------------------------------
# The cats-and-dogs sample


@pytest.fixture(scope="module")
def cats_and_dogs_set(cats_and_dogs) -> data.Dataset:
    return load_dataset(cats_and_dogs)


def test_sample_loads_as_given(cats_and_dogs_set):
    """train/ and validation/ folders, no test/: validation/ is split in half, per class, for the test set."""
    dataset = cats_and_dogs_set
    assert dataset.classes == ["cats", "dogs"] and dataset.num_classes == 2
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (2000, 500, 500)
    assert dataset.report.layout == TRAIN_AND_VALIDATION
    assert dataset.report.counts == {
        "train": {"cats": 1000, "dogs": 1000},
        "validation": {"cats": 250, "dogs": 250},
        "test": {"cats": 250, "dogs": 250},
    }
    assert dataset.report.imbalance == 1.0 and dataset.report.class_weights() is None
    assert dataset.report.skipped == [] and dataset.report.warnings == []  # 500 test images: no warning
    record = dataset.train[0]
    assert record.path.is_absolute() and record.split == "train" and dataset.classes[record.label] == "cats"
    for split in ("validation", "test"):
        records = getattr(dataset, split)
        assert all(r.path.parent.name == dataset.classes[r.label] and r.split == split for r in records)
        assert all(r.path.parent.parent.name == "validation" for r in records)  # both from validation/
    assert not {r.path for r in dataset.validation} & {r.path for r in dataset.test}
    assert dataset.images == dataset.train + dataset.validation + dataset.test


def test_sample_photos_in_three_folders_are_used_for_their_roles(cats_and_dogs, tmp_path):
    """The shared photos laid out as train/, validation/ and test/: each folder is its set, as given."""
    root = tmp_path / "three"
    for split, source, files in (
        ("train", "train", slice(0, 60)),
        ("validation", "validation", slice(0, 20)),
        ("test", "validation", slice(20, 50)),
    ):
        for name in ("cats", "dogs"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for photo in sorted((cats_and_dogs / source / name).iterdir())[files]:
                (folder / photo.name).symlink_to(photo)
    dataset = load_dataset(root)
    assert dataset.report.layout == ALL_THREE
    assert dataset.report.counts == {
        "train": {"cats": 60, "dogs": 60},
        "validation": {"cats": 20, "dogs": 20},
        "test": {"cats": 30, "dogs": 30},
    }
    for split in ("train", "validation", "test"):
        records = getattr(dataset, split)
        assert {r.path for r in records} == set((root / split).rglob("*.jpg"))
        assert all(r.split == split and r.path.parent.name == dataset.classes[r.label] for r in records)
    assert load_dataset(root, holdout=0.6, seed=1).fingerprint == dataset.fingerprint  # nothing left to split


def test_sample_fingerprint_is_stable(cats_and_dogs, cats_and_dogs_set):
    assert load_dataset(cats_and_dogs).fingerprint == cats_and_dogs_set.fingerprint


# ---------------------------------------------------------------------------------------------------
# Layouts and splits


def test_class_folders_get_a_seeded_stratified_split(tmp_path):
    """30% of each class held out (the default), half for validation and half for test."""
    root = class_folders(tmp_path / "set", {"cats": 20, "dogs": 10})
    dataset = load_dataset(root)
    assert dataset.report.layout == (
        "class folders: a seeded, stratified 30% held out from training, half validation, half test"
    )
    # cats: 30% of 20 is 6 held out, 3 and 3; dogs: 30% of 10 is 3, which halves as 1 and 2.
    assert dataset.report.counts == {
        "train": {"cats": 14, "dogs": 7},
        "validation": {"cats": 3, "dogs": 1},
        "test": {"cats": 3, "dogs": 2},
    }
    assert dataset.report.imbalance == 2.0
    assert any("imbalanced" in warning for warning in dataset.report.warnings)
    assert dataset.report.class_weights() == pytest.approx([21 / (2 * 14), 21 / (2 * 7)])

    again = load_dataset(root)
    assert [r.path for r in again.validation] == [r.path for r in dataset.validation]
    assert [r.path for r in again.test] == [r.path for r in dataset.test]
    assert again.fingerprint == dataset.fingerprint
    other = load_dataset(root, seed=7)
    assert paths(other, "validation") != paths(dataset, "validation") and paths(other, "test") != paths(dataset, "test")
    assert other.report.counts == dataset.report.counts  # another draw, the same numbers
    assert other.fingerprint != dataset.fingerprint
    assert len(split_of(dataset)) == len(dataset.images) == 30  # every image in exactly one split


@pytest.mark.parametrize(
    ("counts", "holdout", "expected"),
    [
        # 10% of 3 rounds to 0: at least 2 held out (1 validation, 1 test); 10% of 21 is 2.1, so 2: 1 and 1.
        (
            {"a": 3, "b": 21},
            0.1,
            {"train": {"a": 1, "b": 19}, "validation": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}},
        ),
        # 25% of 40 is 10: 5 and 5; 25% of 4 is 1, raised to 2; 25% of 12 is 3: 1 validation, 2 test.
        (
            {"a": 4, "b": 40, "c": 12},
            0.25,
            {
                "train": {"a": 2, "b": 30, "c": 9},
                "validation": {"a": 1, "b": 5, "c": 1},
                "test": {"a": 1, "b": 5, "c": 2},
            },
        ),
        # 90% of 3 is 2.7, rounded to 3, but never all: 2, 1 and 1. 90% of 10 is 9, of which 4.5 to test, rounded
        # to 4 (Python rounds halves to even); 90% of 5 is 4.5, rounded to 4: 2 and 2.
        (
            {"a": 3, "b": 10, "c": 5},
            0.9,
            {
                "train": {"a": 1, "b": 1, "c": 1},
                "validation": {"a": 1, "b": 5, "c": 2},
                "test": {"a": 1, "b": 4, "c": 2},
            },
        ),
    ],
)
def test_held_out_share_is_rounded_with_at_least_one_each(tmp_path, counts, holdout, expected):
    dataset = load_dataset(class_folders(tmp_path / "set", counts), holdout=holdout)
    assert dataset.report.counts == expected
    for name, count in counts.items():  # the rule, class by class
        held = expected["validation"][name] + expected["test"][name]
        assert expected["train"][name] + held == count and expected["train"][name] >= 1
        assert held == min(count - 1, max(2, round(count * holdout)))
        assert abs(expected["validation"][name] - expected["test"][name]) <= 1  # halves
        assert min(expected["validation"][name], expected["test"][name]) >= 1


@pytest.mark.parametrize("holdout", [0, 1, 1.5, -0.2])
def test_holdout_out_of_range(tmp_path, holdout):
    with pytest.raises(ValueError, match=rf"Received: holdout={holdout}"):
        load_dataset(tmp_path, holdout=holdout)


def test_a_class_of_two_images_in_plain_folders_is_named(tmp_path):
    """Plain folders need 3 usable images per class: one each to train, validate and test on."""
    root = class_folders(tmp_path / "set", {"cats": 10, "dogs": 2})
    with pytest.raises(DatasetError) as caught:
        load_dataset(root)
    message = str(caught.value)
    assert "Class 'dogs' has 2 usable image(s)" in message and "needs at least 3" in message
    assert "1 each for train, validation and test" in message and "dogs/ holds 2 file(s)" in message
    (root / "dogs" / "broken.jpg").write_text("not a picture")  # a third file, but not a usable image
    with pytest.raises(DatasetError, match=r"Class 'dogs' has 2 usable.*3 file\(s\), 1 skipped: 1 not an image"):
        load_dataset(root)
    noise_jpeg(root / "dogs" / "third.jpg", seed=777)
    assert load_dataset(root).report.counts["test"]["dogs"] == 1


def test_train_validation_and_test_folders_are_used_as_given(tmp_path):
    root = three_folders(tmp_path / "set", {"cats": 10, "dogs": 6})
    dataset = load_dataset(root)
    assert dataset.report.layout == ALL_THREE
    assert dataset.report.counts == {
        "train": {"cats": 10, "dogs": 6},
        "validation": {"cats": 5, "dogs": 3},
        "test": {"cats": 5, "dogs": 3},
    }
    for split in SPLITS:
        assert paths(dataset, split) == set((root / split).rglob("*.jpg"))
    assert all(r.path.parent.name == dataset.classes[r.label] for r in dataset.images)
    # Nothing is drawn: neither the seed nor the hold-out share changes anything.
    assert split_of(load_dataset(root, seed=7, holdout=0.5)) == split_of(dataset)


def test_a_test_folder_beside_val_is_the_test_set(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 8, "dogs": 8}, validation="val")
    class_folders(root / "test", {"cats": 3, "dogs": 5}, first_seed=2000)
    dataset = load_dataset(root)
    assert dataset.report.layout == ALL_THREE
    assert paths(dataset, "validation") == set((root / "val").rglob("*.jpg"))  # all of val/: none split off
    assert paths(dataset, "test") == set((root / "test").rglob("*.jpg"))
    assert dataset.report.counts["test"] == {"cats": 3, "dogs": 5}


def test_train_and_validation_folders_split_validation_in_half_for_test(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 20, "dogs": 13})  # validation/: 10 cats, 6 dogs
    dataset = load_dataset(root)
    assert dataset.report.layout == TRAIN_AND_VALIDATION
    assert dataset.report.counts == {
        "train": {"cats": 20, "dogs": 13},
        "validation": {"cats": 5, "dogs": 3},
        "test": {"cats": 5, "dogs": 3},
    }
    assert paths(dataset, "train") == set((root / "train").rglob("*.jpg"))  # train/ is left whole
    assert paths(dataset, "validation") | paths(dataset, "test") == set((root / "validation").rglob("*.jpg"))
    assert not paths(dataset, "validation") & paths(dataset, "test")
    # seeded: the same seed draws the same halves, another seed others
    assert split_of(load_dataset(root)) == split_of(dataset)
    other = load_dataset(root, seed=7)
    assert paths(other, "test") != paths(dataset, "test") and other.report.counts == dataset.report.counts
    assert load_dataset(root, holdout=0.5).fingerprint == dataset.fingerprint  # holdout has no say here


def test_train_and_test_folders_take_validation_from_train(tmp_path):
    """No validation folder: half the hold-out share of each training class validates (15% by default)."""
    root = split_folders(tmp_path / "set", {"cats": 20, "dogs": 10}, validation="test")  # test/: 10 and 5
    dataset = load_dataset(root)
    assert dataset.report.layout == "train/ and test/ folders; validation: a seeded, stratified 15% of train/"
    # 15% of 20 is 3; 15% of 10 is 1.5, which rounds to 2 (to even).
    assert dataset.report.counts == {
        "train": {"cats": 17, "dogs": 8},
        "validation": {"cats": 3, "dogs": 2},
        "test": {"cats": 10, "dogs": 5},
    }
    assert paths(dataset, "test") == set((root / "test").rglob("*.jpg"))  # test/ is the test set, whole
    assert paths(dataset, "train") | paths(dataset, "validation") == set((root / "train").rglob("*.jpg"))
    assert split_of(load_dataset(root)) == split_of(dataset)
    other = load_dataset(root, seed=7)
    assert paths(other, "validation") != paths(dataset, "validation") and paths(other, "test") == paths(dataset, "test")
    assert load_dataset(root, holdout=0.4).report.counts["validation"] == {"cats": 4, "dogs": 2}  # 20% of each


@pytest.mark.parametrize(
    ("make", "counts"),
    [
        (lambda root, counts: class_folders(root, counts), {"a": 9, "b": 3, "c": 30}),
        (lambda root, counts: split_folders(root, counts), {"a": 9, "b": 4, "c": 30}),
        (lambda root, counts: split_folders(root, counts, validation="test"), {"a": 9, "b": 4, "c": 30}),
        (three_folders, {"a": 9, "b": 2, "c": 30}),
    ],
    ids=["class folders", "train and validation", "train and test", "all three"],
)
def test_every_class_is_in_every_split(tmp_path, make, counts):
    for seed in (1, 2, 3):
        dataset = load_dataset(make(tmp_path / "set", counts), seed=seed)
        assert all(count >= 1 for split in dataset.report.counts.values() for count in split.values()), seed
        for split in SPLITS:
            assert {r.label for r in getattr(dataset, split)} == {0, 1, 2}


def test_a_class_with_one_validation_image_and_no_test_folder_is_named(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 10, "dogs": 3})  # validation/: 5 cats, 1 dog
    with pytest.raises(DatasetError, match="Class 'dogs'"):
        load_dataset(root)


def test_a_folder_that_must_be_split_needs_two_images_per_class(tmp_path):
    # validation/ of one image per class: nothing to split off for test
    root = split_folders(tmp_path / "one", {"cats": 2, "dogs": 2})
    with pytest.raises(
        DatasetError, match=r"Class 'cats' has 1 usable image\(s\) in the validation split \(it is split"
    ):
        load_dataset(root)
    # train/ of one image per class beside test/: nothing to validate on
    root = split_folders(tmp_path / "two", {"cats": 1, "dogs": 1}, validation="test")
    with pytest.raises(DatasetError, match=r"Class 'cats' has 1 usable image\(s\) in the train split \(it is split"):
        load_dataset(root)


def test_split_folders_named_val_and_nested_images(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 6, "dogs": 6}, validation="val")
    noise_jpeg(root / "train" / "cats" / "deeper" / "nested.jpg", seed=500)
    dataset = load_dataset(root)
    assert dataset.report.layout == TRAIN_AND_VALIDATION
    # val/ holds 3 per class: half of 3 rounds to 2 (to even) for test, 1 stays to validate.
    assert dataset.report.counts == {
        "train": {"cats": 7, "dogs": 6},
        "validation": {"cats": 1, "dogs": 1},
        "test": {"cats": 2, "dogs": 2},
    }
    assert root / "train" / "cats" / "deeper" / "nested.jpg" in paths(dataset, "train")
    assert any("few images" in warning.lower() and "validation" in warning for warning in dataset.report.warnings)
    assert any(warning.startswith("The test set has 4 images") for warning in dataset.report.warnings)


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
    assert len(dataset.images) <= 12 and set(counts) == set(SPLITS)
    assert all(count >= 1 for split in counts.values() for count in split.values())
    assert counts["train"]["cats"] > counts["train"]["dogs"]
    assert load_dataset(root, max_images=12).fingerprint == dataset.fingerprint
    assert "Using a seeded subset of 12 of the 40 usable images (the limit per sweep)" in dataset.report.warnings[0]


def test_stratified_subset_for_screening(tmp_path):
    dataset = load_dataset(class_folders(tmp_path / "set", {"cats": 40, "dogs": 20}))
    subset = stratified_subset(dataset, 0.25, seed=7)
    counts = Counter((r.split, r.label) for r in subset.images)
    full = Counter((r.split, r.label) for r in dataset.images)
    assert len(full) == 6 and set(counts) == set(full)  # every class in each of the three splits
    assert 10 <= sum(counts.values()) <= 15  # about a quarter of 60
    assert counts["train", 0] > counts["train", 1]  # in proportion
    for split in SPLITS:
        kept, whole = getattr(subset, split), getattr(dataset, split)
        assert set(kept) <= set(whole) and kept == [r for r in whole if r in kept]  # in the dataset's order
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
    root = split_folders(tmp_path / "set", {"cats": 4, "dogs": 2})  # validation/: 2 cats, 1 dog
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
    assert len(dataset.images) == 8
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
        ("train/dogs/img_004.jpg", "validation/dogs/leaked.jpg"): True,  # in validation or test: leaked either way
    }
    assert len(dataset.train) == 11 and len(dataset.validation) + len(dataset.test) == 5  # duplicates are kept
    warnings = " ".join(dataset.report.warnings)
    assert "1 image(s) appear in more than one of train, validation and test" in warnings
    assert "1 group(s) of byte-identical images within a split" in warnings
    report = json.loads(json.dumps(dataset.report.to_dict()))
    assert report["duplicates"][1]["leakage"] is True


def test_fingerprint_changes_with_the_data(tmp_path):
    root = split_folders(tmp_path / "set", {"cats": 4, "dogs": 4})
    before = load_dataset(root).fingerprint
    noise_jpeg(root / "train" / "cats" / "img_000.jpg", seed=4242)
    assert load_dataset(root).fingerprint != before


def test_fingerprint_changes_when_only_the_test_images_do(tmp_path):
    """Features are cached per fingerprint, in the order train, validation, test: new test images need new ones."""
    root = three_folders(tmp_path / "set", {"cats": 4, "dogs": 4})
    before = load_dataset(root)
    noise_jpeg(root / "test" / "dogs" / "img_000.jpg", seed=4242)
    after = load_dataset(root)
    assert after.fingerprint != before.fingerprint
    assert [r.digest for r in after.train + after.validation] == [r.digest for r in before.train + before.validation]
    # The same images with validation and test swapped are another dataset, too.
    (root / "test").rename(root / "swap")
    (root / "validation").rename(root / "test")
    (root / "swap").rename(root / "validation")
    swapped = load_dataset(root)
    assert sorted(r.digest for r in swapped.images) == sorted(r.digest for r in after.images)
    assert swapped.fingerprint != after.fingerprint


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
