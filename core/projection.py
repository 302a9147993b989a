"""2-D maps of embeddings: PCA, and t-SNE in plain numpy, on a stratified sample of at most `MAP_POINTS`.

A map of 70,000 points is neither readable nor quick to draw in a browser, so the map shows a seeded
sample that keeps every class in proportion (all points when there are fewer). t-SNE is the exact
algorithm of van der Maaten and Hinton (2008) with PCA initialisation and the learning rate of
Belkin et al. (n / 12 / 4): O(n^2) per iteration, some seconds at `MAP_POINTS` on two cores, and no
dependency beyond numpy.
"""

from __future__ import annotations

import numpy as np

MAP_POINTS = 1_500
METHODS = ("PCA", "t-SNE")
PERPLEXITY = 30.0
TSNE_ITERATIONS = 400
EXAGGERATION = 12.0  # early exaggeration, for the first `EXAGGERATED` iterations
EXAGGERATED = 125
PCA_BEFORE_TSNE = 50  # dimensions kept before the pairwise distances
POWER_ITERATIONS = 4  # of the randomised PCA: enough for the leading components to settle


def map_sample(labels: np.ndarray, max_points: int = MAP_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `max_points` images, each class in proportion (at least one of each)."""
    labels = np.asarray(labels)
    if len(labels) <= max_points:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, round(len(members) * max_points / len(labels)))
        chosen.append(rng.choice(members, min(count, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def pca(vectors: np.ndarray, dims: int = 2) -> np.ndarray:
    """The first `dims` principal components of `vectors`, float32 (n, dims), signs fixed so the result is stable.

    Randomised (Halko et al., 2011: a seeded range finder with power iterations), so that it costs a few
    matrix products of (n, d) by (d, dims + 10) instead of a full (d, d) eigendecomposition.
    """
    x = np.asarray(vectors, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"Expected at least 2 vectors, shape (n, d). Received: shape={x.shape}")
    x = x - x.mean(axis=0)
    dims = min(dims, *x.shape)
    basis = x @ np.random.default_rng(0).standard_normal((x.shape[1], min(dims + 10, *x.shape)))
    for _ in range(POWER_ITERATIONS):
        basis, _ = np.linalg.qr(x @ (x.T @ np.linalg.qr(basis)[0]))
    _, _, vt = np.linalg.svd(np.linalg.qr(basis)[0].T @ x, full_matrices=False)
    components = vt[:dims].T
    components *= np.sign(components[np.abs(components).argmax(axis=0), np.arange(dims)])
    return (x @ components).astype(np.float32)


def tsne(vectors: np.ndarray, seed: int = 0, iterations: int = TSNE_ITERATIONS) -> np.ndarray:
    """A 2-D t-SNE map of `vectors` (n up to a few thousand), float32 (n, 2)."""
    x = pca(vectors, PCA_BEFORE_TSNE).astype(np.float64)
    n = len(x)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points. Received: {n}")
    p = _joint_probabilities(_squared_distances(x), min(PERPLEXITY, (n - 1) / 3)).astype(np.float32)
    exaggerated = p * np.float32(EXAGGERATION)
    y = pca(x, 2).astype(np.float64)
    y *= 1e-4 / max(float(y[:, 0].std()), 1e-12)
    y += np.random.default_rng(seed).normal(0, 1e-6, y.shape)  # ties broken, reproducibly
    rate = max(n / EXAGGERATION / 4, 50.0)
    velocity, gains = np.zeros_like(y), np.ones_like(y)
    for iteration in range(iterations):
        attraction, momentum = (exaggerated, 0.5) if iteration < EXAGGERATED else (p, 0.8)
        points = y.astype(np.float32)
        kernel = np.subtract.outer(points[:, 0], points[:, 0])  # in place: 1 / (1 + d^2), float32
        kernel *= kernel
        across = np.subtract.outer(points[:, 1], points[:, 1])
        across *= across
        kernel += across
        kernel += 1.0
        np.reciprocal(kernel, out=kernel)
        np.fill_diagonal(kernel, 0.0)
        weights = kernel * attraction  # (P - Q) * kernel, with Q = kernel / sum(kernel)
        kernel *= kernel
        kernel *= np.float32(1.0 / (np.sqrt(kernel).sum()))
        weights -= kernel
        gradient = 4.0 * (weights.sum(axis=1, dtype=np.float64)[:, None] * y - (weights @ points).astype(np.float64))
        same = np.sign(gradient) == np.sign(velocity)
        gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), 0.01)
        velocity = momentum * velocity - rate * gains * gradient
        y += velocity
    return (y - y.mean(axis=0)).astype(np.float32)


def _squared_distances(x: np.ndarray) -> np.ndarray:
    squares = (x * x).sum(axis=1)
    distances = x @ x.T
    distances *= -2
    distances += squares[:, None]
    distances += squares[None, :]
    return np.maximum(distances, 0, out=distances)


def _joint_probabilities(distances: np.ndarray, perplexity: float) -> np.ndarray:
    """Symmetric affinities P whose conditional rows have the given perplexity (bisection on each row's
    precision, all rows at once)."""
    n = len(distances)
    target = np.log(perplexity)
    low, high = np.zeros(n), np.full(n, np.inf)
    beta = np.ones(n)
    scale = np.median(distances[distances > 0]) if (distances > 0).any() else 1.0
    distances = distances / scale
    mask = ~np.eye(n, dtype=bool)
    for _ in range(64):
        logits = -distances * beta[:, None]
        logits[~mask] = -np.inf
        logits -= logits.max(axis=1, keepdims=True)
        conditional = np.exp(logits)
        conditional /= conditional.sum(axis=1, keepdims=True)
        entropy = -(conditional * np.log(np.maximum(conditional, 1e-300))).sum(axis=1)
        too_flat = entropy > target  # spread too wide: sharpen
        low = np.where(too_flat, beta, low)
        high = np.where(too_flat, high, beta)
        beta = np.where(np.isinf(high), beta * 2, (low + high) / 2)
        if np.abs(entropy - target).max() < 1e-4:
            break
    joint = conditional + conditional.T
    return np.maximum(joint / joint.sum(), 1e-12)
