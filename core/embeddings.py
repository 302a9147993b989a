"""Embeddings: a frozen base's features of every image, as vectors to search, clean and export.

The vectors are the sweep's cached features (`core.features`): one forward pass per image per model,
computed once per dataset fingerprint. Cosine similarity is a dot product of L2-normalised float32 rows;
exact search with numpy is quick up to ~70,000 x 1,024, and the normalised matrix is kept in memory per
dataset and model (`MAX_KEPT` of them), so a rerun does not rebuild it.

From the neighbour graph (each image's `K` nearest others): near-duplicate pairs (beyond byte-identical
files, which the data report finds), likely mislabelled images (most of their neighbours carry one other
label), outliers (far from all their neighbours) and the leave-one-out kNN accuracy of the embedding space.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from core.data import Dataset
from core.features import Extractor, Progress, extract_features
from core.images import load_image
from core.runtimes import RUNTIMES
from core.zoo import ModelRef

K = 10  # neighbours per image for the health checks and kNN accuracy
DUPLICATE_SIMILARITY = 0.95  # cosine at or above which two different files count as near-duplicates
MISLABELLED_SHARE = 0.7  # an image is likely mislabelled when this share of its neighbours carry one other label
OUTLIER_IQR = 1.5  # outliers: mean neighbour similarity below Q1 - this x IQR (Tukey's fence)
MAX_KEPT = 2  # normalised matrices kept in memory (dataset x model)
QUERY_BLOCK = 512  # rows of similarities computed at once for the neighbour graph (512 x 70,000 float32: 143 MB)
EXPORTS = (".parquet", ".npy")


@dataclass
class Embeddings:
    """One vector per usable image of a dataset, in the dataset's order (train, validation, test)."""

    model: str
    classes: list[str]
    paths: list[Path]
    files: list[str]  # relative to the dataset's root, as the data report names them
    splits: list[str]
    labels: np.ndarray  # int class indices
    digests: list[str]  # content digests: equal for byte-identical files
    vectors: np.ndarray  # float32 (n, d): the base's pooled features, as cached
    unit: np.ndarray  # the vectors scaled to length 1: the cosine similarity of two images is a dot product
    source: Path  # the feature cache file they came from

    def __len__(self) -> int:
        return len(self.files)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def class_of(self, index: int) -> str:
        return self.classes[int(self.labels[index])]


