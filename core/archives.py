"""Files that arrive from outside: zips, folder and image uploads, and sample datasets, all written safely.

Names from an archive or a browser are never trusted as paths: `safe_relative_path` is the one check,
refusing anything absolute or escaping its destination, and cleaned names never collide. Every size
limit (`core.config`, per mode) is checked here, on the server: upload bytes, files per folder upload,
and a zip's entries, total bytes and compression ratio (declared, and counted while streaming each
member to disk in chunks). Extraction goes to a staging folder renamed at the end, so a failure leaves
nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

from core import config, paths, workspaces
from core.errors import DatasetError, UnsafePath
from core.images import decode_image

_COMPLETE_MARKER = ".transferbench-complete"
_COPY_CHUNK = 1024**2
_RATIO_FLOOR = 1024**2  # members expanding to less than this are not held to the compression ratio
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w.\- ]+")


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


def as_folder(source: Path) -> Path:
    """The folder behind `source`: itself, or where its zip file is extracted (once)."""
    if not source.exists():
        raise DatasetError(f"Dataset not found: {source} does not exist.")
    if source.is_dir():
        return source.resolve()
    if source.suffix.lower() != ".zip":
        raise DatasetError(f"Expected a folder or a .zip file. Received: {source}")
    with source.open("rb") as file:
        digest = hashlib.file_digest(file, "sha1").hexdigest()
    return _extract_once(source, paths.datasets_dir(workspaces.owner(source)) / f"{source.stem}-{digest[:12]}")


def safe_relative_path(name: str) -> PurePosixPath:
    """`name` (from a zip entry or an uploaded folder) as a relative path that stays inside its folder.

    Backslashes count as separators and `a/../b` is `b`. Raises `UnsafePath` for an absolute path, a
    drive letter, a path escaping upwards, or an empty name.
    """
    if not name:
        raise UnsafePath("with an empty name refused")
    normalized = PurePosixPath(posixpath.normpath(name.replace("\\", "/")))
    if normalized.is_absolute() or PureWindowsPath(name).drive:
        raise UnsafePath(f"with an absolute path refused: {name}")
    if normalized.parts[:1] == ("..",):
        raise UnsafePath(f"escaping the destination folder refused: {name}")
    return PurePosixPath(*(part for part in normalized.parts if part != "."))


def extract_zip(
    zip_path: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_bytes: int | None = None,
    max_files: int = 100_000,
    max_ratio: float = config.MAX_ZIP_RATIO,
) -> Path:
    """Safely extract a zip file into the new folder `dest`, and return `dest`.

    Refuses members with absolute paths, paths escaping `dest`, symbolic links, more than `max_files`
    members, more than `max_bytes` of content (default: `config.EXTRACTED_BYTES` for the mode; declared,
    or actually written), or a member over 1 MB expanding more than `max_ratio` times its compressed
    size. Members are streamed to disk in chunks, never read whole. Extraction goes to a temporary
    folder beside `dest` that is renamed at the end, so a failure leaves nothing behind.

    Raises:
        DatasetError: for a file that is not a zip, or a zip refused as unsafe.
        FileExistsError: when `dest` already exists.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    max_bytes = config.limit(config.EXTRACTED_BYTES) if max_bytes is None else max_bytes
    if dest.exists():
        raise FileExistsError(f"Cannot extract into an existing folder. Received: dest={dest}")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise DatasetError(f"not a zip file: {zip_path.name}") from None
    with archive:
        members = _checked_members(archive, zip_path.name, max_bytes, max_files, max_ratio)
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
    archive: zipfile.ZipFile, name: str, max_bytes: int, max_files: int, max_ratio: float
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
        if info.file_size > max(_RATIO_FLOOR, max_ratio * info.compress_size):
            raise DatasetError(
                f"{name}: {info.filename} would expand {info.file_size / max(1, info.compress_size):,.0f} times "
                f"(from {info.compress_size:,} to {info.file_size:,} bytes); the limit is {max_ratio:g} times: "
                "refused as a possible zip bomb"
            )
        try:
            relative = safe_relative_path(info.filename)
        except UnsafePath as unsafe:
            raise UnsafePath(f"{name}: entry {unsafe}") from None
        if relative.parts:
            members.append((info, relative))
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
        workspaces.check_room(workspaces.owner(dest), lambda: _declared_bytes(zip_path))
        shutil.rmtree(dest, ignore_errors=True)
        extract_zip(zip_path, dest)
        marker.touch()
    return dest


