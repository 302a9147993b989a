"""Image datasets: find class folders in a folder or zip, validate every file, split, and report.

A dataset is either `train/<class>/*` beside `validation/<class>/*` (or `val/`, `test/`), used as given,
or plain `<class>/*` folders, split per class with a seeded shuffle. Every file is checked once
(`core.images`); unusable files are skipped with a precise reason, and byte-identical files are reported.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from core.archives import as_folder
from core.config import DEFAULT_SEED, DEFAULT_VAL_SPLIT
from core.errors import DatasetError
from core.images import inspect_all
from core.report import IMAGE_SPLITS, DataReport, Skipped, build_report

VALIDATION_FOLDER_NAMES = ("validation", "val", "test")
LAYOUT_SPLIT_FOLDERS = "train/validation folders"

_IGNORED_NAMES = ("__MACOSX",)

# (split, label) -> image paths. The split is "train"/"validation", or "" for class folders not yet split.
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
    """Usable images split into train and validation, with the report on how they were found."""

    root: Path
    classes: list[str]
    train: list[ImageRecord]
    validation: list[ImageRecord]
    report: DataReport
    fingerprint: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ---------------------------------------------------------------------------------------------------
# Loading a dataset


def load_dataset(
    source: str | os.PathLike,
    *,
    val_split: float = DEFAULT_VAL_SPLIT,
    seed: int = DEFAULT_SEED,
    max_images: int | None = None,
) -> Dataset:
    """Find, validate and split the image dataset in a folder or a `.zip` file.

    Args:
        source: a folder, or a zip file (extracted once under `paths.datasets_dir()`).
        val_split: fraction of each class held out for validation when the dataset is plain class
            folders; ignored when it has its own train and validation folders.
        seed: seed of the class-folder split and of the `max_images` subset.
        max_images: keep a seeded subset of at most this many images, in proportion per class and split.

    Raises:
        ValueError: for an argument out of range.
        DatasetError: when the dataset cannot be used (missing, fewer than 2 classes, a class without
            usable images, mismatched train and validation classes, unsafe zip).
    """
    if not 0 < val_split < 1:
        raise ValueError(f"`val_split` must be between 0 and 1 (exclusive). Received: val_split={val_split}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"`max_images` must be a positive number or None. Received: max_images={max_images}")

    root = _find_root(as_folder(Path(source).expanduser()))
    split_folders = _split_folders(root)
    classes, folders = _class_folders(root, split_folders)
    groups = {key: _image_files(folder) for key, folder in folders.items()}

    digests, problems = inspect_all([path for paths in groups.values() for path in paths])
    usable = {key: [path for path in paths if path in digests] for key, paths in groups.items()}
    for (split, label), folder in folders.items():
        _require_images(root, folder, classes[label], split, usable[split, label], groups[split, label], problems)
    if not split_folders:
        usable = _split_classes(usable, val_split, seed)

    notes = []
    found = sum(map(len, usable.values()))
    if max_images is not None and found > max_images:
        usable = _subsample(usable, max_images, seed)
        notes.append(f"Using a seeded subset of {max_images:,} of the {found:,} usable images (max_images).")

    records = {
        split: [
            ImageRecord(path, label, split, digests[path])
            for (group_split, label), paths in sorted(usable.items())
            if group_split == split
            for path in paths
        ]
        for split in IMAGE_SPLITS
    }
    layout = LAYOUT_SPLIT_FOLDERS if split_folders else f"class folders, seeded {val_split * 100:g}% validation split"
    skipped = [Skipped(_relative(path, root), reason) for path, reason in problems.items()]
    return Dataset(
        root=root,
        classes=classes,
        train=records["train"],
        validation=records["validation"],
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
    for record in dataset.train + dataset.validation:
        groups[record.split, record.label].append(record.path)
    total = len(dataset.train) + len(dataset.validation)
    kept = {
        path for paths in _subsample(groups, max(len(groups), round(fraction * total)), seed).values() for path in paths
    }
    records = {split: [r for r in getattr(dataset, split) if r.path in kept] for split in IMAGE_SPLITS}
    return Dataset(
        root=dataset.root,
        classes=dataset.classes,
        train=records["train"],
        validation=records["validation"],
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
    """`{"train": ..., "validation": ...}` when the root holds `train/` and a validation folder."""
    names = {folder.name: folder for folder in _subfolders(root)}
    validation = next((name for name in VALIDATION_FOLDER_NAMES if name in names), None)
    if "train" not in names or validation is None:
        return None
    return {"train": names["train"], "validation": names[validation]}


def _class_folders(root: Path, split_folders: dict[str, Path] | None) -> tuple[list[str], dict[tuple[str, int], Path]]:
    """The class names, and the folder of each (split, label); split "" when there are no split folders."""
    classes = _class_names(split_folders["train"] if split_folders else root)
    if split_folders:
        _check_same_classes(classes, split_folders["train"], split_folders["validation"])
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


def _check_same_classes(classes: list[str], train: Path, validation: Path) -> None:
    found = [folder.name for folder in _subfolders(validation)]
    missing = sorted(set(classes) - set(found))
    extra = sorted(set(found) - set(classes))
    if missing or extra:
        differences = "; ".join(f"{what} {names}" for what, names in (("missing", missing), ("extra", extra)) if names)
        raise DatasetError(
            f"The validation folder {validation} must hold the same class folders as {train}: {differences}"
        )


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
    usable: list[Path],
    files: list[Path],
    problems: dict[Path, str],
) -> None:
    """Raise a DatasetError when a class folder holds too few usable images.

    A split folder needs 1; an unsplit class folder needs 2, one for train and one for validation.
    """
    needed = 1 if split else 2
    if len(usable) >= needed:
        return
    where = f"the {split} split" if split else "its folder (1 for train, 1 for validation)"
    reasons = Counter(problems[path] for path in files if path in problems)
    skipped = "; ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    raise DatasetError(
        f"Class '{class_name}' has {len(usable)} usable image(s) in {where}; needs at least {needed}. "
        f"{_relative(folder, root)}/ holds {len(files)} file(s), {sum(reasons.values())} skipped"
        + (f": {skipped}." if skipped else ".")
    )


def _split_classes(groups: _Groups, val_split: float, seed: int) -> _Groups:
    """Split each class on its own: a seeded shuffle of its sorted paths, the first part to validation."""
    split: _Groups = {}
    for (_, label), paths in groups.items():
        shuffled = sorted(paths)
        random.Random(seed).shuffle(shuffled)
        held_out = min(len(paths) - 1, max(1, round(len(paths) * val_split)))
        split["train", label] = sorted(shuffled[held_out:])
        split["validation", label] = sorted(shuffled[:held_out])
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
