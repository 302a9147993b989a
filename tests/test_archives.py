"""Tests for core.archives: the one path-safety check, zip extraction, uploads and the sample dataset."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from images import RED, class_folders, noise_jpeg, save
from PIL import Image

from core import archives, paths
from core.archives import extract_zip, read_image, safe_relative_path, save_folder, save_zip
from core.data import load_dataset
from core.errors import DatasetError, ImageProblem, UnsafePath


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# The cats-and-dogs sample


def test_sample_has_train_and_validation_folders(cats_and_dogs):
    assert cats_and_dogs.name == "cats_and_dogs_filtered"
    assert {"train", "validation"} <= {path.name for path in cats_and_dogs.iterdir()}


def test_sample_is_extracted_once(cats_and_dogs):
    assert archives.sample_dataset("cats_and_dogs") == cats_and_dogs


def test_an_extracted_sample_is_found_without_keras(cats_and_dogs):
    """Once extracted, the sample is returned without importing Keras (and TensorFlow): a fresh process."""
    code = (
        "import sys; from core.archives import sample_dataset; print(sample_dataset()); "
        "print('keras' in sys.modules or 'tensorflow' in sys.modules)"
    )
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == [str(cats_and_dogs), "False"]


def test_unknown_sample_lists_known_names():
    with pytest.raises(ValueError, match=r"cats_and_dogs.*Received: name='mnist'"):
        archives.sample_dataset("mnist")


# ---------------------------------------------------------------------------------------------------
# safe_relative_path: the one check for zip entries and uploaded names


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a/b.jpg", "a/b.jpg"),
        ("a\\b.jpg", "a/b.jpg"),  # a backslash is a separator
        ("./a/b", "a/b"),
        ("a/../b", "b"),
        ("a//b/./c.jpg", "a/b/c.jpg"),
        ("cats/", "cats"),
    ],
)
def test_safe_relative_path_accepts(name, expected):
    relative = safe_relative_path(name)
    assert isinstance(relative, PurePosixPath) and not relative.is_absolute()
    assert relative == PurePosixPath(expected)
    assert ".." not in relative.parts and "." not in relative.parts


@pytest.mark.parametrize(
    "name, message",
    [
        ("../x", "escaping the destination folder refused: ../x"),
        ("..", "escaping the destination folder refused: .."),
        ("a/../../x", "escaping the destination folder refused: a/../../x"),
        ("a\\..\\..\\x", "escaping the destination folder refused: a\\..\\..\\x"),
        ("/etc/x", "absolute path refused: /etc/x"),
        ("\\etc\\x", "absolute path refused: \\etc\\x"),
        ("C:\\x", "absolute path refused: C:\\x"),
        ("C:x", "absolute path refused: C:x"),
        ("\\\\server\\share\\x", "absolute path refused: \\\\server\\share\\x"),
        ("", "with an empty name refused"),
    ],
)
def test_safe_relative_path_refuses(name, message):
    with pytest.raises(UnsafePath, match=re.escape(message)):
        safe_relative_path(name)


def test_unsafe_path_is_a_dataset_error():
    assert issubclass(UnsafePath, DatasetError)


# ---------------------------------------------------------------------------------------------------
# Zip files


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


@pytest.mark.parametrize("name", ["../evil", "a\\..\\..\\evil", "C:\\evil", "C:evil", "\\\\server\\share\\evil"])
def test_zip_entries_go_through_safe_relative_path(tmp_path, name):
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(UnsafePath, match=re.escape("bad.zip: entry ")) as caught:
        extract_zip(archive, tmp_path / "out")
    assert str(caught.value).endswith(f"refused: {name}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]


def test_zip_entries_are_normalised_like_uploads(tmp_path):
    archive = make_zip(tmp_path / "odd.zip", {"./a/b.txt": b"one", "c\\d.txt": b"two", "e/../f.txt": b"three"})
    dest = extract_zip(archive, tmp_path / "out")
    assert {path.relative_to(dest).as_posix(): path.read_bytes() for path in files_under(dest)} == {
        "a/b.txt": b"one",
        "c/d.txt": b"two",
        "f.txt": b"three",
    }


def test_zip_symlink_is_refused(tmp_path):
    link = zipfile.ZipInfo("link")
    link.external_attr = 0o120777 << 16
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


# ---------------------------------------------------------------------------------------------------
# Uploads from the app


@pytest.mark.parametrize("name", ["../evil.jpg", "/abs/evil.jpg", "cats/../../evil.jpg", "C:\\evil.jpg"])
def test_save_folder_refuses_unsafe_names_and_writes_nothing(tb_home, name):
    with pytest.raises(UnsafePath, match=re.escape(f"Refused an unsafe file name in the upload: {name!r}")):
        save_folder([("pets/cats/ok.jpg", b"fine"), (name, b"x")])
    assert files_under(paths.uploads_dir()) == []
    assert files_under(tb_home) == []


def test_save_folder_refuses_a_name_without_a_file(tb_home):
    with pytest.raises(UnsafePath, match=r"'\./' \(no file name\)"):
        save_folder([("./", b"x")])
    assert files_under(tb_home) == []


def test_save_folder_cannot_escape_through_cleaned_names(tmp_path, tb_home):
    """Parts like `.. ` are not `..` to the check, and must not become `..` when cleaned for the disk."""
    root = save_folder([(".. /.. /.. /evil.jpg", b"x"), ("pets/ . /ok.jpg", b"y")])
    assert root.parent == paths.uploads_dir()
    assert files_under(tmp_path) == files_under(root)  # nothing above the folder, in uploads/ or beyond
    assert all(".." not in path.relative_to(root).parts for path in files_under(root))
    assert len(files_under(root)) == 2


def test_save_folder_writes_nested_names_under_uploads_once(tb_home):
    files = [
        ("pets/cats/a.jpg", b"cat a"),
        ("pets\\dogs\\b.jpg", b"dog b"),
        ("pets/dogs/my dog?.jpg", b"dog c"),
    ]
    root = save_folder(files)
    assert root.parent == paths.uploads_dir() == tb_home / "uploads"
    assert root.name.startswith("folder-")
    assert {path.relative_to(root).as_posix(): path.read_bytes() for path in files_under(root)} == {
        "pets/cats/a.jpg": b"cat a",
        "pets/dogs/b.jpg": b"dog b",
        "pets/dogs/my dog_.jpg": b"dog c",
    }
    written = files_under(tb_home)
    assert save_folder(files) == root and save_folder(list(reversed(files))) == root  # same content, same folder
    assert files_under(tb_home) == written
    other = save_folder([*files[:2], ("pets/dogs/my dog?.jpg", b"another dog")])
    assert other != root and other.parent == root.parent


def test_save_folder_refuses_an_empty_upload(tb_home):
    with pytest.raises(DatasetError, match="holds no files"):
        save_folder([])


def test_save_zip_writes_under_uploads_once(tb_home):
    data = b"PK\x05\x06" + bytes(18)  # an empty zip
    path = save_zip("../my pets!.zip", data)
    assert path.parent == paths.uploads_dir() and path.name.endswith("-my pets_.zip")
    assert path.read_bytes() == data and save_zip("../my pets!.zip", data) == path
    with pytest.raises(DatasetError, match="Expected a .zip file. Received: pets.tar"):
        save_zip("pets.tar", data)


def test_read_image_decodes_bytes_without_writing(tb_home):
    picture = Image.new("RGBA", (20, 20), (*RED, 255))
    picture.putpixel((0, 0), (0, 0, 0, 0))
    image = read_image("photos/cat.png", png_bytes(picture))
    assert image.mode == "RGB" and image.size == (20, 20)
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((5, 5)) == RED
    assert files_under(tb_home) == []


def test_read_image_refuses_unsafe_names_and_bad_images(tmp_path, tb_home):
    jpeg = noise_jpeg(tmp_path / "ok.jpg", seed=3).read_bytes()
    with pytest.raises(UnsafePath, match=re.escape("'../cat.jpg'")):
        read_image("../cat.jpg", jpeg)
    with pytest.raises(ImageProblem, match=r"not an image \(cannot identify image file\)"):
        read_image("cat.jpg", b"hello, I am not a JPEG")
    with pytest.raises(ImageProblem, match=r"too small: 8x8 px"):
        read_image("tiny.png", png_bytes(Image.new("RGB", (8, 8))))
    assert read_image("ok.jpg", jpeg).size == (32, 24)
    assert files_under(tb_home) == []


def test_read_image_matches_open_image(tmp_path):
    from core.images import open_image

    path = save(Image.new("L", (20, 20), 100), tmp_path / "gray.png")
    assert read_image("gray.png", path.read_bytes()).tobytes() == open_image(path).tobytes()
