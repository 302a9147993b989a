"""Time the Embeddings page's work at 70,000 vectors: a neighbour query, the map, the export and the health graph.

    python bench/embeddings.py [--images 70000] [--dim 1024] [--classes 10] [--graph]

The vectors are synthetic: `--classes` Gaussian clusters in `--dim` dimensions (non-negative, as pooled ReLU
features are), the size of Fashion-MNIST's 70,000 images through a 1,024-feature base (MobileNet). Prints one
line per step with its time in seconds. `--graph` also times the exact leave-one-out neighbour graph of every
image (the data-health lists and kNN accuracy), which is O(n^2 d).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import embeddings, projection  # noqa: E402
from core.embeddings import Embeddings  # noqa: E402


def synthetic(images: int, dim: int, classes: int, seed: int = 0) -> Embeddings:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, images)
    centres = rng.gamma(1.0, 1.0, (classes, dim)).astype(np.float32)
    vectors = np.maximum(centres[labels] + rng.normal(0, 0.8, (images, dim)).astype(np.float32), 0)
    return Embeddings(
        model="synthetic",
        classes=[f"class {c}" for c in range(classes)],
        paths=[Path(f"{i:05d}.png") for i in range(images)],
        files=[f"train/{labels[i]}/{i:05d}.png" for i in range(images)],
        splits=["train"] * images,
        labels=labels,
        digests=[str(i) for i in range(images)],
        vectors=vectors,
        unit=embeddings.normalised(vectors),
        source=Path("synthetic.npz"),
    )


def timed(name: str, call):
    started = time.perf_counter()
    result = call()
    print(f"{name:<52} {time.perf_counter() - started:8.3f} s", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=70_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--graph", action="store_true", help="also time the neighbour graph of every image")
    args = parser.parse_args()
    emb = timed(f"make {args.images:,} x {args.dim} vectors", lambda: synthetic(args.images, args.dim, args.classes))
    timed("normalise (once per dataset and model, then kept)", lambda: embeddings.normalised(emb.vectors))
    query = emb.vectors[123]
    timed("first neighbour query, k=10", lambda: embeddings.neighbours_table(emb, query, 10))
    repeats = 20
    timed(f"{repeats} more queries", lambda: [embeddings.neighbours_table(emb, query, 10) for _ in range(repeats)])
    sample = timed(f"map sample ({projection.MAP_POINTS:,} points)", lambda: projection.map_sample(emb.labels))
    timed("map: PCA of the sample", lambda: projection.pca(emb.unit[sample]))
    timed("map: t-SNE of the sample", lambda: projection.tsne(emb.unit[sample]))
    from ui.embeddings import map_figure

    xy = projection.pca(emb.unit[sample])
    figure = timed("map: Plotly figure", lambda: map_figure(emb, sample, xy))
    timed("map: figure as JSON (what goes to the browser)", lambda: len(figure.to_json()))
    size = timed("export: Parquet bytes", lambda: len(embeddings.export_bytes(emb, ".parquet")))
    print(f"{'  Parquet size':<52} {size / 1024**2:8.1f} MB")
    timed("export: .npy bytes", lambda: len(embeddings.export_bytes(emb, ".npy")))
    if args.graph:
        graph = timed("neighbour graph of every image (k=10, exact)", lambda: embeddings.neighbour_graph(emb))
        accuracy = timed("kNN accuracy + health lists", lambda: _health(emb, graph))
        print(f"{'  kNN accuracy':<52} {accuracy:8.3f}")
    return 0


def _health(emb: Embeddings, graph) -> float:
    embeddings.near_duplicates(emb, graph)
    embeddings.likely_mislabelled(emb, graph)
    embeddings.outliers(emb, graph)
    return embeddings.knn_accuracy(emb, graph)


if __name__ == "__main__":
    raise SystemExit(main())
