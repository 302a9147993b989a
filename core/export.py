"""Export a run's model in every runtime format, each re-scored on the test images in its own runtime.

`export_model` loads the complete model of a stored result (`core.complete`), writes each requested
format (`core.export_formats.FORMATS`) into one folder, loads it back in its own runtime (Keras,
TensorFlow's SavedModel signature, the LiteRT interpreter, ONNX Runtime) and measures, on the run's
test images: accuracy and its change versus the sweep's stored figure, the largest difference of its
probabilities from the in-app model's, and latency at batch 1 on this host. An export whose accuracy
drops more than `FLAG_DROP` is flagged, never hidden; a format that fails is reported with its reason
and the others still export. Beside the files: `labels.txt` and the model card (`core.model_card`).

    <out>/model.keras  saved_model/  saved_model.zip  model_float32.tflite  model_float16.tflite
          model_int8.tflite  model.onnx  model_int8.onnx  labels.txt  model_card.json  model_card.md

Every file is written under a partial name and renamed into place: a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core import paths
from core.complete import load_complete
from core.export_formats import FORMATS, ExportFormat, FormatReport, Predictor, Source, parse_formats
from core.latency import measure_latency
from core.model_card import ModelCard
from core.records import ModelResult, Run
from core.run_data import images, labels, run_dataset
from core.runtimes import relative_difference, short_reason
from core.store import Store

FLAG_DROP = 0.01  # an export whose test accuracy falls more than this (one point) below the sweep's is flagged
CALIBRATION_IMAGES = 200  # training images the int8 formats are calibrated on, spread over the training set
SCORE_BATCH = 32  # test images per call when re-scoring
_EPS = 1e-9

Progress = Callable[[float, str], None]  # (fraction done, what is happening)


@dataclass
class ExportReport:
    """What `export_model` wrote, and how each format scored."""

    run_id: int
    model: str
    out_dir: str
    sweep_accuracy: float  # the stored test accuracy every format is compared with
    in_app_accuracy: float  # the complete model's, in this process, on the same test images
    test_images: int
    formats: list[FormatReport]
    labels: str  # paths of labels.txt and the model card
    card_json: str
    card_markdown: str
    seconds: float

    @property
    def failed(self) -> list[FormatReport]:
        return [entry for entry in self.formats if entry.error is not None]

    def to_dict(self) -> dict:
        return asdict(self)


def export_model(
    run_id: int,
    model: str,
    formats: str | Sequence[str],
    out_dir: str | os.PathLike | None = None,
    store: Store | None = None,
    on_progress: Progress | None = None,
) -> ExportReport:
    """Write `model` of run `run_id` in each of `formats` to `out_dir`, re-score each, and write its model card.

    Args:
        run_id: a run in the store.
        model: the id of one of its trained models, as in its results (e.g. `MobileNet:0.25@128`).
        formats: names of `FORMATS`, a comma-separated string of them, or `"all"`.
        out_dir: the folder to write into (created); default `paths.exports(run_id, model)`.
        store: the store to read the run from; default `Store()`.
        on_progress: called with the fraction done and what is happening.

    Returns:
        An `ExportReport`; formats that failed carry their `error`.

    Raises:
        ValueError: for an unknown format, run or model, an `out_dir` that is a file, or a dataset that
            changed since the sweep.
    """
    started = time.perf_counter()
    names = parse_formats(formats if isinstance(formats, str) else list(formats))
    store = store or Store()
    run, result = _find(store, run_id, model)
    out = Path(out_dir) if out_dir is not None else paths.exports(run_id, result.model)
    if out.exists() and not out.is_dir():
        raise ValueError(f"The export folder is a file. Received: out_dir={str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    steps, done = 2 * len(names) + 2, 0

    def report(text: str) -> None:
        nonlocal done
        if on_progress:
            on_progress(done / steps, text)
        done += 1

    report("loading the dataset and the model")
    dataset = run_dataset(run, result)
    size = result.input_size
    test_images, test_labels = images(dataset.test, size), labels(dataset.test)
    calibration = images(_spread(dataset.train, CALIBRATION_IMAGES), size)
    complete = load_complete(result)
    reference = _in_batches(lambda batch: np.asarray(complete.predict_on_batch(batch)), test_images)
    in_app_accuracy = _accuracy(reference, test_labels)

    with tempfile.TemporaryDirectory(prefix="transferbench-export-") as work:
        source = Source(complete, calibration, Path(work))
        scoring = _Scoring(test_images, test_labels, reference, result.test_accuracy)
        entries = [_export_one(FORMATS[name], source, out, scoring, report) for name in names]

    report("writing labels.txt and the model card")
    exported = datetime.now(UTC).isoformat(timespec="seconds")
    card = ModelCard.of(run, result, dataset.fingerprint, entries, exported)
    written = {
        "labels.txt": "".join(f"{name}\n" for name in result.classes),
        "model_card.json": json.dumps(card.to_dict(), indent=2),
        "model_card.md": card.markdown(),
    }
    for file_name, text in written.items():
        _atomically(out / file_name, lambda partial, text=text: partial.write_text(text))
    report(f"exported to {out}")
    return ExportReport(
        run.id,
        result.model,
        str(out),
        result.test_accuracy,
        in_app_accuracy,
        len(test_labels),
        entries,
        str(out / "labels.txt"),
        str(out / "model_card.json"),
        str(out / "model_card.md"),
        time.perf_counter() - started,
    )


@dataclass(frozen=True)
class _Scoring:
    """What every export is re-scored on and compared with."""

    images: np.ndarray  # the run's test images, uint8
    labels: np.ndarray
    reference: np.ndarray  # the in-app model's probabilities on them
    sweep_accuracy: float


def _export_one(export: ExportFormat, source: Source, out: Path, scoring: _Scoring, report: Progress) -> FormatReport:
    """Write one format, then load it back in its runtime and score it; a failure is recorded, not raised."""
    entry = FormatReport.of(export, scoring.images.shape[1])
    target = out / export.file_name
    report(f"{export.name}: writing {export.file_name}")
    try:
        _atomically(target, lambda partial: export.write(source, partial))
        if export.folder:
            _atomically(out / export.download, lambda partial: _zip(target, partial))
        entry.size_bytes = (out / export.download).stat().st_size
    except Exception as error:  # any failure to convert or write: this format fails alone
        entry.error = f"not written: {short_reason(error)}"
        report(f"{export.name}: failed")
        return entry
    report(f"{export.name}: re-scoring on {len(scoring.labels)} test images in {export.runtime}")
    try:
        predict = export.load(target)
        probabilities = _in_batches(predict, scoring.images)
        latency = measure_latency(predict, scoring.images.shape[1])
    except Exception as error:  # written, but its runtime cannot run it: reported as such
        entry.error = f"written, but {export.runtime} could not run it: {short_reason(error)}"
        return entry
    entry.test_accuracy = _accuracy(probabilities, scoring.labels)
    entry.accuracy_change = entry.test_accuracy - scoring.sweep_accuracy
    entry.max_probability_difference = relative_difference(probabilities, scoring.reference)
    entry.latency_ms, entry.latency_iqr_ms = latency.ms, latency.ms_iqr
    entry.flagged = entry.accuracy_change < -FLAG_DROP - _EPS
    return entry


def _find(store: Store, run_id: int, model: str) -> tuple[Run, ModelResult]:
    """The run and its trained result named `model`; a clear error when either is missing."""
    run = store.run(run_id)
    if run is None:
        known = ", ".join(str(item.id) for item in store.runs(limit=10)) or "none yet"
        raise ValueError(f"There is no run {run_id} in the store (latest runs: {known}). Received: run={run_id}")
    trained = [result for result in store.results(run_id) if isinstance(result, ModelResult)]
    for result in trained:
        if result.model == model.strip():
            return run, result
    names = ", ".join(result.model for result in trained) or "none"
    raise ValueError(
        f"Run {run_id} has no trained model {model!r}. Its trained models: {names}. Received: model={model!r}"
    )


def _spread(records: Sequence, count: int) -> list:
    """At most `count` of `records`, evenly spread over them (every class of a sorted list)."""
    return list(records[:: max(1, len(records) // count)][:count])


def _in_batches(predict: Predictor, pixels: np.ndarray) -> np.ndarray:
    batches = [predict(pixels[start : start + SCORE_BATCH]) for start in range(0, len(pixels), SCORE_BATCH)]
    return np.concatenate(batches).astype(np.float32)


def _accuracy(probabilities: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == truth))


def _zip(folder: Path, path: Path) -> None:
    """`folder` as a zip at `path`, its files under the folder's own name."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in sorted(folder.rglob("*")):
            archive.write(item, Path(folder.name) / item.relative_to(folder))


def _atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write` with a partial name beside `path` (same suffix), then rename it to `path`.

    A folder replaces an older folder of the same name; a file never replaces a folder."""
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    _remove(partial)
    try:
        write(partial)
        if partial.is_dir() and path.is_dir():
            shutil.rmtree(path)
        partial.replace(path)
    finally:
        _remove(partial)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
