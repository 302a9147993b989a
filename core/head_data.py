"""A head's examples as `tf.data`, from features in memory or on disk: the same batches in the same order.

In memory, the training examples are shuffled whole (a shuffle buffer of every example, reshuffled each
epoch from the seed). On disk the same seeded shuffle runs over the rows' indices instead: a shuffle's order
depends only on its seed and length, not on what it shuffles, so each batch of indices names the rows the
in-memory batch holds, and those rows are read from the cache file (`FeatureRows.take`). A head trained from
disk is therefore the head trained in memory, while only a few batches of features are in memory at a time
(with the shuffled indices and the labels: a few hundred bytes per image, against 1 to 10 KB of features).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.feature_file import FeatureRows
from core.features import FeatureSet

VALIDATION_BATCH = 1024
PREFETCH = 2  # batches read from disk ahead of the training step


def training_batches(features: FeatureSet, batch_size: int, seed: int, class_weights: tuple[float, ...] | None):
    """`(features, labels[, sample weights])` batches of the training set, reshuffled every epoch from `seed`
    (with the global seed that `keras.utils.set_random_seed` sets: the same orders every time)."""
    import tensorflow as tf

    count = len(features.train)
    weights = np.asarray(class_weights, np.float32)[features.train_labels] if class_weights else None
    if features.in_memory:
        examples = (features.train, features.train_labels) + ((weights,) if class_weights else ())
        shuffled = tf.data.Dataset.from_tensor_slices(examples).shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return shuffled.batch(batch_size)
    indices = tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    columns = [_rows(features.train), _gather(features.train_labels)] + ([_gather(weights)] if class_weights else [])
    return indices.map(lambda index: tuple(column(index) for column in columns)).prefetch(PREFETCH)


def validation_batches(features: FeatureSet):
    """`(features, labels)` batches of the validation set, in order; kept after the first epoch when in memory."""
    import tensorflow as tf

    if features.in_memory:
        examples = (features.validation, features.validation_labels)
        return tf.data.Dataset.from_tensor_slices(examples).batch(VALIDATION_BATCH).cache()
    rows, labels = _rows(features.validation), _gather(features.validation_labels)
    indices = tf.data.Dataset.range(len(features.validation)).batch(VALIDATION_BATCH)
    return indices.map(lambda index: (rows(index), labels(index))).prefetch(PREFETCH)


def _gather(values: np.ndarray) -> Callable:
    import tensorflow as tf

    table = tf.constant(values)
    return lambda index: tf.gather(table, index)


def _rows(source: FeatureRows) -> Callable:
    """indices (a 1-D int64 tensor) -> those rows of `source`, read from disk, as a float32 `(len, dim)` tensor."""
    import tensorflow as tf

    shape = [None, source.dim]
    return lambda index: tf.ensure_shape(tf.numpy_function(source.take, [index], tf.float32), shape)