def _declared_bytes(zip_path: Path) -> int:
    """What a zip says its members hold once extracted (0 for a file that is no zip: `extract_zip` says why)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return 0


def sample_dataset(name: str = "cats_and_dogs") -> Path:
    """The folder of a sample dataset (holding `train/` and `validation/`), downloaded once by Keras.

    The zip is cached by `keras.utils.get_file` in `$KERAS_HOME/datasets/` and extracted once under
    `paths.datasets_dir()`; once extracted, Keras is not imported again.
    """
    if name not in SAMPLE_DATASETS:
        raise ValueError(f"Unknown sample dataset. Expected one of {sorted(SAMPLE_DATASETS)}. Received: name={name!r}")
    sample = SAMPLE_DATASETS[name]
    dest = paths.datasets_dir() / Path(sample.fname).stem
    if (dest / _COMPLETE_MARKER).exists():
        return dest / sample.folder  # extracted before: no need to ask Keras (and load TensorFlow) for the zip
    import keras  # here, not at the top: importing Keras loads TensorFlow, which data loading never needs

    try:
        archive = keras.utils.get_file(fname=sample.fname, origin=sample.origin)
    except Exception as error:  # get_file raises a bare Exception when the download fails
        raise DatasetError(
            f"The sample dataset '{name}' could not be downloaded from {sample.origin} ({error}). "
            f"It is looked for in $KERAS_HOME/datasets/{sample.fname} (KERAS_HOME defaults to ~/.keras)."
        ) from error
    return _extract_once(Path(archive), dest) / sample.folder


# ---------------------------------------------------------------------------------------------------
# Uploads from the app


def save_zip(name: str, data: bytes, workspace: str = config.LOCAL_WORKSPACE) -> Path:
    """Write an uploaded zip to the workspace's `uploads/<digest>-<name>.zip` (once per content); its path."""
    if not name.lower().endswith(".zip"):
        raise DatasetError(f"Expected a .zip file. Received: {name}")
    check_upload_bytes(name, len(data))
    path = paths.uploads_dir(workspace) / f"{hashlib.sha1(data).hexdigest()[:12]}-{_clean(Path(name).name)}"
    if not path.exists():
        workspaces.check_room(workspace, len(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)
    return path


def check_upload_bytes(name: str, size: int) -> None:
    """Refuse an upload larger than this mode allows (`config.UPLOAD_BYTES`), whatever the browser let through."""
    most = config.limit(config.UPLOAD_BYTES)
    if size > most:
        raise DatasetError(
            f"{name} is {size / config.MB:,.1f} MB; this app accepts uploads of up to {most / config.MB:g} MB. "
            f"Received: {size:,} bytes"
        )


def save_folder(
    files: list[tuple[str, bytes]], listed: int | None = None, workspace: str = config.LOCAL_WORKSPACE
) -> Path:
    """Write `(relative path, bytes)` pairs of a folder upload under a new folder; return that folder.

    `listed`: how many files the browser listed, when some may not have arrived (a partial upload is
    refused, never taken for the whole folder). Names are cleaned without collisions. The folder is named
    after a digest of all names and contents, so uploading the same folder again reuses it (and the
    feature cache downstream).
    """
    if not files:
        raise DatasetError("The folder upload holds no files.")
    if listed is not None and listed > len(files):
        raise DatasetError(
            f"Only {len(files):,} of the {listed:,} files of the folder arrived: the upload was interrupted. "
            "Upload it again, or zip the folder and upload the .zip (more reliable for large folders)."
        )
    most = config.limit(config.FOLDER_FILES)
    if len(files) > most:
        raise DatasetError(
            f"The folder holds {len(files):,} files; a folder upload takes up to {most:,}. Zip the folder and "
            "upload the .zip instead: one file arrives reliably."
        )
    check_upload_bytes("The folder", sum(len(data) for _, data in files))
    cleaned = _cleaned_paths([name for name, _ in files])
    checked = sorted(zip(cleaned, (data for _, data in files), strict=True))
    digest = hashlib.sha1()
    for parts, data in checked:
        digest.update("/".join(parts).encode() + b"\0" + hashlib.sha1(data).digest())
    root = paths.uploads_dir(workspace) / f"folder-{digest.hexdigest()[:12]}"
    if not root.exists():
        workspaces.check_room(workspace, sum(len(data) for _, data in checked))
        staging = root.with_name(root.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        for parts, data in checked:
            target = staging.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        staging.rename(root)
    return root


def read_image(name: str, data: bytes) -> Image.Image:
    """An uploaded image as a validated RGB image; raises `ImageProblem` naming what is wrong."""
    _upload_parts(name)
    return decode_image(data)


def _upload_parts(name: str) -> tuple[str, ...]:
    """The parts of an uploaded name as a safe relative path (not cleaned yet)."""
    try:
        relative = safe_relative_path(name)
    except UnsafePath as unsafe:
        raise UnsafePath(f"Refused an unsafe file name in the upload: {name!r} ({unsafe})") from None
    if not relative.parts:
        raise UnsafePath(f"Refused an unsafe file name in the upload: {name!r} (no file name)")
    return relative.parts


def _cleaned_paths(names: list[str]) -> list[tuple[str, ...]]:
    """Each uploaded name as cleaned path parts, without collisions.

    A name that cleaning changes and that would then equal another name in its folder (two emoji class
    folders both becoming `_`) gets a suffix from its original's digest: `_-1f3a9c`. Raises a
    DatasetError naming the files if two uploaded names still end up as one.
    """
    originals = [_upload_parts(name) for name in names]
    cleaned: dict[tuple[str, ...], tuple[str, ...]] = {(): ()}
    for level in range(1, max(map(len, originals)) + 1):
        by_target: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        for prefix in sorted({parts[:level] for parts in originals if len(parts) >= level}):
            by_target[(*cleaned[prefix[:-1]], _clean(prefix[-1]))].append(prefix)
        for target, prefixes in by_target.items():
            for prefix in prefixes:
                renamed = len(prefixes) > 1 and _clean(prefix[-1]) != prefix[-1]
                cleaned[prefix] = (*target[:-1], _suffixed(target[-1], prefix[-1])) if renamed else target
    result = [cleaned[parts] for parts in originals]
    if len(set(result)) < len(result):
        same = sorted(name for name, parts in zip(names, result, strict=True) if result.count(parts) > 1)
        raise DatasetError(f"These uploaded files would be saved under one name: {same}. Rename them and upload again.")
    return result


def _suffixed(cleaned: str, original: str) -> str:
    """`cleaned` made unique with a digest of `original`, before its file extension: `_-1f3a9c.jpg`."""
    stem, dot, extension = cleaned.rpartition(".") if "." in cleaned.strip(".") else (cleaned, "", "")
    return f"{stem}-{hashlib.sha1(original.encode()).hexdigest()[:6]}{dot}{extension}"


def _clean(part: str) -> str:
    return "_" if (cleaned := _UNSAFE_NAME_CHARACTERS.sub("_", part).strip()) in ("", ".", "..") else cleaned