_KEPT: OrderedDict[tuple[str, float], Embeddings] = OrderedDict()


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows of `vectors` scaled to unit length, as float32 (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"Expected vectors of shape (n, d). Received: shape={vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


def cached_path(dataset: Dataset, model: str) -> Path | None:
    """The feature cache file of `model` on `dataset`, when some runtime has computed it; else None."""
    ref = ModelRef.parse(model)
    paths = (Extractor(dataset, ref, runtime).cache_path for runtime in RUNTIMES)
    return next((path for path in paths if path.exists()), None)


def load_embeddings(
    dataset: Dataset,
    model: str,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Embeddings:
    """The embeddings of every image of `dataset` by `model`: cached features when any runtime computed
    them, otherwise computed now (and cached) in the fastest runtime that matches TensorFlow."""
    ref = ModelRef.parse(model)
    cached = cached_path(dataset, model)
    runtime = next(r for r in RUNTIMES if Extractor(dataset, ref, r).cache_path == cached) if cached else "auto"
    extractor = Extractor(dataset, ref, runtime)
    path = extractor.cache_path
    key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    if key in _KEPT:
        _KEPT.move_to_end(key)
        return _KEPT[key]
    features = extract_features(dataset, extractor, progress, should_stop)
    records = dataset.images
    vectors = np.concatenate([features.train, features.validation, features.test])
    embeddings = Embeddings(
        model=ref.id,
        classes=list(dataset.classes),
        paths=[record.path for record in records],
        files=[record.path.relative_to(dataset.root).as_posix() for record in records],
        splits=[record.split for record in records],
        labels=np.array([record.label for record in records], np.int64),
        digests=[record.digest for record in records],
        vectors=vectors,
        unit=normalised(vectors),
        source=features.path,
    )
    _KEPT[(str(path), path.stat().st_mtime)] = embeddings
    while len(_KEPT) > MAX_KEPT:
        _KEPT.popitem(last=False)
    return embeddings


# ---------------------------------------------------------------------------------------------------
# Neighbours


@lru_cache(maxsize=MAX_KEPT)
def _frozen_base(model: str):
    from core.runtimes import FrozenBase

    return FrozenBase(ModelRef.parse(model))


def embed_files(model: str, files: list[Path]) -> np.ndarray:
    """Vectors of image files outside the dataset (float32, (n, d)), decoded as the dataset's images are."""
    base = _frozen_base(model)
    return base(np.stack([load_image(path, base.size) for path in files]))


def nearest(unit: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple:
    """The `k` most similar rows of `unit` to each row of `queries` (both unit length), most similar first.

    `exclude[i]`: a row of `unit` never returned for query i (the query itself, for leave-one-out), or -1.
    Returns (indices, similarities), each of shape (len(queries), k).
    """
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    if queries.shape[1] != unit.shape[1]:
        raise ValueError(f"Expected queries of {unit.shape[1]} dimensions. Received: shape={queries.shape}")
    k = min(k, len(unit) - (exclude is not None))
    if k < 1:
        raise ValueError(f"Expected at least one image to search. Received: {len(unit)} image(s)")
    similarities = queries @ unit.T
    if exclude is not None:
        rows = np.flatnonzero(exclude >= 0)
        similarities[rows, exclude[rows]] = -np.inf
    top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    top_similarities = np.take_along_axis(similarities, top, axis=1)
    order = np.argsort(-top_similarities, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_similarities, order, axis=1)


def neighbours_table(embeddings: Embeddings, query: np.ndarray, k: int = K) -> pd.DataFrame:
    """The `k` dataset images most similar to one query vector: rank, file, split, class, similarity."""
    indices, similarities = nearest(embeddings.unit, normalised(np.atleast_2d(query)), k)
    return pd.DataFrame(
        {
            "rank": np.arange(1, indices.shape[1] + 1),
            "file": [embeddings.files[i] for i in indices[0]],
            "split": [embeddings.splits[i] for i in indices[0]],
            "class": [embeddings.class_of(i) for i in indices[0]],
            "similarity": similarities[0].astype(float),
            "index": indices[0],
        }
    )


@dataclass
class Graph:
    """Each image's `k` nearest other images: indices and cosine similarities, shape (n, k), most similar first."""

    indices: np.ndarray
    similarities: np.ndarray


_GRAPHS: OrderedDict[tuple[str, int], tuple[Embeddings, Graph]] = OrderedDict()


def neighbour_graph(embeddings: Embeddings, k: int = K, progress: Callable[[int, int], None] | None = None) -> Graph:
    """Exact leave-one-out neighbours of every image (blocks of `QUERY_BLOCK` rows), kept with the embeddings."""
    key = (str(embeddings.source), k)
    if key in _GRAPHS and _GRAPHS[key][0] is embeddings:
        return _GRAPHS[key][1]
    unit, n = embeddings.unit, len(embeddings)
    indices = np.empty((n, min(k, n - 1)), np.int64)
    similarities = np.empty(indices.shape, np.float32)
    for start in range(0, n, QUERY_BLOCK):
        rows = np.arange(start, min(start + QUERY_BLOCK, n))
        indices[rows], similarities[rows] = nearest(unit, unit[rows], k, exclude=rows)
        if progress:
            progress(rows[-1] + 1, n)
    _GRAPHS[key] = (embeddings, Graph(indices, similarities))
    while len(_GRAPHS) > MAX_KEPT:
        _GRAPHS.popitem(last=False)
    return _GRAPHS[key][1]


# ---------------------------------------------------------------------------------------------------
# Data health


def knn_accuracy(embeddings: Embeddings, graph: Graph) -> float:
    """Leave-one-out kNN accuracy: each image gets the class with the largest summed similarity among its
    neighbours (itself excluded); the share that gets its own label."""
    return float((knn_predictions(embeddings, graph) == embeddings.labels).mean())


def knn_predictions(embeddings: Embeddings, graph: Graph) -> np.ndarray:
    votes = np.zeros((len(embeddings), len(embeddings.classes)), np.float64)
    rows = np.repeat(np.arange(len(embeddings)), graph.indices.shape[1])
    np.add.at(votes, (rows, embeddings.labels[graph.indices].ravel()), np.maximum(graph.similarities.ravel(), 0))
    return votes.argmax(axis=1)


def near_duplicates(embeddings: Embeddings, graph: Graph, threshold: float = DUPLICATE_SIMILARITY) -> pd.DataFrame:
    """Pairs of different, not byte-identical files at cosine >= `threshold`, most similar first."""
    pairs = {}
    for a, b in zip(*np.nonzero(graph.similarities >= threshold), strict=True):
        i, j = sorted((int(a), int(graph.indices[a, b])))
        if embeddings.digests[i] != embeddings.digests[j]:
            pairs[i, j] = float(graph.similarities[a, b])
    ordered = sorted(pairs.items(), key=lambda item: -item[1])
    return pd.DataFrame(
        {
            "file": [embeddings.files[i] for (i, _), _ in ordered],
            "similar file": [embeddings.files[j] for (_, j), _ in ordered],
            "similarity": [similarity for _, similarity in ordered],
            "class": [embeddings.class_of(i) for (i, _), _ in ordered],
            "similar class": [embeddings.class_of(j) for (_, j), _ in ordered],
            "split": [embeddings.splits[i] for (i, _), _ in ordered],
            "similar split": [embeddings.splits[j] for (_, j), _ in ordered],
            "index": [i for (i, _), _ in ordered],
            "similar index": [j for (_, j), _ in ordered],
        },
        columns=_DUPLICATE_COLUMNS,
    )


_DUPLICATE_COLUMNS = (
    *("file", "similar file", "similarity", "class", "similar class", "split", "similar split", "index"),
    "similar index",
)


def likely_mislabelled(embeddings: Embeddings, graph: Graph, share: float = MISLABELLED_SHARE) -> pd.DataFrame:
    """Images whose neighbours mostly (at least `share` of them) carry one other label, surest first."""
    neighbour_labels = embeddings.labels[graph.indices]
    counts = np.stack([(neighbour_labels == c).sum(axis=1) for c in range(len(embeddings.classes))], axis=1)
    counts[np.arange(len(embeddings)), embeddings.labels] = -1  # the majority among the *other* labels
    other = counts.argmax(axis=1)
    agreement = counts.max(axis=1) / graph.indices.shape[1]
    flagged = np.flatnonzero(agreement >= share)
    flagged = flagged[np.argsort(-agreement[flagged], kind="stable")]
    return pd.DataFrame(
        {
            "file": [embeddings.files[i] for i in flagged],
            "class": [embeddings.class_of(i) for i in flagged],
            "neighbours' class": [embeddings.classes[other[i]] for i in flagged],
            "share of neighbours": agreement[flagged].astype(float),
            "split": [embeddings.splits[i] for i in flagged],
            "index": flagged,
        }
    )


def outliers(embeddings: Embeddings, graph: Graph, fence: float = OUTLIER_IQR) -> pd.DataFrame:
    """Images whose mean similarity to their neighbours is below Tukey's lower fence, farthest first."""
    closeness = graph.similarities.mean(axis=1)
    q1, q3 = np.quantile(closeness, [0.25, 0.75])
    flagged = np.flatnonzero(closeness < q1 - fence * (q3 - q1))
    flagged = flagged[np.argsort(closeness[flagged], kind="stable")]
    return pd.DataFrame(
        {
            "file": [embeddings.files[i] for i in flagged],
            "class": [embeddings.class_of(i) for i in flagged],
            "mean neighbour similarity": closeness[flagged].astype(float),
            "dataset median": float(np.median(closeness)),
            "split": [embeddings.splits[i] for i in flagged],
            "index": flagged,
        }
    )


# ---------------------------------------------------------------------------------------------------
# Export


def table(embeddings: Embeddings) -> pd.DataFrame:
    """One row per image: file, split, class and its vector (a float32 array)."""
    return pd.DataFrame(
        {
            "file": embeddings.files,
            "split": embeddings.splits,
            "class": [embeddings.classes[label] for label in embeddings.labels],
            "vector": list(embeddings.vectors),
        }
    )


def write_parquet(embeddings: Embeddings, target: str | Path | BinaryIO) -> None:
    """Parquet: file, split, class (strings) and vector (a fixed-size list of float32), in the dataset's order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.vectors.ravel(), pa.float32()), embeddings.dim)
    columns = {
        "file": pa.array(embeddings.files, pa.string()),
        "split": pa.array(embeddings.splits, pa.string()),
        "class": pa.array([embeddings.classes[label] for label in embeddings.labels], pa.string()),
        "vector": vectors,
    }
    metadata = {"model": embeddings.model, "classes": ",".join(embeddings.classes)}
    pq.write_table(pa.table(columns).replace_schema_metadata(metadata), target)


def export_bytes(embeddings: Embeddings, suffix: str) -> bytes:
    """The embeddings as a Parquet file or a NumPy `.npy` matrix (n, d) float32, as bytes for a download."""
    buffer = io.BytesIO()
    if suffix == ".parquet":
        write_parquet(embeddings, buffer)
    elif suffix == ".npy":
        np.save(buffer, embeddings.vectors.astype(np.float32))
    else:
        raise ValueError(f"Expected an export format in {EXPORTS}. Received: {suffix!r}")
    return buffer.getvalue()


def write_export(embeddings: Embeddings, out: Path) -> list[Path]:
    """Write `out` (.parquet, or .npy with a `.csv` beside it naming each row's file, split and class)."""
    suffix = out.suffix.lower()
    if suffix not in EXPORTS:
        raise ValueError(f"Expected an output file ending in {' or '.join(EXPORTS)}. Received: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(export_bytes(embeddings, suffix))
    if suffix == ".parquet":
        return [out]
    rows = out.with_suffix(".csv")
    table(embeddings).drop(columns="vector").rename_axis("row").to_csv(rows)
    return [out, rows]
