"""Image datasets: find class folders in a folder or zip, validate every file, split, and report.

Three sets, three roles: the head trains on `train`, `validation` picks its best epoch and ranks the
models, and `test`, on which no choice is made, gives the reported score. A dataset is `train/<class>/*`
with any of `validation/` (or `val/`) and `test/` beside it, or plain `<class>/*` folders. Folders
present are used as given; what is missing is made by a stratified, seeded split of the images not used
for training (plain folders: a `holdout` share of each class, half validation and half test). Every file
is checked once (`core.images`); unusable files are skipped with a precise reason.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.archives import as_folder
from core.config import DEFAULT_HOLDOUT, DEFAULT_SEED
from core.errors import DatasetError
from core.images import inspect_all
from core.report import IMAGE_SPLITS, DataReport, Skipped, build_report

VALIDATION_FOLDER_NAMES = ("validation", "val")
TEST_FOLDER_NAME = "test"

_IGNORED_NAMES = ("__MACOSX",)

# (split, label) -> image paths. The split is one of IMAGE_SPLITS, or "" for class folders not yet split.
_Groups = dict[tuple[str, int], list[Path]]


@dataclass(frozen=True)
class ImageRecord:
    """One usable image of a dataset."""

    path: Path
    label: int
    split: str
    digest: str


@dataclass
class Dataset:
    """Usable images in three sets (train, validation, test), with the report on how they were found."""

    root: Path
    classes: list[str]
    train: list[ImageRecord]
    validation: list[ImageRecord]
    test: list[ImageRecord]
    report: DataReport
    fingerprint: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def images(self) -> list[ImageRecord]:
        """Every image: train, then validation, then test (the order of decoded images and features)."""
        return self.train + self.validation + self.test


# ---------------------------------------------------------------------------------------------------
# Loading a dataset


def load_dataset(
    source: str | os.PathLike,
    *,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = DEFAULT_SEED,
    max_images: int | None = None,
    on_check: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Find, validate and split the image dataset in a folder or a `.zip` file.

    Args:
        source: a folder, or a zip file (extracted once under `paths.datasets_dir()`).
        holdout: share of each class held out from training when the dataset is plain class folders
            (half for validation, half for test); with a `train/` folder but no `validation/`, half of
            it is taken from `train/` for validation. Ignored when every split has its folder.
        seed: seed of the splits and of the `max_images` subset.
        max_images: keep a seeded subset of at most this many images, in proportion per class and split.
        on_check: called with (files checked, files) as the files are checked, in parallel threads.

    Raises:
        ValueError: for an argument out of range.
        DatasetError: when the dataset cannot be used (missing, fewer than 2 classes, a class without
            usable images, mismatched train and validation classes, unsafe zip).
    """
    if not 0 < holdout < 1:
        raise ValueError(f"`holdout` must be between 0 and 1 (exclusive). Received: holdout={holdout}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"`max_images` must be a positive number or None. Received: max_images={max_images}")

    root = _find_root(as_folder(Path(source).expanduser()))
    split_folders = _split_folders(root)
    classes, folders = _class_folders(root, split_folders)
    groups = {key: _image_files(folder) for key, folder in folders.items()}

    digests, problems = inspect_all([path for paths in groups.values() for path in paths], on_check)
    usable = {key: [path for path in paths if path in digests] for key, paths in groups.items()}
    for (split, label), folder in folders.items():
        needed = _images_needed(split, split_folders)
        _require_images(
            root, folder, classes[label], split, needed, usable[split, label], groups[split, label], problems
        )
    usable, layout = _complete_splits(usable, split_folders, holdout, seed)

    notes = []
    found = sum(map(len, usable.values()))
    if max_images is not None and found > max_images:
        usable = _subsample(usable, max_images, seed)
        notes.append(f"Using a seeded subset of {max_images:,} of the {found:,} usable images (the limit per sweep).")

    records = {
        split: [
            ImageRecord(path, label, split, digests[path])
            for (group_split, label), paths in sorted(usable.items())
            if group_split == split
            for path in paths
        ]
        for split in IMAGE_SPLITS
    }
    skipped = [Skipped(_relative(path, root), reason) for path, reason in problems.items()]
    return Dataset(
        root=root,
        classes=classes,
        train=records["train"],
        validation=records["validation"],
        test=records["test"],
        report=build_report(classes, _facts(root, records), skipped, layout, notes),
        fingerprint=_fingerprint(classes, records),
    )


def stratified_subset(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """A seeded `fraction` of the images, in proportion per class and split, for screening models fast.

    Like `max_images`, it keeps at least one image per class in each split. The subset has its own
    fingerprint, hence its own caches.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive). Received: fraction={fraction}")
    groups: _Groups = defaultdict(list)
    for record in dataset.images:
        groups[record.split, record.label].append(record.path)
    total = len(dataset.images)
    kept = {
        path for paths in _subsample(groups, max(len(groups), round(fraction * total)), seed).values() for path in paths
    }
    records = {split: [r for r in getattr(dataset, split) if r.path in kept] for split in IMAGE_SPLITS}
    return Dataset(
        root=dataset.root,
        classes=dataset.classes,
        train=records["train"],
        validation=records["validation"],
        test=records["test"],
        report=dataset.report,
        fingerprint=_fingerprint(dataset.classes, records),
    )


def _visible(name: str) -> bool:
    """False for hidden files and folders and for macOS archive debris, which are ignored silently."""
    return not name.startswith(".") and name not in _IGNORED_NAMES


def _subfolders(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if entry.is_dir() and _visible(entry.name))


def _find_root(folder: Path) -> Path:
    """Descend through wrapping folders: a folder whose only entry is one folder of folders."""
    while True:
        entries = [entry for entry in folder.iterdir() if _visible(entry.name)]
        if len(entries) != 1 or not entries[0].is_dir() or not _subfolders(entries[0]):
            return folder
        folder = entries[0]


def _split_folders(root: Path) -> dict[str, Path] | None:
    """The split folders, `{"train": ..., "validation": ..., "test": ...}` (either of the last two may be
    missing), when the root holds `train/` and a validation or test folder; None for plain class folders."""
    names = {folder.name: folder for folder in _subfolders(root)}
    validation = next((name for name in VALIDATION_FOLDER_NAMES if name in names), None)
    found = {"train": names.get("train"), "validation": names.get(validation), "test": names.get(TEST_FOLDER_NAME)}
    if found["train"] is None or (found["validation"] is None and found["test"] is None):
        return None
    return {split: folder for split, folder in found.items() if folder is not None}


def _class_folders(root: Path, split_folders: dict[str, Path] | None) -> tuple[list[str], dict[tuple[str, int], Path]]:
    """The class names, and the folder of each (split, label); split "" when there are no split folders."""
    classes = _class_names(split_folders["train"] if split_folders else root)
    for split, folder in (split_folders or {}).items():
        if split != "train":
            _check_same_classes(classes, split_folders["train"], folder, split)
    folders = {
        (split, label): parent / name
        for split, parent in (split_folders or {"": root}).items()
        for label, name in enumerate(classes)
    }
    return classes, folders


def _class_names(folder: Path) -> list[str]:
    names = [subfolder.name for subfolder in _subfolders(folder)]
    if len(names) < 2:
        raise DatasetError(
            f"A dataset needs at least 2 classes (one folder per class); found {len(names)}: {names} in {folder}"
        )
    return names


def _check_same_classes(classes: list[str], train: Path, other: Path, split: str) -> None:
    found = [folder.name for folder in _subfolders(other)]
    missing = sorted(set(classes) - set(found))
    extra = sorted(set(found) - set(classes))
    if missing or extra:
        differences = "; ".join(f"{what} {names}" for what, names in (("missing", missing), ("extra", extra)) if names)
        raise DatasetError(f"The {split} folder {other} must hold the same class folders as {train}: {differences}")


def _image_files(class_folder: Path) -> list[Path]:
    """Every visible file under a class folder, nested folders included, in sorted order."""
    return sorted(
        path
        for path in class_folder.rglob("*")
        if path.is_file() and all(_visible(part) for part in path.relative_to(class_folder).parts)
    )


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _require_images(
    root: Path,
    folder: Path,
    class_name: str,
    split: str,
    needed: int,
    usable: list[Path],
    files: list[Path],
    problems: dict[Path, str],
) -> None:
    """Raise a DatasetError when a class folder holds fewer than `needed` usable images."""
    if len(usable) >= needed:
        return
    where = f"the {split} split" if split else "its folder (1 each for train, validation and test)"
    if split and needed > 1:
        where += " (it is split in two, as the next split has no folder)"
    reasons = Counter(problems[path] for path in files if path in problems)
    skipped = "; ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    raise DatasetError(
        f"Class '{class_name}' has {len(usable)} usable image(s) in {where}; needs at least {needed}. "
        f"{_relative(folder, root)}/ holds {len(files)} file(s), {sum(reasons.values())} skipped"
        + (f": {skipped}." if skipped else ".")
    )


def _images_needed(split: str, split_folders: dict[str, Path] | None) -> int:
    """Usable images a class needs in `split`'s folder: one per split that will be made from it."""
    if not split:
        return len(IMAGE_SPLITS)  # plain class folders: train, validation and test
    feeds = {"train": "validation", "validation": "test"}.get(split)  # the split made from this one when missing
    return 2 if feeds and feeds not in split_folders else 1


def _complete_splits(
    groups: _Groups, split_folders: dict[str, Path] | None, holdout: float, seed: int
) -> tuple[_Groups, str]:
    """Every split made from the folders there are: (groups keyed by split, the layout in words)."""
    if split_folders is None:
        groups = _split_off(groups, "", "train", "held out", holdout, seed, at_least=2)
        groups = _split_off(groups, "held out", "validation", "test", 0.5, seed)
        return (
            groups,
            f"class folders: a seeded, stratified {holdout:.0%} held out from training, half validation, half test",
        )
    if "validation" not in split_folders:
        groups = _split_off(groups, "train", "train", "validation", holdout / 2, seed)
        return groups, f"train/ and test/ folders; validation: a seeded, stratified {holdout / 2:.0%} of train/"
    if "test" not in split_folders:
        groups = _split_off(groups, "validation", "validation", "test", 0.5, seed)
        return groups, "train/ and validation/ folders; validation/ split in half (seeded, stratified) for a test set"
    return groups, "train/, validation/ and test/ folders, used as given"


def _split_off(
    groups: _Groups, source: str, keep: str, other: str, share: float, seed: int, at_least: int = 1
) -> _Groups:
    """Split each class of the `source` split on its own: a seeded shuffle of its sorted paths, `share` of
    them (but `at_least`, and never all) to `other`, the rest to `keep`. Other splits are left as they are."""
    split: _Groups = {}
    for (name, label), paths in groups.items():
        if name != source:
            split[name, label] = paths
            continue
        shuffled = sorted(paths)
        random.Random(seed).shuffle(shuffled)
        moved = min(len(paths) - 1, max(at_least, round(len(paths) * share)))
        split[keep, label] = sorted(shuffled[moved:])
        split[other, label] = sorted(shuffled[:moved])
    return split


def _subsample(groups: _Groups, max_images: int, seed: int) -> _Groups:
    """A seeded subset of at most `max_images`: one image per (split, class), the rest in proportion."""
    if max_images < len(groups):
        raise ValueError(
            f"`max_images` must leave at least one image per class in each split ({len(groups)} here). "
            f"Received: max_images={max_images}"
        )
    total = sum(map(len, groups.values()))
    share = (max_images - len(groups)) / (total - len(groups))
    return {
        key: sorted(random.Random(seed).sample(paths, 1 + int((len(paths) - 1) * share)))
        for key, paths in groups.items()
    }


def _facts(root: Path, records: dict[str, list[ImageRecord]]) -> list[tuple[str, str, int, str]]:
    """What the report needs of each image: (path relative to the root, split, label, digest)."""
    return [(_relative(r.path, root), r.split, r.label, r.digest) for split in IMAGE_SPLITS for r in records[split]]


def _fingerprint(classes: list[str], records: dict[str, list[ImageRecord]]) -> str:
    rows = sorted(
        f"{split}\t{classes[record.label]}\t{record.digest}\n"
        for split, split_records in records.items()
        for record in split_records
    )
    return hashlib.sha1("".join(rows).encode()).hexdigest()
