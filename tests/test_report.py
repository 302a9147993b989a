"""The data report on made-up image lists: counts per split, class weights, the few-test-images warning, leakage."""

from __future__ import annotations

import json
import math

import pytest

from core.report import FEW_TEST_IMAGES, IMAGE_SPLITS, IMBALANCE_RATIO, DataReport, Skipped, build_report


def images(counts: dict[str, dict[str, int]], classes: list[str]) -> list[tuple[str, str, int, str]]:
    """(path, split, label, digest) of distinct images: `counts[split][class]` of each."""
    return [
        (f"{split}/{name}/{i}.jpg", split, classes.index(name), f"{split}-{name}-{i}")
        for split, per_class in counts.items()
        for name, count in per_class.items()
        for i in range(count)
    ]


def report_of(train: dict[str, int], validation: int = 100, test: int = 200, extra=()) -> DataReport:
    """The report on `train` counts per class, with `validation` and `test` images split evenly across classes
    (the first class takes what does not divide)."""
    classes = list(train)

    def even(total: int) -> dict[str, int]:
        share = total // len(classes)
        return {name: share + (total - share * len(classes) if label == 0 else 0) for label, name in enumerate(classes)}

    counts = {"train": train, "validation": even(validation), "test": even(test)}
    return build_report(classes, images(counts, classes) + list(extra), [], "class folders", [])


def test_counts_per_class_in_each_of_the_three_splits():
    report = report_of({"cats": 30, "dogs": 20}, validation=10, test=6)
    assert IMAGE_SPLITS == ("train", "validation", "test")
    assert report.counts == {
        "train": {"cats": 30, "dogs": 20},
        "validation": {"cats": 5, "dogs": 5},
        "test": {"cats": 3, "dogs": 3},
    }
    assert report.imbalance == 1.5  # largest / smallest class in train


@pytest.mark.parametrize("train", [{"a": 50, "b": 50}, {"a": 60, "b": 40}, {"a": 45, "b": 30, "c": 40}])
def test_no_class_weights_when_balanced_enough(train):
    report = report_of(train)
    assert report.imbalance <= IMBALANCE_RATIO and report.class_weights() is None
    assert not any("imbalanced" in warning for warning in report.warnings)


def test_class_weights_on_a_twice_imbalanced_training_set():
    report = report_of({"cats": 40, "dogs": 20})
    assert report.imbalance == 2.0
    n, k = 60, 2
    assert report.class_weights() == pytest.approx([n / (k * 40), n / (k * 20)])
    assert report.class_weights() == pytest.approx([0.75, 1.5])
    weights = report.class_weights()
    assert 40 * weights[0] == pytest.approx(20 * weights[1])  # each class weighs the same in the loss in all
    (warning,) = [w for w in report.warnings if "imbalanced" in w]
    assert "'cats' has 2.0x the training images of 'dogs' (40 vs 20)" in warning
    assert f"Above {IMBALANCE_RATIO:g}x the head's loss is weighted per class" in warning


def test_class_weights_follow_the_labels_not_the_sizes():
    report = report_of({"ants": 10, "bees": 30, "wasps": 20})
    assert report.class_weights() == pytest.approx([60 / 30, 60 / 90, 60 / 60])  # by label: ants, bees, wasps
    assert DataReport.from_dict(json.loads(json.dumps(report.to_dict()))).class_weights() == report.class_weights()


@pytest.mark.parametrize(("test_images", "width"), [(60, 8), (100, 6), (153, 5), (250, 4)])
def test_few_test_images_warn_with_the_interval_width(test_images, width):
    report = report_of({"a": 100, "b": 100}, test=test_images)
    (warning,) = [w for w in report.warnings if w.startswith("The test set has")]
    half_width = 1.96 * math.sqrt(0.9 * 0.1 / test_images)  # the normal approximation at 90%
    assert round(100 * half_width) == width
    assert f"The test set has {test_images} images" in warning
    assert f"near 90% on it is known to about ±{width}% (95% interval)" in warning
    assert "test/ folder" in warning and "fewer to train on" in warning  # what narrows it, and its cost


def test_enough_test_images_need_no_warning():
    report = report_of({"a": 500, "b": 500}, test=FEW_TEST_IMAGES)
    assert report.warnings == []


def test_leakage_between_validation_and_test():
    """A byte-identical image in validation and in test: the reported score is not on unseen images."""
    leaked = [
        ("validation/a/copy.jpg", "validation", 0, "shared"),
        ("test/a/copy.jpg", "test", 0, "shared"),
        ("test/b/twin1.jpg", "test", 1, "twins"),  # a duplicate within one split: no leakage
        ("test/b/twin2.jpg", "test", 1, "twins"),
    ]
    report = report_of({"a": 100, "b": 100}, test=FEW_TEST_IMAGES, extra=leaked)
    groups = {group.paths: group.leakage for group in report.duplicates}
    assert groups == {
        ("test/a/copy.jpg", "validation/a/copy.jpg"): True,
        ("test/b/twin1.jpg", "test/b/twin2.jpg"): False,
    }
    assert report.warnings == [
        "1 image(s) appear in more than one of train, validation and test (byte-identical files): validation "
        "and test scores will be optimistic.",
        "1 group(s) of byte-identical images within a split.",
    ]


def test_leakage_in_all_three_splits_is_one_group():
    copies = [(f"{split}/a/x.jpg", split, 0, "same") for split in IMAGE_SPLITS]
    report = report_of({"a": 100, "b": 100}, test=FEW_TEST_IMAGES, extra=copies)
    (group,) = report.duplicates
    assert group.leakage and group.paths == ("test/a/x.jpg", "train/a/x.jpg", "validation/a/x.jpg")


def test_few_images_per_class_and_split_and_skipped_files_are_warned():
    counts = {"train": {"a": 10, "b": 10}, "validation": {"a": 5, "b": 5}, "test": {"a": 2, "b": 5}}
    skipped = [Skipped("a/broken.jpg", "not an image")]
    report = build_report(["a", "b"], images(counts, ["a", "b"]), skipped, "class folders", ["a note"])
    assert report.warnings[0] == "a note"
    assert "Few images: 'a' has only 2 in test (fewer than 5); results will be noisy." in report.warnings
    assert report.warnings[-1] == "1 file(s) skipped as unusable images (see the skipped list)."
    assert DataReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
