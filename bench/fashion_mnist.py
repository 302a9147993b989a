"""Write Fashion-MNIST as folders of PNGs, one folder per class, for the app and for benchmarks.

Run from anywhere (no Keras, no network):

    python bench/fashion_mnist.py OUT [--train N] [--test M] [--seed S] [--source FOLDER]

It reads the four gzip IDX files of Debian's package `dataset-fashion-mnist`
(`apt-get install -y dataset-fashion-mnist`; they land in /usr/share/datasets/fashion-mnist/) and writes
`OUT/train/<class>/<index>.png` and `OUT/test/<class>/<index>.png`: 28x28 8-bit grayscale PNGs, where
<index> is the image's position in its IDX file (zero-padded to 5 digits). `--train N` and `--test M`
keep a seeded, stratified subset (the same share of every class; default: all 60,000 and 10,000 images).
`core.data.load_dataset(OUT)` then uses `test/` as given for the reported score and takes its
validation set from `train/` (a seeded, stratified share), as there is no `validation/` folder.
OUT must not already hold `train/` or `test/`.

Fashion-MNIST is Zalando Research's (https://github.com/zalandoresearch/fashion-mnist), MIT licence.
This script is part of Transfer Bench and likewise under the MIT licence.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_SEED = 1337  # core.config.DEFAULT_SEED
# Folder names of the 10 labels, in label order ("/" cannot be in a folder name, spaces are avoided).
CLASS_NAMES = (
    "T-shirt_top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle_boot",
)
FILES = {  # split -> (images, labels) file names of the IDX release
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write train/ and test/ into (created if missing)")
    parser.add_argument("--train", type=int, metavar="N", help="training images to keep (default: all 60,000)")
    parser.add_argument("--test", type=int, metavar="M", help="test images to keep (default: all 10,000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the subsets (default {DEFAULT_SEED})")
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help=f"folder of the gzip IDX files (default {DEFAULT_SOURCE})"
    )
    return parser.parse_args()


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzip-compressed) as a numpy array of its shape.

    The format: two zero bytes, the type code (0x08 for unsigned bytes), the number of dimensions, each
    dimension as a big-endian 32-bit integer, then the values in row-major order.
    """
    with gzip.open(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UBYTE:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise ValueError(f"{path}: {len(data) - header} values for a shape of {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images of shape (n, 28, 28), labels of shape (n,)) of the "train" or "test" split."""
    images_name, labels_name = FILES[split]
    images, labels = read_idx(source / images_name), read_idx(source / labels_name)
    if images.ndim != 3 or labels.shape != (len(images),) or labels.max() >= len(CLASS_NAMES):
        raise ValueError(f"{source}: unexpected {split} shapes {images.shape} and {labels.shape}")
    return images, labels


def stratified_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` images, the same share of each class (largest remainders get the rest)."""
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = count * sizes / len(labels)
    quotas = np.floor(exact).astype(int)
    leftover = count - quotas.sum()
    quotas[np.argsort(quotas - exact, kind="stable")[:leftover]] += 1  # largest fractional parts first
    picked = [
        rng.choice(np.flatnonzero(labels == label), quota, replace=False)
        for label, quota in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def write_split(out: Path, split: str, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> list[int]:
    """Write the chosen images as `out/split/<class>/<index>.png`; returns the number written per class."""
    for name in CLASS_NAMES:
        (out / split / name).mkdir(parents=True)
    counts = [0] * len(CLASS_NAMES)
    for index in indices:
        label = int(labels[index])
        Image.fromarray(images[index]).save(out / split / CLASS_NAMES[label] / f"{index:05d}.png")
        counts[label] += 1
    return counts


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    if not all((args.source / name).is_file() for names in FILES.values() for name in names):
        sys.exit(
            f"No Fashion-MNIST IDX files in {args.source}: apt-get install -y dataset-fashion-mnist (or --source)."
        )
    existing = [str(args.out / split) for split in FILES if (args.out / split).exists()]
    if existing:
        sys.exit(f"Already there: {', '.join(existing)}. Choose an OUT folder without train/ or test/.")

    wanted = {"train": args.train, "test": args.test}
    # The loader needs 1 test image per class, and 2 training images per class (it takes validation from train/).
    minimum = {"train": 2 * len(CLASS_NAMES), "test": len(CLASS_NAMES)}
    splits = {split: load_split(args.source, split) for split in FILES}
    for split, (_, labels) in splits.items():
        count = wanted[split]
        if count is not None and not minimum[split] <= count <= len(labels):
            sys.exit(f"--{split} must be between {minimum[split]} and {len(labels):,}. Received: {count}")

    for split, (images, labels) in splits.items():
        count = len(labels) if wanted[split] is None else wanted[split]
        counts = write_split(args.out, split, images, labels, stratified_subset(labels, count, args.seed))
        print(f"{args.out / split}: {sum(counts):,} PNGs, {min(counts):,}-{max(counts):,} per class", flush=True)

    seconds = time.perf_counter() - started
    print(f"Wrote {len(CLASS_NAMES)} class folders per split in {seconds:.1f} s (seed {args.seed}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
