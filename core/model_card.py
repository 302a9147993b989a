"""The model card of an export: what the model is, how well it scored, on what data, and how to load each file.

Its figures are the store's (the sweep's test metrics and intervals, the data report's counts), copied, not
recomputed, so that the card says what the app says; the per-format figures are the export's re-scoring.
Written as JSON (`to_dict`) and Markdown (`markdown`) beside the model files.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import asdict, dataclass
from typing import Any

from core.export_formats import FormatReport
from core.latency import library_versions
from core.records import ModelResult, Run
from core.zoo import ModelRef

LIBRARIES = ("keras", "onnx", "tf2onnx", "numpy")  # besides TensorFlow and ONNX Runtime (`core.latency`)


@dataclass
class ModelCard:
    """Everything a user of an exported model needs to know, in one record."""

    model: str  # the result's id in the run
    network: str  # the zoo model it was built from
    weights: str
    run_id: int
    exported: str  # when, ISO 8601
    classes: list[str]  # in output order: the lines of labels.txt
    input_size: int
    input: str
    preprocessing: dict[str, str]  # the zoo's mode and its meaning; done inside the model
    metrics: dict[str, Any]  # the store's test (and validation) figures, with the 95% interval
    fine_tuning: dict[str, Any] | None
    dataset: dict[str, Any]  # source, fingerprint, layout, counts per split and class
    seed: int
    libraries: dict[str, str]
    formats: list[FormatReport]

    @classmethod
    def of(
        cls, run: Run, result: ModelResult, fingerprint: str, formats: list[FormatReport], exported: str
    ) -> ModelCard:
        """The card of `result` (a model of `run`) exported as `formats`."""
        preprocessing = ModelRef.parse(result.network, result.input_size, result.weights).spec.family.preprocessing
        report = run.report
        size = result.input_size
        return cls(
            model=result.model,
            network=result.network,
            weights=result.weights,
            run_id=run.id,
            exported=exported,
            classes=list(result.classes),
            input_size=size,
            input=f"uint8 RGB pixels 0-255, shape (n, {size}, {size}, 3); no preprocessing needed",
            preprocessing={"mode": preprocessing.mode, "text": preprocessing.text, "where": "inside the model"},
            metrics={
                "test_accuracy": result.test_accuracy,
                "test_accuracy_ci": list(result.test_accuracy_ci),
                "test_images": result.test_images,
                "balanced_accuracy": result.balanced_accuracy,
                "macro_f1": result.macro_f1,
                "val_accuracy": result.val_accuracy,
                "per_class": [asdict(item) for item in result.per_class],
                "confusion": result.confusion,
            },
            fine_tuning=result.fine_tuning and asdict(result.fine_tuning),
            dataset={
                "source": run.dataset,
                "fingerprint": fingerprint,
                "layout": report and report.layout,
                "counts": report and report.counts,
                "holdout": run.settings.get("holdout"),
                "max_images": run.settings.get("max_images"),
            },
            seed=run.settings["seed"],
            libraries=versions(),
            formats=formats,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The card as a Markdown page."""
        metrics, low_high = self.metrics, self.metrics["test_accuracy_ci"]
        lines = [
            f"# Model card: {self.model}",
            "",
            f"Exported {self.exported} from Transfer Bench run {self.run_id}: the {self.network} network "
            f"({self.weights} weights) with a classification head trained on this dataset.",
            "",
            "## Input and output",
            "",
            f"- Input: {self.input}.",
            f"- Preprocessing ({self.preprocessing['mode']}: {self.preprocessing['text']}) is inside the model.",
            f"- Output: {len(self.classes)} class probabilities, in the order of `labels.txt`: "
            + ", ".join(self.classes),
            "",
            "## Test metrics (from the sweep)",
            "",
            "| metric | value |",
            "| --- | --- |",
            f"| test accuracy | {metrics['test_accuracy']:.1%} (95% CI {low_high[0]:.1%}-{low_high[1]:.1%}) "
            f"on {metrics['test_images']} test images |",
            f"| balanced accuracy | {metrics['balanced_accuracy']:.1%} |",
            f"| macro F1 | {metrics['macro_f1']:.3f} |",
            f"| validation accuracy | {metrics['val_accuracy']:.1%} |",
        ]
        if self.fine_tuning:
            lift, (lift_low, lift_high) = self.fine_tuning["lift"], self.fine_tuning["lift_ci"]
            lines.append(f"| fine-tuning lift | {lift:+.1%} (95% CI {lift_low:+.1%} to {lift_high:+.1%}) |")
        lines += ["", "| class | precision | recall | F1 | test images |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| {item['name']} | {item['precision']:.3f} | {item['recall']:.3f} | {item['f1']:.3f} | {item['support']} |"
            for item in metrics["per_class"]
        ]
        lines += ["", "## Dataset", "", *self._dataset_lines(), "", "## Export formats", "", *self._format_lines()]
        lines += ["", "## How to load each format", ""]
        lines.append("Each snippet runs beside the file; `images` is a uint8 RGB array, shape (n, size, size, 3).")
        for entry in self.formats:
            if entry.error is None:
                lines += [
                    "",
                    f"### {entry.label} (`{entry.file}`, {entry.runtime})",
                    "",
                    "```python",
                    entry.code.rstrip(),
                    "```",
                ]
        lines += [
            "",
            "`tf.lite.Interpreter` is being replaced by the LiteRT package's `ai_edge_litert.interpreter.Interpreter`,"
            " which has the same methods.",
            "",
            "## Libraries",
            "",
            ", ".join(f"{name} {version}" for name, version in self.libraries.items()),
            "",
        ]
        return "\n".join(lines)

    def _dataset_lines(self) -> list[str]:
        dataset = self.dataset
        lines = [
            f"- Source: `{dataset['source']}` ({dataset['layout']}), fingerprint `{dataset['fingerprint']}`",
            f"- Split seed {self.seed}, holdout {dataset['holdout']}"
            + (f", a subset of at most {dataset['max_images']} images" if dataset["max_images"] else ""),
        ]
        counts = dataset["counts"] or {}
        if counts:
            lines += ["", f"| class | {' | '.join(counts)} |", f"| --- |{' --- |' * len(counts)}"]
            lines += [
                f"| {name} | {' | '.join(str(split.get(name, 0)) for split in counts.values())} |"
                for name in self.classes
            ]
        return lines

    def _format_lines(self) -> list[str]:
        lines = [
            "| format | file | size | test accuracy | change vs sweep | max prob. difference | batch-1 latency | flag |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for entry in self.formats:
            if entry.error is not None:
                lines.append(f"| {entry.format} | {entry.file} | | | | | | FAILED: {entry.error} |")
                continue
            lines.append(
                f"| {entry.format} | {entry.download} | {entry.size_bytes / 1e6:.2f} MB | {entry.test_accuracy:.1%} | "
                f"{entry.accuracy_change * 100:+.1f} pt | {entry.max_probability_difference:.1e} | "
                f"{entry.latency_ms:.2f} ms | {'DROPPED > 1 pt' if entry.flagged else ''} |"
            )
        return lines


def versions() -> dict[str, str]:
    """The versions of the libraries that wrote and re-scored the export (from package metadata)."""
    found = dict(library_versions())
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found
