"""Images decoded and resized once per input size for a whole sweep, in the background.

Every model of one input size reads the same pixels: one raw uint8 file of all images (in the order
of `Dataset.images`) in the dataset's cache folder. The first request for a size starts decoding in threads at
once, so the pixels are being prepared while the model is still built (weights loaded, graph exported),
and a reader follows the decoding batch by batch instead of waiting for all of it. A reader that is
cancelled stops the decoding too.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core import paths
from core.data import Dataset
from core.errors import ImageProblem
from core.images import load_image
from core.progress import Cancelled

DECODE_THREADS = min(4, os.cpu_count() or 1)
_AHEAD = 64  # images submitted to the decoding threads ahead of the one being written


class DecodedImages:
    """All images of `dataset` as uint8 arrays of `(size, size, 3)`, decoded at most once.

    Use `decoded_images`, which shares one decoding per file within the process.
    """

    def __init__(self, dataset: Dataset, size: int):
        if size < 1:
            raise ValueError(f"`size` must be a positive number of pixels. Received: size={size}")
        self.size, self.count = size, len(dataset.images)
        self.path = paths.decoded_images(dataset.fingerprint, size)
        self._item_bytes = size * size * 3
        self._paths = [record.path for record in dataset.images]
        self._changed = threading.Condition()
        self._done = self.count if self.complete else 0  # images written so far
        self._error: BaseException | None = None
        self._stopping = False  # set by `stop`: the decoding thread ends at the next image
        self._partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
        if self._done < self.count:  # the partial file exists before any reader looks for it
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = open(self._partial, "wb", buffering=0)  # noqa: SIM115 (closed by the decoding thread)
            threading.Thread(target=self._decode, args=(partial,), name=f"decode-{size}", daemon=True).start()

    @property
    def complete(self) -> bool:
        """True when every image is in the file (decoded by this process or an earlier one)."""
        return self.path.exists() and self.path.stat().st_size == self.count * self._item_bytes

    def batches(self, batch_size: int, should_stop: Callable[[], bool] | None = None) -> Iterator[np.ndarray]:
        """Every image in order, in batches, as soon as each batch is decoded.

        Raises the decoding's error (say, an image that became unreadable) at the batch it reached, and
        `Cancelled` (after stopping the decoding) when `should_stop()` is true before a batch.
        """
        with self._changed:  # the file to follow: the partial one is renamed or removed only under this lock
            if self._error is not None:
                raise self._error
            file = open(self.path if self._done == self.count else self._partial, "rb")  # noqa: SIM115 (the with below)
        with file:
            for start in range(0, self.count, batch_size):
                if should_stop is not None and should_stop():
                    self.stop()
                    raise Cancelled(f"cancelled at image {start} of {self.count}")
                end = min(self.count, start + batch_size)
                with self._changed:
                    self._changed.wait_for(lambda end=end: self._done >= end or self._error is not None)
                    if self._done < end:
                        raise self._error
                file.seek(start * self._item_bytes)  # this reader's own file handle: portable, unlike os.pread
                data = file.read((end - start) * self._item_bytes)
                yield np.frombuffer(data, np.uint8).reshape(end - start, self.size, self.size, 3)

    def stop(self) -> None:
        """Stop decoding (when it is not finished): the partial file is removed, and the next request
        for these images starts over."""
        self._stopping = True

    @property
    def usable(self) -> bool:
        """False once decoding failed, or when the finished file has since been removed."""
        return self._error is None and (self._done < self.count or self.complete)

    def _decode(self, partial) -> None:
        """Decode every image in threads, appending them in order to the `partial` file, then publish it."""
        try:
            with partial as file, ThreadPoolExecutor(DECODE_THREADS) as pool:
                pending: deque = deque()
                try:
                    for path in self._paths:
                        pending.append(pool.submit(_load, path, self.size))
                        if len(pending) > _AHEAD:
                            self._write(file, pending.popleft().result())
                    while pending:
                        self._write(file, pending.popleft().result())
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # the images queued ahead are not decoded for nothing
                    raise
        except BaseException as error:  # reported to the reader at the image it stopped on
            with self._changed:
                self._partial.unlink(missing_ok=True)
                self._error = error
                self._changed.notify_all()

    def _write(self, file, image: np.ndarray) -> None:
        if self._stopping:
            raise Cancelled(f"decoding stopped at image {self._done} of {self.count}")
        file.write(image.tobytes())
        with self._changed:
            self._done += 1
            if self._done == self.count:
                self._partial.replace(self.path)  # only a complete file is ever found by its name
            self._changed.notify_all()


def _load(path: Path, size: int) -> np.ndarray:
    try:
        return load_image(path, size)
    except ImageProblem as problem:  # the dataset was checked when loaded: the file changed since
        raise ImageProblem(f"{path}: {problem.reason}") from None


_registry: dict[Path, DecodedImages] = {}
_registry_lock = threading.Lock()


def decoded_images(dataset: Dataset, size: int) -> DecodedImages:
    """The images of `dataset` at `size`: from the cache, being decoded, or starting to decode now."""
    path = paths.decoded_images(dataset.fingerprint, size)
    with _registry_lock:
        images = _registry.get(path)
        if images is None or not images.usable:
            images = _registry[path] = DecodedImages(dataset, size)
        return images
