"""Image datasets: find class folders in a folder or zip, validate every file, split, and report.

A dataset is either `train/<class>/*` beside `validation/<class>/*` (or `val/`, `test/`), used as given,
or plain `<class>/*` folders, split per class with a seeded shuffle. Every file is opened and decoded
once; unusable files are skipped with a precise reason, and byte-identical files are reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import random
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core import config

IMAGE_SPLITS = ("train", "validation")
VALIDATION_FOLDER_NAMES = ("validation", "val", "test")
MIN_IMAGE_SIDE = 16
FEW_IMAGES = 5
IMBALANCE_WARNING_RATIO = 1.5
LAYOUT_SPLIT_FOLDERS = "train/validation folders"

_IGNORED_NAMES = ("__MACOSX",)
_COMPLETE_MARKER = ".transferbench-complete"
_COPY_CHUNK = 1024**2

# (split, label) -> image paths. The split is "train"/"validation", or "" for class folders not yet split.
_Groups = dict[tuple[str, int], list[Path]]


class DatasetError(ValueError):
    """The dataset as a whole is unusable; the message names the folder, file or class at fault."""


class ImageProblem(ValueError):
    """One image file is unusable; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageRecord:
    """One usable image of a dataset."""

    path: Path
    label: int
    split: str
    digest: str


@dataclass(frozen=True)
class Skipped:
    """A file left out of the dataset, with its path relative to the dataset root."""

    path: str
    reason: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Byte-identical images; `leakage` when they sit in both train and validation."""

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

    def to_dict(self) -> dict:
        """The report as plain JSON-serialisable values."""
        return asdict(self)


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


@dataclass(frozen=True)
class SampleDataset:
    """A public dataset fetched through `keras.utils.get_file`."""

    fname: str
    origin: str
    folder: str
    description: str


SAMPLE_DATASETS: dict[str, SampleDataset] = {
    "cats_and_dogs": SampleDataset(
        fname="cats_and_dogs_filtered.zip",
        origin="https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
        folder="cats_and_dogs_filtered",
        description="Cats vs. dogs from the TensorFlow transfer-learning tutorial: "
        "2 classes, 2,000 train and 1,000 validation JPEGs.",
    ),
}


# ---------------------------------------------------------------------------------------------------
# Loading a dataset


def load_dataset(
    source: str | os.PathLike,
    *,
    val_split: float = 0.2,
    seed: int = 1337,
    max_images: int | None = None,
) -> Dataset:
    """Find, validate and split the image dataset in a folder or a `.zip` file.

    Args:
        source: a folder, or a zip file (extracted once under `config.home() / "datasets"`).
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

    root = _find_root(_as_folder(Path(source).expanduser()))
    split_folders = _split_folders(root)
    classes, folders = _class_folders(root, split_folders)
    groups = {key: _image_files(folder) for key, folder in folders.items()}

    digests, problems = _inspect_all([path for paths in groups.values() for path in paths])
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
        report=_report(root, classes, records, skipped, layout, notes),
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
    kept = {path for paths in _subsample(groups, max(len(groups), round(fraction * total)), seed).values() for path in paths}
    records = {split: [r for r in getattr(dataset, split) if r.path in kept] for split in IMAGE_SPLITS}
    return Dataset(
        root=dataset.root,
        classes=dataset.classes,
        train=records["train"],
        validation=records["validation"],
        report=dataset.report,
        fingerprint=_fingerprint(dataset.classes, records),
    )


def _as_folder(source: Path) -> Path:
    """The folder behind `source`: itself, or where its zip file is extracted (once)."""
    if not source.exists():
        raise DatasetError(f"Dataset not found: {source} does not exist.")
    if source.is_dir():
        return source.resolve()
    if source.suffix.lower() != ".zip":
        raise DatasetError(f"Expected a folder or a .zip file. Received: {source}")
    with source.open("rb") as file:
        digest = hashlib.file_digest(file, "sha1").hexdigest()
    return _extract_once(source, config.home() / "datasets" / f"{source.stem}-{digest[:12]}")


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


# ---------------------------------------------------------------------------------------------------
# Report


