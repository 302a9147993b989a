"""Tests for core.decoded: images decoded once per input size, in the background, followed batch by batch."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from images import class_folders, noise_jpeg

from core import decoded
from core.data import load_dataset
from core.decoded import decoded_images
from core.errors import ImageProblem
from core.images import load_image


@pytest.fixture
def dataset(tb_home, tmp_path):
    """50 noise JPEGs in two classes (40 train, 5 validation, 5 test)."""
    return load_dataset(class_folders(tmp_path / "set", {"a": 25, "b": 25}), holdout=0.2)


def all_images(images, batch_size: int) -> np.ndarray:
    return np.concatenate(list(images.batches(batch_size)))


def expected(dataset, size: int) -> np.ndarray:
    return np.stack([load_image(r.path, size) for r in dataset.images])


def test_background_decoding_gives_every_image_in_order_and_caches_them(dataset):
    images = decoded_images(dataset, 24)
    assert decoded_images(dataset, 24) is images  # one decoding per file, shared
    pixels = all_images(images, batch_size=16)  # follows the decoding: last batch has 50 - 48 = 2 images
    np.testing.assert_array_equal(pixels, expected(dataset, 24))
    assert images.complete and images.path.stat().st_size == 50 * 24 * 24 * 3
    assert not list(images.path.parent.glob("*.partial"))

    decoded._registry.clear()  # another process: reads the finished file, decodes nothing
    again = decoded_images(dataset, 24)
    assert again is not images and again.complete
    np.testing.assert_array_equal(all_images(again, batch_size=7), pixels)


def test_readers_can_start_before_any_image_is_decoded(dataset, monkeypatch):
    release, original = threading.Event(), decoded.load_image
    monkeypatch.setattr(decoded, "load_image", lambda path, size: release.wait(10) and original(path, size))
    decoded_images(dataset, 32)  # decoding starts, and is held before its first image
    results: dict[int, np.ndarray] = {}

    def read(index: int) -> None:
        results[index] = all_images(decoded_images(dataset, 32), batch_size=10)

    readers = [threading.Thread(target=read, args=(index,)) for index in range(2)]
    for reader in readers:
        reader.start()
    time.sleep(0.3)  # both readers have opened the file and wait for its first batch
    assert not results
    release.set()
    for reader in readers:
        reader.join(30)
    np.testing.assert_array_equal(results[0], expected(dataset, 32))
    np.testing.assert_array_equal(results[1], results[0])


def test_an_image_that_breaks_while_decoding_fails_the_reader_and_names_the_file(dataset):
    broken = dataset.validation[-1].path
    broken.write_bytes(b"not an image any more")  # after the dataset was checked
    images = decoded_images(dataset, 16)
    batches = images.batches(8)
    with pytest.raises(ImageProblem, match=f"{broken.name}: not an image"):
        for _ in batches:
            pass
    assert not images.complete and not list(images.path.parent.glob("*.partial"))  # nothing half-written is kept

    noise_jpeg(broken, seed=7)  # repaired: the next request decodes again
    assert decoded_images(dataset, 16) is not images
    assert len(all_images(decoded_images(dataset, 16), 8)) == 50
