"""A complete model per result: uint8 RGB images in, class probabilities out, one Keras file.

The model's own `preprocess_input` is rebuilt from Keras' built-in layers (`Rescaling`, `Normalization`,
and a fixed 1x1 convolution for Caffe's RGB-to-BGR swap), so the saved file holds no `Lambda` layer and
no custom object: `keras.saving.load_model(path)` reads it in safe mode, in a process that does not have
this project. `tests/test_complete.py` checks each mode against the module's own `preprocess_input`.

    images (uint8) -> preprocessing -> frozen base (pooled features) -> dropout -> dense softmax

A frozen result's complete model is its base and its trained head (`complete_model`); a fine-tuned one
is saved whole (`ModelResult.model_path`). `load_complete` returns either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.records import ModelResult
from core.zoo import ModelRef

HEAD_LAYER = "classes"  # the dense softmax layer of a complete model
BASE_LAYER = "base"
_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # Keras' "caffe" mode
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)  # Keras' "torch" mode, on pixels scaled to [0, 1]
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def preprocessing_layers(mode: str) -> list:
    """Keras layers that do what `imagenet_utils.preprocess_input(x, mode=mode)` does to float RGB 0-255.

    The first layer also casts the uint8 input to float32. Mode "none" (the model rescales inside itself)
    only casts.
    """
    import keras

    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")]
    if mode == "torch":
        variance = [std**2 for std in _IMAGENET_STD_RGB]
        return [
            keras.layers.Rescaling(1 / 255, name="preprocess"),
            keras.layers.Normalization(mean=_IMAGENET_MEAN_RGB, variance=variance, name="preprocess_normalize"),
        ]
    if mode == "caffe":  # RGB -> BGR and minus the mean, as one fixed 1x1 convolution (exact: weights 0 and 1)
        swap = keras.layers.Conv2D(3, 1, name="preprocess_bgr", trainable=False)
        swap.build((None, None, None, 3))
        swap.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3), -np.float32(_IMAGENET_MEAN_BGR)])
        return [keras.layers.Rescaling(1.0, name="preprocess"), swap]
    if mode == "none":
        return [keras.layers.Rescaling(1.0, name="preprocess")]
    raise ValueError(f"mode must be one of 'tf', 'torch', 'caffe', 'none'. Received: mode={mode!r}")


def complete_model(ref: ModelRef, kernel: np.ndarray, bias: np.ndarray, dropout: float = 0.2, base=None):
    """The base of `ref` (built, or `base`) with the head `softmax(features @ kernel + bias)` on top.

    `dropout` sits before the head (it does nothing at inference; fine-tuning trains through it).
    """
    import keras

    kernel, bias = np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
    if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
        raise ValueError(
            f"The head needs a kernel (features, classes) and a bias (classes,). "
            f"Received: kernel={kernel.shape}, bias={bias.shape}"
        )
    base = base or ref.build()
    base.name = BASE_LAYER  # one name whatever the architecture, so fine-tuning finds it
    images = keras.Input((ref.size, ref.size, 3), dtype="uint8", name="images")
    x = images
    for layer in preprocessing_layers(ref.spec.family.preprocessing.mode):
        x = layer(x)
    features = base(x)
    if features.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"{ref.id} gives {features.shape[-1]} features; the head expects {kernel.shape[0]}. "
            f"Received: kernel={kernel.shape}"
        )
    head = keras.layers.Dense(kernel.shape[1], activation="softmax", name=HEAD_LAYER)
    probabilities = head(keras.layers.Dropout(dropout, name="dropout")(features))
    head.set_weights([kernel, bias])
    return keras.Model(images, probabilities, name="transferbench")


def load_complete(result: ModelResult):
    """The complete Keras model of a stored result: the saved fine-tuned model, or base + trained head."""
    import keras

    if result.model_path:
        return keras.saving.load_model(result.model_path)
    if not result.head_path or not Path(result.head_path).exists():
        raise FileNotFoundError(
            f"The trained head of {result.model} is missing. Received: head_path={result.head_path}"
        )
    head = keras.saving.load_model(result.head_path)
    kernel, bias = head.layers[-1].get_weights()
    return complete_model(ModelRef.parse(result.network, result.input_size, result.weights), kernel, bias)


def head_arrays(model) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of a complete model's head."""
    kernel, bias = model.get_layer(HEAD_LAYER).get_weights()
    return np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
