"""The features cache file: an uncompressed `.npz` written batch by batch, its matrix read row by row.

The file is what `np.savez` writes (a zip of `.npy` members, stored uncompressed), so caches written before
this module read the same way. `FeatureWriter` writes the `features` member as the forward pass produces
its rows, so the matrix is never whole in memory; `open_features` finds where that member's rows begin in
the file, and `FeatureRows` reads any rows from there with `os.pread`, without mapping the file: reading
every row once (a head's epoch) leaves no more memory in use than one batch.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

MATRIX = "features"  # the member holding the (images, feature_dim) matrix
STORED_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: signature ... name and extra lengths
_LOCAL_SIGNATURE = b"PK\x03\x04"


@dataclass(frozen=True)
class FeatureRows:
    """Rows `start:stop` of the features matrix in a cache file, read from disk when asked for, as float32.

    Slicing gives fewer rows, still on disk; `take` and `batches` read some; `np.asarray` reads them all.
    """

    path: Path
    offset: int  # where row 0 of the matrix begins in the file, in bytes
    dtype: np.dtype  # as stored: float32, or float16 for large matrices
    dim: int
    start: int
    stop: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.stop - self.start, self.dim)

    ndim = 2

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def row_bytes(self) -> int:
        return self.dim * self.dtype.itemsize

    def __getitem__(self, rows: slice) -> FeatureRows:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"FeatureRows takes a slice of rows with step 1 (`take` reads others). Received: {rows!r}")
        start, stop, _ = rows.indices(len(self))
        return replace(self, start=self.start + start, stop=self.start + max(start, stop))

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The rows at `indices` (relative to `start`), in that order, as a float32 `(len(indices), dim)` array."""
        indices = np.asarray(indices, np.int64)
        if indices.size and not (indices.min() >= 0 and indices.max() < len(self)):
            raise IndexError(f"Row indices must be in [0, {len(self)}). Received: {indices.min()}..{indices.max()}")
        if indices.size and indices[-1] - indices[0] == indices.size - 1 and (np.diff(indices) == 1).all():
            return self.read(int(indices[0]), int(indices[-1]) + 1)  # one run of rows: one read
        raw = np.empty((len(indices), self.dim), self.dtype)
        view, size = memoryview(raw).cast("B"), self.row_bytes
        with self.path.open("rb", buffering=0) as file:
            descriptor = file.fileno()
            for position, row in enumerate(indices.tolist()):
                self._read_into(descriptor, view[position * size : (position + 1) * size], self.start + row)
        return raw.astype(np.float32, copy=False)

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """All the rows in order, `size` at a time, as float32 arrays."""
        for first in range(0, len(self), size):
            yield self.read(first, min(len(self), first + size))

    def read(self, first: int, last: int) -> np.ndarray:
        """Rows `first:last` (relative to `start`), one read from the file, as float32."""
        raw = np.empty((last - first, self.dim), self.dtype)
        with self.path.open("rb", buffering=0) as file:
            self._read_into(file.fileno(), memoryview(raw).cast("B"), self.start + first)
        return raw.astype(np.float32, copy=False)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every row in memory (what a caller that needs them all at once gets, e.g. `np.concatenate`)."""
        rows = self.read(0, len(self))
        return rows if dtype is None else rows.astype(dtype, copy=False)

    def _read_into(self, descriptor: int, buffer: memoryview, row: int) -> None:
        """Fill `buffer` from row `row` on; one call reads at most ~2 GB, so large reads take several."""
        position, filled = self.offset + row * self.row_bytes, 0
        while filled < len(buffer):
            count = os.preadv(descriptor, [buffer[filled:]], position + filled)
            if count == 0:
                raise ValueError(
                    f"{self.path} ends before row {row} of its features: expected {len(buffer)} bytes at {position}, "
                    f"received {filled}"
                )
            filled += count


def open_features(path: Path) -> FeatureRows:
    """Every row of the features matrix of the cache file `path`, left on disk.

    Raises ValueError when the member is missing, compressed, not a float (n, d) matrix in C order, or
    shorter than its header says (a damaged file); zipfile.BadZipFile when the file is no zip."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{MATRIX}.npy")  # KeyError when missing
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{path}: expected the features stored uncompressed. Received: {info.compress_type=}")
        with archive.open(info) as member:
            version = npy.read_magic(member)
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran_order, dtype = read_header(member)
            header_bytes = member.tell()
    if len(shape) != 2 or fortran_order or dtype not in STORED_DTYPES:
        raise ValueError(
            f"{path}: expected a C-order float32 or float16 (images, features) matrix. "
            f"Received: shape={shape}, fortran_order={fortran_order}, dtype={dtype}"
        )
    if info.file_size != header_bytes + shape[0] * shape[1] * dtype.itemsize:
        raise ValueError(f"{path}: the features member holds {info.file_size} bytes, not the {shape} its header says")
    with path.open("rb") as file:
        file.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(file.read(_LOCAL_HEADER.size))
    if signature != _LOCAL_SIGNATURE:
        raise ValueError(f"{path}: expected a zip member header at byte {info.header_offset}. Received: {signature!r}")
    offset = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length + header_bytes
    return FeatureRows(path, offset, dtype, int(shape[1]), 0, int(shape[0]))


class FeatureWriter:
    """Writes a cache file as `np.savez` would, its features matrix `(rows, dim)` appended batch by batch.

    The stored type is chosen at the first batch: float16 when the matrix as float32 would be over
    `float16_from_bytes`, else float32. `close(**arrays)` adds the other (small) arrays and checks that every
    row was written; `abort()` closes what was written without checking (the caller removes the file).
    """

    def __init__(self, path: Path, rows: int, float16_from_bytes: int):
        self.path, self.rows, self.float16_from_bytes = path, rows, float16_from_bytes
        self.written = 0
        self.dtype: np.dtype | None = None
        self._archive = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._member = None

    def write(self, batch: np.ndarray) -> None:
        if batch.ndim != 2 or (self.dtype is not None and batch.shape[1] != self._dim):
            raise ValueError(f"Expected a (rows, features) batch like the first. Received: shape={batch.shape}")
        if self.written + len(batch) > self.rows:
            raise ValueError(f"Expected {self.rows} rows in all. Received: {self.written + len(batch)}")
        if self._member is None:
            self._start(batch.shape[1])
        self._member.write(np.ascontiguousarray(batch, self.dtype).tobytes())
        self.written += len(batch)

    def close(self, **arrays: object) -> None:
        if self.written != self.rows or self._member is None:
            raise ValueError(f"Expected {self.rows} rows of features. Received: {self.written}")
        self._member.close()
        for name, value in arrays.items():
            with self._archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                npy.write_array(member, np.asanyarray(value), allow_pickle=False)
        self._archive.close()

    def abort(self) -> None:
        if self._member is not None:
            self._member.close()
        self._archive.close()

    def _start(self, dim: int) -> None:
        self._dim = dim
        large = self.rows * dim * 4 > self.float16_from_bytes
        self.dtype = STORED_DTYPES[1] if large else STORED_DTYPES[0]
        self._member = self._archive.open(f"{MATRIX}.npy", "w", force_zip64=True)
        header = {"descr": npy.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.rows, dim)}
        npy.write_array_header_1_0(self._member, header)
