"""Training settings of the classification head."""

from __future__ import annotations

from core.train import HeadSettings, head_batch_size


def test_heads_on_few_images_take_smaller_batches():
    settings = HeadSettings()  # batch 64, at least 8 updates per epoch
    assert head_batch_size(2400, settings) == 64  # a full dataset: the batch size as set
    assert head_batch_size(240, settings) == 30 and head_batch_size(80, settings) == 10  # screening subsets
    assert head_batch_size(3, settings) == 1
