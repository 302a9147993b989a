"""The export formats, as one registry of data: file name, label, runtime, precision, how to write and load it.

Every format is written from the complete Keras model (`core.complete`: uint8 RGB images in, class
probabilities out, preprocessing inside), so each file takes the same raw pixels the app does:

| format | file | runtime |
| --- | --- | --- |
| keras | model.keras | Keras |
| saved_model | saved_model/ (and saved_model.zip) | TensorFlow (`tf.saved_model.load`, TF Serving) |
| tflite_float32, tflite_float16, tflite_int8 | model_*.tflite | LiteRT (TFLite interpreter) |
| onnx_float32, onnx_int8 | model*.onnx | ONNX Runtime |

The int8 formats are calibrated on the user's own training images: LiteRT's full-integer quantization
(uint8 pixels in, float probabilities out) and ONNX Runtime's static QDQ quantization (per channel).
float16 stores the weights in half precision: its probabilities differ from float32's by up to ~2e-2
(measured 1.9e-2 on cats-and-dogs), so it is held, like int8, to the accuracy rather than the probabilities.

Each format's `code` is a few lines that load the file in its own runtime, without this project, and
turn `images` (uint8, (n, size, size, 3)) into `probabilities`; the model card shows them and the tests
run them as written in a fresh process. `load` is the same for this process: a predictor used to
re-score an export.
"""

from __future__ import annotations

import functools
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.runtimes import ONNX_THREADS, quiet

ALL = "all"  # every format
CALIBRATION_BATCH = 8  # images per ONNX Runtime calibration batch
CALIBRATION_KEPT_OUTPUTS = 16  # batches of intermediate tensors ONNX Runtime holds before it reduces them

Predictor = Callable[[np.ndarray], np.ndarray]  # uint8 images (n, size, size, 3) -> probabilities (n, classes)

_KERAS_CODE = """\
import keras

model = keras.saving.load_model("{file}")
probabilities = model.predict(images, verbose=0)  # images: uint8 RGB, shape (n, {size}, {size}, 3)
"""
_SAVED_MODEL_CODE = """\
import tensorflow as tf

serve = tf.saved_model.load("{file}").signatures["serving_default"]
probabilities = serve(images=tf.constant(images))["output_0"].numpy()  # images: uint8 RGB (n, {size}, {size}, 3)
"""
_TFLITE_CODE = """\
import numpy as np
import tensorflow as tf

interpreter = tf.lite.Interpreter(model_path="{file}")
interpreter.allocate_tensors()
pixels, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
probabilities = []
for image in images:  # images: uint8 RGB, shape (n, {size}, {size}, 3), one at a time
    interpreter.set_tensor(pixels["index"], image[None])
    interpreter.invoke()
    probabilities.append(interpreter.get_tensor(output["index"])[0])
probabilities = np.array(probabilities)
"""
_ONNX_CODE = """\
import onnxruntime

session = onnxruntime.InferenceSession("{file}", providers=["CPUExecutionProvider"])
probabilities = session.run(None, {{"images": images}})[0]  # images: uint8 RGB, shape (n, {size}, {size}, 3)
"""


