"""A frozen base, and the engines that run it: TensorFlow, or the same graph exported to ONNX Runtime.

ONNX Runtime runs the MobileNets several times faster than TensorFlow on a CPU. The exported graph
(uint8 images -> the model's own `preprocess_input` -> the base -> pooled features) is written once per
model, weights and input size, and is only used after its features match TensorFlow's on a calibration
batch. Whenever ONNX cannot be used (a package missing, a failed export, a graph that needs extra inputs,
features that differ), the runtime falls back to TensorFlow and says why in `fallback_reason`.

`ENGINES` is the one registry of engines: every reader (latency, tables, charts, the command line)
iterates it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnxruntime

    from core.zoo import ModelRef

ENGINES = {"tf": "TensorFlow", "onnx": "ONNX Runtime"}  # what can run a frozen base: name -> label
RUNTIMES = ("auto", *ENGINES)  # what a sweep may ask for; "auto": ONNX Runtime where it matches TensorFlow
PARITY_TOLERANCE = 1e-4  # max relative difference of features vs TensorFlow on the calibration batch
ONNX_THREADS = os.cpu_count() or 1  # ONNX Runtime's intra-op threads: every core
_EPS = 1e-12
_REASON_CHARS = 300


class FrozenBase:
    """A built base model and its compiled inference function (`training=False`, any batch size)."""

    def __init__(self, ref: ModelRef):
        import tensorflow as tf

        self.ref, self.size = ref, ref.size
        self.model = ref.build()
        preprocess, model = ref.spec.preprocess_input, self.model

        @tf.function(input_signature=[tf.TensorSpec([None, ref.size, ref.size, 3], tf.uint8)])
        def forward(images):
            return model(preprocess(tf.cast(images, tf.float32)), training=False)

        self._forward = forward

    @property
    def feature_dim(self) -> int:
        return int(self.model.output_shape[-1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (n, size, size, 3), RGB 0-255 -> float32 features (n, feature_dim)."""
        return self._forward(images).numpy()


@dataclass
class Runtime:
    """A callable: uint8 images (n, size, size, 3), RGB 0-255 -> float32 features (n, d)."""

    name: str  # "tf" or "onnx": what actually runs
    fallback_reason: str | None  # why ONNX was requested (or "auto") but TensorFlow runs
    parity: float | None  # measured `relative_difference` vs TensorFlow (None when not checked)
    size: int
    forward: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    device: str = "CPU"  # where it runs: ONNX Runtime on the CPU, TensorFlow on "GPU" when it sees one

    def __call__(self, images: np.ndarray) -> np.ndarray:
        _check_images(images, self.size, "images")
        return self.forward(images)


def relative_difference(features: np.ndarray, reference: np.ndarray) -> float:
    """max |features - reference| / max |reference|: the worst error relative to the features' scale.

    Scaling by the largest reference value (not element by element) keeps features that are ~0, common
    after a ReLU, from turning float rounding into huge ratios.
    """
    if features.shape != reference.shape:
        raise ValueError(f"Feature shapes differ. Expected: {reference.shape}. Received: {features.shape}")
    difference = np.abs(features.astype(np.float64) - reference.astype(np.float64)).max(initial=0.0)
    return float(difference / max(float(np.abs(reference).max(initial=0.0)), _EPS))


def make_runtime(base: FrozenBase, requested: str, calibration: np.ndarray, graph: Path) -> Runtime:
    """The runtime to compute features of `base` with.

    `requested` is one of `RUNTIMES`: "tf" wraps `base`, and so does "auto" when TensorFlow sees a GPU
    (the reason says so); otherwise "onnx" and "auto" export (or reuse) the ONNX
    graph file `graph`, check it against TensorFlow on `calibration` (uint8 images of the base's size)
    and use it when it matches within `PARITY_TOLERANCE`. Otherwise, both fall back to TensorFlow and
    record why in `fallback_reason`: an explicit "onnx" does not raise.
    """
    if requested not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}. Received: runtime={requested}")
    tf_runtime = Runtime("tf", None, None, base.size, base, tf_device())
    if requested == "tf":
        return tf_runtime
    if requested == "auto" and tf_runtime.device == "GPU":
        return _fallback(tf_runtime, "TensorFlow sees a GPU: faster there than ONNX Runtime on the CPU")
    _check_images(calibration, base.size, "calibration")
    if len(calibration) == 0:
        raise ValueError("The calibration batch needs at least one image. Received: 0 images")

    try:
        session = _session(base, graph)
    except ImportError as error:  # onnxruntime, or tf2onnx/onnx for an export
        return _fallback(tf_runtime, f"ONNX packages are not installed ({short_reason(error)})")
    except Exception as error:  # any failure to export or load means: run in TensorFlow
        return _fallback(tf_runtime, short_reason(error))
    inputs = session.get_inputs()
    if len(inputs) != 1:
        extra = ", ".join(item.name for item in inputs if item.name != "images")
        return _fallback(
            tf_runtime, f"the exported graph needs {len(inputs)} inputs, expected 1 (images). Extra inputs: {extra}"
        )

    input_name = inputs[0].name

    def forward(images: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: np.ascontiguousarray(images)})[0]

    try:
        parity = relative_difference(forward(calibration), base(calibration))
    except Exception as error:
        return _fallback(tf_runtime, short_reason(error))
    if not parity <= PARITY_TOLERANCE:  # also catches NaN
        return _fallback(
            tf_runtime,
            f"ONNX features differ from TensorFlow's by {parity:.2e} (relative), "
            f"more than the tolerance {PARITY_TOLERANCE:.0e}",
            parity,
        )
    return Runtime("onnx", None, parity, base.size, forward)


def _session(base: FrozenBase, path: Path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the graph of `base` at `path`, exporting it there first if needed."""
    import onnxruntime

    if not path.exists():
        _export(base, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = ONNX_THREADS
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export(base: FrozenBase, path: Path) -> None:
    """Write uint8 images -> `spec.preprocess_input` -> base model as ONNX, atomically, to `path`."""
    import keras
    import tensorflow as tf

    preprocess = base.ref.spec.preprocess_input
    images = keras.Input((base.size, base.size, 3), dtype="uint8", name="images")
    floats = keras.layers.Lambda(lambda x: preprocess(keras.ops.cast(x, "float32")), name="preprocess")(images)
    model = keras.Model(images, base.model(floats, training=False))

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.onnx")
    try:
        with quiet():
            signature = [tf.TensorSpec([None, base.size, base.size, 3], tf.uint8, name="images")]
            model.export(str(partial), format="onnx", verbose=False, input_signature=signature)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence tf2onnx's logging and warnings during an export (errors still raise).

    TensorFlow's C++ log lines (grappler) obey `TF_CPP_MIN_LOG_LEVEL`, which the app already sets.
    """
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _fallback(tf_runtime: Runtime, reason: str, parity: float | None = None) -> Runtime:
    return Runtime("tf", reason, parity, tf_runtime.size, tf_runtime.forward, tf_runtime.device)


def tf_device() -> str:
    """Where TensorFlow runs a base: "GPU" when it sees one, else "CPU"."""
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def short_reason(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def _check_images(images: np.ndarray, size: int, name: str) -> None:
    expected = f"uint8 array of shape (n, {size}, {size}, 3)"
    shape, dtype = getattr(images, "shape", None), getattr(images, "dtype", type(images).__name__)
    if dtype != np.uint8 or shape is None or len(shape) != 4 or tuple(shape[1:]) != (size, size, 3):
        raise ValueError(f"`{name}` must be a {expected}. Received: {dtype} of shape {shape}")
