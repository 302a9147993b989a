"""Images decoded in threads and handed on batch by batch, never written to disk.

For a size that only one model of a sweep uses (and always on a Ray worker), the decoded pixels are not
worth a file of `size * size * 3` bytes per image (3.4 GB for 70,000 images at 128 px): the forward pass
reads them from here instead. At most `ahead` decoded images are held at a time, so memory does not grow
with the number of images. Decoding starts when the stream is made, while the model is still being built.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from core.data import Dataset
from core.decoded import DECODE_THREADS, _load
from core.progress import Cancelled

AHEAD = 64  # images decoded ahead of the forward pass


class PixelStream:
    """Every image of `dataset` at `size` px as uint8 `(n, size, size, 3)` batches, in `Dataset.images` order."""

    complete = False  # nothing is decoded before it is read (`DecodedImages.complete` may be True)

    def __init__(self, dataset: Dataset, size: int, ahead: int = AHEAD):
        if size < 1 or ahead < 1:
            raise ValueError(f"`size` and `ahead` must be positive. Received: size={size}, ahead={ahead}")
        self.size, self.count = size, len(dataset.images)
        self._paths = [record.path for record in dataset.images]
        self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix=f"stream-{size}")
        self._pending: deque[Future] = deque()
        self._submitted = 0
        while self._submitted < min(ahead, self.count):
            self._submit()

    def batches(self, batch_size: int, should_stop: Callable[[], bool] | None = None) -> Iterator[np.ndarray]:
        """The images in batches; raises a decoding error at its image, and `Cancelled` when `should_stop()`
        is true before a batch. The decoding threads end with the iteration, however it ends."""
        try:
            for start in range(0, self.count, batch_size):
                if should_stop is not None and should_stop():
                    raise Cancelled(f"cancelled at image {start} of {self.count}")
                batch = np.empty((min(self.count, start + batch_size) - start, self.size, self.size, 3), np.uint8)
                for index in range(len(batch)):
                    batch[index] = self._pending.popleft().result()
                    if self._submitted < self.count:
                        self._submit()
                yield batch
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self) -> None:
        self._pending.append(self._pool.submit(_load, self._paths[self._submitted], self.size))
        self._submitted += 1
