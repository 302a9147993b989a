"""Grad-CAM (Selvaraju et al., 2017): where a complete model looked to score a class, as a heat map.

On the complete model of a result (`core.complete`: uint8 images -> preprocessing -> base -> dropout ->
dense "classes"), the class score is the logit `features @ kernel + bias` before the softmax. Its gradient
with respect to the base's last 4-D feature map, averaged over the map's positions, weighs each channel;
the weighted sum of the channels, clipped at zero, is upsampled to the image's own size and scaled to sum
to 1, so a region's share of the heat is a number between 0 and 1.

A base without a 4-D feature map, or whose last one is a single position (a tiny input size), has
nothing to localise: `feature_map_layer` says why, as `GradCamUnavailable`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.complete import BASE_LAYER, head_arrays
from core.images import resized


class GradCamUnavailable(ValueError):
    """The model has no spatial feature map to explain its score with; the message says why."""


def feature_map_layer(base) -> str:
    """The name of the base's last layer whose output is a 4-D feature map with more than one position."""
    for layer in reversed(base.layers):
        shape = getattr(layer, "output", None) is not None and tuple(layer.output.shape)
        if shape and len(shape) == 4:
            if shape[1] == shape[2] == 1:
                raise GradCamUnavailable(
                    f"The last feature map of {base.name} is 1x1 at this input size: no positions to weigh. "
                    f"Received: layer {layer.name} with output shape {shape}"
                )
            return layer.name
    raise GradCamUnavailable(f"{base.name} has no 4-D convolutional feature map. Received: {len(base.layers)} layers")


def heatmap(model, image: Image.Image, class_index: int | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM of `model` (a complete model) on `image` for `class_index` (default: the predicted class).

    Returns the heat map, float32 of the image's own (height, width), non-negative and summing to 1 (a
    uniform map when no position raises the score), and the class it explains.
    """
    import tensorflow as tf

    base = model.get_layer(BASE_LAYER)
    inner = _inner(base)
    kernel, bias = head_arrays(model)
    size = int(model.input_shape[1])
    pixels = tf.constant(resized(image, size)[None])
    x = pixels
    for layer in model.layers[1 : model.layers.index(base)]:  # the preprocessing layers, in order
        x = layer(x)
    with tf.GradientTape() as tape:
        feature_map, features = inner(x, training=False)
        logits = tf.matmul(features, kernel) + bias
        chosen = int(tf.argmax(logits[0])) if class_index is None else class_index
        if not 0 <= chosen < kernel.shape[1]:
            raise ValueError(f"Expected a class index from 0 to {kernel.shape[1] - 1}. Received: {class_index}")
        score = logits[0, chosen]
    gradients = tape.gradient(score, feature_map)[0].numpy()
    weights = gradients.mean(axis=(0, 1))
    cam = np.maximum((feature_map[0].numpy() * weights).sum(axis=-1), 0).astype(np.float32)
    return _to_image_size(cam, image.size), chosen


def _inner(base):
    """The base as a model with two outputs: its last 4-D feature map and its pooled features."""
    import keras

    return keras.Model(base.inputs, [base.get_layer(feature_map_layer(base)).output, base.output])


def _to_image_size(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`cam` resized (bilinear) to `size` (width, height), non-negative, summing to 1."""
    if cam.max() <= 0:
        cam = np.ones_like(cam)
    upsampled = np.asarray(Image.fromarray(cam, mode="F").resize(size, Image.BILINEAR), np.float32)
    upsampled = np.maximum(upsampled, 0)
    return upsampled / upsampled.sum()


def overlay(image: Image.Image, heat: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """`image` with `heat` (as `heatmap` returns it) laid over it in a blue-to-red scale."""
    if heat.shape != (image.height, image.width):
        raise ValueError(f"Expected a heat map of shape {(image.height, image.width)}. Received: {heat.shape}")
    level = heat / max(float(heat.max()), 1e-12)
    colours = np.stack([level, 1 - np.abs(2 * level - 1), 1 - level], axis=-1)  # blue -> green -> red
    blend = (1 - opacity * level[..., None]) * np.asarray(image.convert("RGB"), np.float32) / 255
    blend += opacity * level[..., None] * colours
    return Image.fromarray((np.clip(blend, 0, 1) * 255).astype(np.uint8))


def share_inside(heat: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The share of the heat inside `box` (left, top, right, bottom) in pixels."""
    left, top, right, bottom = box
    return float(heat[top:bottom, left:right].sum() / heat.sum())