class Source:
    """What the formats are written from: the complete model, calibration images, and the intermediate
    files several formats share (a SavedModel for LiteRT, a float ONNX graph for int8), made once each in
    `workdir`."""

    def __init__(self, model: Any, calibration: np.ndarray, workdir: Path):
        self.model, self.calibration, self.workdir = model, calibration, workdir

    @functools.cached_property
    def saved_model(self) -> Path:
        path = self.workdir / "saved_model"
        with quiet():
            self.model.export(str(path), format="tf_saved_model", verbose=False)
        return path

    @functools.cached_property
    def onnx(self) -> Path:
        import tensorflow as tf

        path = self.workdir / "model.onnx"
        size = self.model.input_shape[1]
        with quiet():
            signature = [tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")]
            self.model.export(str(path), format="onnx", verbose=False, input_signature=signature)
        return path


@dataclass(frozen=True)
class ExportFormat:
    """One export format: where it is written, what runs it, and how."""

    name: str
    file_name: str  # in the export folder; a folder for SavedModel
    label: str
    runtime: str
    precision: str  # "float32", "float16" or "int8": how close to the in-app probabilities it can be
    write: Callable[[Source, Path], None]  # writes the format at a path (the export renames it into place)
    load: Callable[[Path], Predictor]  # for re-scoring in this process
    code: str  # loads `file_name` and computes `probabilities` from `images`: {file} and {size} to fill

    @property
    def folder(self) -> bool:
        """Written as a folder (delivered as a .zip of it)."""
        return "." not in self.file_name

    @property
    def download(self) -> str:
        """The one file a user downloads."""
        return f"{self.file_name}.zip" if self.folder else self.file_name

    def load_code(self, size: int) -> str:
        """How to load this format, in a few lines that work as written beside the file."""
        return self.code.format(file=self.file_name, size=size)


@dataclass
class FormatReport:
    """One format of an export: its file, and how it scores when re-run in its own runtime on the test images."""

    format: str
    label: str
    runtime: str
    precision: str
    file: str  # in the export folder
    download: str  # the one file to download (a .zip of a folder)
    code: str  # how to load it: a few lines, run beside the file, `images` -> `probabilities`
    size_bytes: int | None = None  # of the download: the file, or the folder's .zip
    test_accuracy: float | None = None  # re-scored in its own runtime
    accuracy_change: float | None = None  # versus the sweep's stored test accuracy (0.01: one point)
    max_probability_difference: float | None = None  # versus the in-app model, relative to its largest probability
    latency_ms: float | None = None  # batch 1 on this host: the median of repeated calls
    latency_iqr_ms: float | None = None  # the spread of those calls
    flagged: bool = False  # its accuracy dropped more than a point below the sweep's
    error: str | None = None  # why it could not be written or re-scored

    @classmethod
    def of(cls, export: ExportFormat, size: int) -> FormatReport:
        """A format's entry before anything is written."""
        return cls(
            export.name,
            export.label,
            export.runtime,
            export.precision,
            export.file_name,
            export.download,
            export.load_code(size),
        )


def parse_formats(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """Format names from a list or a comma-separated string, in registry order; "all" means every format."""
    items = names.split(",") if isinstance(names, str) else [part for name in names for part in name.split(",")]
    wanted = {item.strip() for item in items if item.strip()}
    unknown = sorted(wanted - set(FORMATS) - {ALL})
    if unknown or not wanted:
        what = f"Unknown export format {', '.join(map(repr, unknown))}" if unknown else "No export format given"
        known = ", ".join(FORMATS)
        raise ValueError(f"{what}. Known formats: {known}, or '{ALL}'. Received: formats={names!r}")
    return list(FORMATS) if ALL in wanted else [name for name in FORMATS if name in wanted]


def _write_keras(source: Source, path: Path) -> None:
    source.model.save(str(path))


def _write_saved_model(source: Source, path: Path) -> None:
    shutil.copytree(source.saved_model, path)


def _write_onnx(source: Source, path: Path) -> None:
    shutil.copyfile(source.onnx, path)


def _write_tflite(source: Source, path: Path, quantization: str) -> None:
    """Convert the SavedModel to LiteRT: plain float32, float16 weights, or full-integer int8."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model))
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":  # uint8 pixels stay the input; the output stays float probabilities
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in source.calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    with quiet():
        path.write_bytes(converter.convert())


def _write_onnx_int8(source: Source, path: Path) -> None:
    """ONNX Runtime's static quantization (QDQ, int8 weights per channel, uint8 activations)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = source.calibration

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches: Iterator[np.ndarray] = (
                calibration[start : start + CALIBRATION_BATCH]
                for start in range(0, len(calibration), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    prepared = source.workdir / "model-prepared.onnx"
    with quiet():
        quant_pre_process(str(source.onnx), str(prepared))
        quantize_static(
            str(prepared),
            str(path),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"CalibMaxIntermediateOutputs": CALIBRATION_KEPT_OUTPUTS},
        )


def _load_keras(path: Path) -> Predictor:
    import keras

    model = keras.saving.load_model(str(path))
    return lambda images: np.asarray(model.predict_on_batch(images))


def _load_saved_model(path: Path) -> Predictor:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda images: serve(images=tf.constant(images))["output_0"].numpy()


def _load_tflite(path: Path) -> Predictor:
    """The LiteRT interpreter at batch 1, as a device runs it: one image per call."""
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter's notice that LiteRT's own package will replace it
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=ONNX_THREADS)
    interpreter.allocate_tensors()
    pixels, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def predict(images: np.ndarray) -> np.ndarray:
        rows = []
        for image in images:
            interpreter.set_tensor(pixels["index"], image[None])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(output["index"])[0])
        return np.array(rows, np.float32)

    return predict


def _load_onnx(path: Path) -> Predictor:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = ONNX_THREADS
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images})[0]


FORMATS: dict[str, ExportFormat] = {
    export.name: export
    for export in (
        ExportFormat("keras", "model.keras", "Keras", "Keras", "float32", _write_keras, _load_keras, _KERAS_CODE),
        ExportFormat(
            "saved_model",
            "saved_model",
            "TensorFlow SavedModel",
            "TensorFlow",
            "float32",
            _write_saved_model,
            _load_saved_model,
            _SAVED_MODEL_CODE,
        ),
        *(
            ExportFormat(
                f"tflite_{precision}",
                f"model_{precision}.tflite",
                f"LiteRT (TFLite) {precision}",
                "LiteRT",
                precision,
                functools.partial(_write_tflite, quantization=precision),
                _load_tflite,
                _TFLITE_CODE,
            )
            for precision in ("float32", "float16", "int8")
        ),
        ExportFormat(
            "onnx_float32", "model.onnx", "ONNX float32", "ONNX Runtime", "float32", _write_onnx, _load_onnx, _ONNX_CODE
        ),
        ExportFormat(
            "onnx_int8",
            "model_int8.onnx",
            "ONNX int8",
            "ONNX Runtime",
            "int8",
            _write_onnx_int8,
            _load_onnx,
            _ONNX_CODE,
        ),
    )
}