def _report(
    root: Path,
    classes: list[str],
    records: dict[str, list[ImageRecord]],
    skipped: list[Skipped],
    layout: str,
    notes: list[str],
) -> DataReport:
    counts = {split: {name: 0 for name in classes} for split in IMAGE_SPLITS}
    for split, split_records in records.items():
        for record in split_records:
            counts[split][classes[record.label]] += 1
    train_counts = counts["train"].values()
    report = DataReport(
        classes=classes,
        counts=counts,
        skipped=skipped,
        duplicates=_duplicates(root, records),
        layout=layout,
        imbalance=max(train_counts) / min(train_counts),
        warnings=notes,
    )
    report.warnings.extend(_warnings(report))
    return report


def _duplicates(root: Path, records: dict[str, list[ImageRecord]]) -> list[DuplicateGroup]:
    by_digest: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records["train"] + records["validation"]:
        by_digest[record.digest].append(record)
    groups = [
        DuplicateGroup(
            digest=digest,
            paths=tuple(sorted(_relative(record.path, root) for record in members)),
            leakage={record.split for record in members} == set(IMAGE_SPLITS),
        )
        for digest, members in by_digest.items()
        if len(members) > 1
    ]
    return sorted(groups, key=lambda group: group.paths)


def _warnings(report: DataReport) -> list[str]:
    found = []
    train = report.counts["train"]
    if report.imbalance > IMBALANCE_WARNING_RATIO:
        largest, smallest = max(train, key=train.get), min(train, key=train.get)
        found.append(
            f"Classes are imbalanced: '{largest}' has {report.imbalance:.1f}x the training images of "
            f"'{smallest}' ({train[largest]} vs {train[smallest]}); accuracy alone can mislead."
        )
    leaks = [group for group in report.duplicates if group.leakage]
    if leaks:
        found.append(
            f"{len(leaks)} image(s) appear in both train and validation (byte-identical files): "
            "validation scores will be optimistic."
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


def _fingerprint(classes: list[str], records: dict[str, list[ImageRecord]]) -> str:
    rows = sorted(
        f"{split}\t{classes[record.label]}\t{record.digest}\n"
        for split, split_records in records.items()
        for record in split_records
    )
    return hashlib.sha1("".join(rows).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Images


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open, validate and fully decode an image as RGB, with its EXIF orientation applied.

    Raises:
        ImageProblem: when the file is unusable; `.reason` says why.
    """
    return _decoded_rgb(Path(path), draft_size=None)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """An image as a `(size, size, 3)` uint8 RGB array: `open_image`, then a bilinear resize (no crop).

    JPEGs much larger than `size` are decoded at a reduced scale that keeps at least `size` pixels per
    side, which is much faster and hardly changes the result.
    """
    if size < 1:
        raise ValueError(f"`size` must be a positive number of pixels. Received: size={size}")
    return resized(_decoded_rgb(Path(path), draft_size=(size, size)), size)


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


def _decoded_rgb(path: Path, draft_size: tuple[int, int] | None) -> Image.Image:
    with _refusing_bombs():
        image = _open(_read(path))
    _load(image, draft_size)
    ImageOps.exif_transpose(image, in_place=True)
    return _to_rgb(image)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ImageProblem(f"unreadable: {error.strerror or error}") from None


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
            f"too large: more than {Image.MAX_IMAGE_PIXELS:,} px (the limit): "
            "refused as a possible decompression bomb"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageProblem(f"corrupt image: {error}") from None
    if min(image.size) < MIN_IMAGE_SIDE:
        raise ImageProblem(
            f"too small: {image.width}x{image.height} px (minimum {MIN_IMAGE_SIDE} px per side)"
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


def _inspect_all(paths: list[Path]) -> tuple[dict[Path, str], dict[Path, str]]:
    """Check every file in threads (Pillow and hashlib release the GIL): (digests, problem reasons)."""
    with _refusing_bombs(), ThreadPoolExecutor() as pool:
        results = list(pool.map(_inspect_file, paths))
    digests = {path: result for path, result in zip(paths, results) if isinstance(result, str)}
    problems = {path: result.reason for path, result in zip(paths, results) if isinstance(result, ImageProblem)}
    return digests, problems


# ---------------------------------------------------------------------------------------------------
# Zip files and sample datasets


def extract_zip(
    zip_path: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_bytes: int = 2 * 1024**3,
    max_files: int = 100_000,
) -> Path:
    """Safely extract a zip file into the new folder `dest`, and return `dest`.

    Refuses members with absolute paths, paths escaping `dest`, symbolic links, more than `max_files`
    members, or more than `max_bytes` of content (declared, or actually written). Extraction goes to a
    temporary folder beside `dest` that is renamed at the end, so a failure leaves nothing behind.

    Raises:
        DatasetError: for a file that is not a zip, or a zip refused as unsafe.
        FileExistsError: when `dest` already exists.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists():
        raise FileExistsError(f"Cannot extract into an existing folder. Received: dest={dest}")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise DatasetError(f"not a zip file: {zip_path.name}") from None
    with archive:
        members = _checked_members(archive, zip_path.name, max_bytes, max_files)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            _write_members(archive, members, staging, zip_path.name, max_bytes)
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return dest


def _checked_members(
    archive: zipfile.ZipFile, name: str, max_bytes: int, max_files: int
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Each member with its safe relative path; a DatasetError for the first unsafe one."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise DatasetError(f"{name} has {len(infos):,} entries; the limit is {max_files:,}.")
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise DatasetError(f"{name} would expand to {declared:,} bytes; the limit is {max_bytes:,} bytes.")
    members = []
    for info in infos:
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError(f"{name}: symbolic link entry refused: {info.filename}")
        normalized = PurePosixPath(posixpath.normpath(info.filename.replace("\\", "/")))
        if normalized.is_absolute() or PureWindowsPath(info.filename).drive:
            raise DatasetError(f"{name}: entry with an absolute path refused: {info.filename}")
        if normalized.parts[:1] == ("..",):
            raise DatasetError(f"{name}: entry escaping the destination folder refused: {info.filename}")
        if normalized.parts:
            members.append((info, normalized))
    return members


def _write_members(
    archive: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    folder: Path,
    name: str,
    max_bytes: int,
) -> None:
    """Write members under `folder`, counting real bytes so that a lying size header cannot overflow."""
    written = 0
    for info, relative in members:
        target = folder / relative
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with archive.open(info) as source, target.open("wb") as output:
                while chunk := source.read(_COPY_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise DatasetError(
                            f"{name} expands to more than {max_bytes:,} bytes (the limit), "
                            f"beyond its declared sizes, at {info.filename}"
                        )
                    output.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
            raise DatasetError(f"{name}: cannot extract {info.filename}: {error}") from None


def _extract_once(zip_path: Path, dest: Path) -> Path:
    """Extract a zip into `dest` unless a previous extraction completed there (its marker file exists)."""
    marker = dest / _COMPLETE_MARKER
    if not marker.exists():
        shutil.rmtree(dest, ignore_errors=True)
        extract_zip(zip_path, dest)
        marker.touch()
    return dest


def sample_dataset(name: str = "cats_and_dogs") -> Path:
    """The folder of a sample dataset (holding `train/` and `validation/`), downloaded once by Keras.

    The zip is cached by `keras.utils.get_file` in `$KERAS_HOME/datasets/` and extracted once under
    `config.home() / "datasets"`.
    """
    if name not in SAMPLE_DATASETS:
        raise ValueError(f"Unknown sample dataset. Expected one of {sorted(SAMPLE_DATASETS)}. Received: name={name!r}")
    sample = SAMPLE_DATASETS[name]
    import keras  # here, not at the top: importing Keras loads TensorFlow, which data loading never needs

    try:
        archive = keras.utils.get_file(fname=sample.fname, origin=sample.origin)
    except Exception as error:  # get_file raises a bare Exception when the download fails
        raise DatasetError(
            f"The sample dataset '{name}' could not be downloaded from {sample.origin} ({error}). "
            f"It is looked for in $KERAS_HOME/datasets/{sample.fname} (KERAS_HOME defaults to ~/.keras)."
        ) from error
    dest = _extract_once(Path(archive), config.home() / "datasets" / Path(sample.fname).stem)
    return dest / sample.folder
