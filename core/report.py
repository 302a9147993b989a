"""The data report: what was found in a dataset (counts, skipped files, duplicates) and what deserves a warning."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

FEW_IMAGES = 5
IMBALANCE_RATIO = 1.5  # above this (largest / smallest class in train), a warning and class weights in the head's loss
FEW_TEST_IMAGES = 300  # below this, the report says how wide an accuracy's 95% interval is
IMAGE_SPLITS = ("train", "validation", "test")  # three roles: fit the head, choose, report


@dataclass(frozen=True)
class Skipped:
    """A file left out of the dataset, with its path relative to the dataset root."""

    path: str
    reason: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Byte-identical images; `leakage` when they sit in more than one split."""

    digest: str
    paths: tuple[str, ...]
    leakage: bool


@dataclass
class DataReport:
    """What was found in a dataset, and what deserves a warning."""

    classes: list[str]
    counts: dict[str, dict[str, int]]
    skipped: list[Skipped]
    duplicates: list[DuplicateGroup]
    layout: str
    imbalance: float
    warnings: list[str]

    def class_weights(self) -> list[float] | None:
        """Per-class weights for the head's loss (`n / (classes * count)`, by label) when the training
        set is imbalanced beyond `IMBALANCE_RATIO`; None when it is balanced enough."""
        if self.imbalance <= IMBALANCE_RATIO:
            return None
        counts = [self.counts["train"][name] for name in self.classes]
        return [sum(counts) / (len(counts) * count) for count in counts]

    def to_dict(self) -> dict:
        """The report as plain JSON-serialisable values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DataReport:
        return cls(
            **{
                **data,
                "skipped": [Skipped(**item) for item in data["skipped"]],
                "duplicates": [
                    DuplicateGroup(**{**item, "paths": tuple(item["paths"])}) for item in data["duplicates"]
                ],
            }
        )


def build_report(
    classes: list[str], images: list[tuple[str, str, int, str]], skipped: list[Skipped], layout: str, notes: list[str]
) -> DataReport:
    """The report on the usable `images`, each (path relative to the dataset root, split, label, digest)."""
    counts = {split: dict.fromkeys(classes, 0) for split in IMAGE_SPLITS}
    for _, split, label, _ in images:
        counts[split][classes[label]] += 1
    train_counts = counts["train"].values()
    report = DataReport(
        classes=classes,
        counts=counts,
        skipped=skipped,
        duplicates=_duplicates(images),
        layout=layout,
        imbalance=max(train_counts) / min(train_counts),
        warnings=list(notes),
    )
    report.warnings.extend(_warnings(report))
    return report


def _duplicates(images: list[tuple[str, str, int, str]]) -> list[DuplicateGroup]:
    by_digest: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path, split, _, digest in images:
        by_digest[digest].append((path, split))
    groups = [
        DuplicateGroup(
            digest=digest,
            paths=tuple(sorted(path for path, _ in members)),
            leakage=len({split for _, split in members}) > 1,
        )
        for digest, members in by_digest.items()
        if len(members) > 1
    ]
    return sorted(groups, key=lambda group: group.paths)


def _warnings(report: DataReport) -> list[str]:
    found = []
    train = report.counts["train"]
    if report.class_weights():
        largest, smallest = max(train, key=train.get), min(train, key=train.get)
        found.append(
            f"Classes are imbalanced: '{largest}' has {report.imbalance:.1f}x the training images of "
            f"'{smallest}' ({train[largest]} vs {train[smallest]}); accuracy alone can mislead. Above "
            f"{IMBALANCE_RATIO:g}x the head's loss is weighted per class; compare balanced accuracy."
        )
    test_images = sum(report.counts["test"].values())
    if test_images < FEW_TEST_IMAGES:
        half_width = 1.96 * (0.9 * 0.1 / max(1, test_images)) ** 0.5
        found.append(
            f"The test set has {test_images} images: an accuracy near 90% on it is known to about "
            f"±{half_width:.0%} (95% interval), so models closer than that cannot be told apart. A larger "
            "hold-out or a test/ folder narrows it; each image held out is one fewer to train on."
        )
    leaks = [group for group in report.duplicates if group.leakage]
    if leaks:
        found.append(
            f"{len(leaks)} image(s) appear in more than one of train, validation and test (byte-identical "
            "files): validation and test scores will be optimistic."
        )
    if len(report.duplicates) > len(leaks):
        found.append(f"{len(report.duplicates) - len(leaks)} group(s) of byte-identical images within a split.")
    for split, split_counts in report.counts.items():
        for name, count in split_counts.items():
            if count < FEW_IMAGES:
                found.append(
                    f"Few images: '{name}' has only {count} in {split} (fewer than {FEW_IMAGES}); "
                    "results will be noisy."
                )
    if report.skipped:
        found.append(f"{len(report.skipped)} file(s) skipped as unusable images (see the skipped list).")
    return found
