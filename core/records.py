"""What a sweep produces, as typed records: per-model results, the recommendation and runs.

The engine, the store, the command line, the app and the benchmark all speak these records; they become
plain dicts only at the store and JSON boundary (`to_dict` / `from_dict`). Status and stage names are
defined once, as enums whose values are the strings the store and the JSON files hold (stages and
live progress: `core.progress`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np

from core.report import DataReport
from core.runtimes import ENGINES


class Status(StrEnum):
    """How one model of a sweep ended."""

    OK = "ok"
    PARTIAL = "partial"  # its head training was cut short by Cancel: shown as such, never recommended
    FAILED = "failed"
    SCREENED_OUT = "screened out"
    NOT_RUN = "not run"  # the sweep ended (cancelled) before it started


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `cls` (older or newer extras are ignored)."""
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass(frozen=True)
class Latency:
    """Speed of base + head on this host in one runtime (`core.latency` measures it).

    The fields after the first two came later: a figure stored before them reads them as None.
    """

    ms: float  # per image at batch 1: the median of `repeats` timed calls
    images_per_second: float  # at batch 32: from the median timed call
    ms_q1: float | None = None  # first and third quartiles of the batch-1 calls (ms): the spread
    ms_q3: float | None = None
    threads: int | None = None  # the engine's intra-op threads
    repeats: int | None = None  # timed batch-1 calls

    @property
    def ms_iqr(self) -> float | None:
        """The interquartile range of the batch-1 calls, in ms."""
        return None if self.ms_q1 is None or self.ms_q3 is None else self.ms_q3 - self.ms_q1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Latency:
        """A stored figure, older (fewer fields) or newer (extra ones, ignored) alike."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class FineTuning:
    """How a fine-tuned model was made from a frozen one, and what it gained on the same test images."""

    source: str  # the frozen model's id (its result in the same run)
    unfreeze: int | None  # convolution layers of the base trained, from the top; None: all of them
    layers_trained: int  # what that came to in this base
    learning_rate: float
    epochs_planned: int
    augment: dict[str, float | bool]  # flip, rotation, zoom, contrast
    seconds_per_epoch: float
    frozen_accuracy: float  # the source's test accuracy
    lift: float  # test accuracy minus the source's, on the same images
    lift_ci: list[float]  # 95% interval of the paired difference
    p_value: float  # McNemar, fine-tuned vs frozen on the test images
    kept_frozen: bool  # no epoch beat the frozen model on validation: these are its weights

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FineTuning:
        return cls(**_known(cls, data))


@dataclass
class ModelResult:
    """A model trained on the training set, its epoch chosen on the validation set, and scored on the test set.

    `per_class`, `confusion` and the `test_*`, `balanced_accuracy` and `macro_f1` figures are on the test
    images, on which no choice was made; `val_*` are the validation figures that chose the epoch and rank
    screening rounds.
    """

    model: str  # the id as given in the sweep
    family: str
    input_size: int
    weights: str
    params: int  # base + head
    base_params: int
    feature_dim: int
    size_mb: float  # float32 weights
    classes: list[str]
    test_accuracy: float
    test_accuracy_ci: list[float]  # 95% Wilson interval: [low, high]
    test_images: int
    balanced_accuracy: float  # on the test images
    macro_f1: float  # on the test images
    test_labels: list[int]
    test_predictions: list[int]
    val_accuracy: float
    val_loss: float
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # rows: true class
    epochs_run: int
    best_epoch: int
    epochs_planned: int
    class_weighted: bool  # the head's loss weighted classes (an imbalanced training set)
    runtime: str  # the engine that computed the features
    runtime_note: str  # why ONNX Runtime was not used, when it was asked for
    feature_seconds: float
    features_cached: bool
    head_seconds: float
    head_cached: bool
    latency: dict[str, Latency | None] = field(default_factory=dict)  # by engine; None: cannot run there
    subset_accuracy: float | None = None  # a screening finalist's accuracy on the screening subset
    head_path: str | None = None
    status: Status = Status.OK
    model_path: str | None = None  # the complete model (base and head) as one Keras file, when fine-tuned
    fine_tuning: FineTuning | None = None
    device: str = "CPU"  # where the forward pass that computed the features ran

    @property
    def network(self) -> str:
        """The zoo model id this result's network was built from (the frozen source of a fine-tuned one)."""
        return self.fine_tuning.source if self.fine_tuning else self.model

    @property
    def test_right(self) -> np.ndarray:
        """Which test images this model classifies correctly, in the dataset's order."""
        return np.asarray(self.test_predictions) == np.asarray(self.test_labels)

    @property
    def still_improving(self) -> bool:
        """True when the best epoch was the last one allowed: more epochs might have helped."""
        return self.best_epoch == self.epochs_run == self.epochs_planned

    def score_text(self) -> str:
        """`96.8% (95% CI 95.0-98.0%)`"""
        low, high = self.test_accuracy_ci
        return f"{self.test_accuracy:.1%} (95% CI {low:.1%}-{high:.1%})"

    @property
    def latency_ms(self) -> float | None:
        """ms per image in the runtime that ran."""
        timed = self.latency.get(self.runtime)
        return timed.ms if timed else None

    @property
    def throughput_ips(self) -> float | None:
        timed = self.latency.get(self.runtime)
        return timed.images_per_second if timed else None

    def row(self) -> dict[str, Any]:
        """One flat table row: scalars only, a latency and a throughput column per engine."""
        nested = (
            *("per_class", "confusion", "classes", "latency", "test_labels", "test_predictions", "test_accuracy_ci"),
            "fine_tuning",
        )
        row = {key: value for key, value in asdict(self).items() if key not in nested}
        row["test_ci_low"], row["test_ci_high"] = self.test_accuracy_ci
        tuned = self.fine_tuning
        row["lift"], row["lift_ci_low"], row["lift_ci_high"] = (tuned.lift, *tuned.lift_ci) if tuned else (None,) * 3
        for engine in ENGINES:
            timed = self.latency.get(engine)
            row[latency_column(engine)] = timed and timed.ms
            row[f"throughput_ips_{engine}"] = timed and timed.images_per_second
        return {**row, "latency_ms": self.latency_ms, "throughput_ips": self.throughput_ips}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResult:
        data = {**data, "status": Status(data.get("status", Status.OK))}
        latency = data.get("latency")
        if latency is None:  # stored before latencies were records: flat columns per engine
            latency = {
                engine: {"ms": data[latency_column(engine)], "images_per_second": data[f"throughput_ips_{engine}"]}
                for engine in ENGINES
                if data.get(latency_column(engine)) is not None
            }
        data["latency"] = {engine: timed and Latency(**timed) for engine, timed in latency.items()}
        data["fine_tuning"] = data.get("fine_tuning") and FineTuning.from_dict(data["fine_tuning"])
        data["per_class"] = [
            ClassMetrics(**{"name": item.get("name", item.get("class")), **_known(ClassMetrics, item)})
            for item in data["per_class"]
        ]
        return cls(**_known(cls, data))


def latency_column(engine: str) -> str:
    """The table column of latencies in `engine` (a key of `core.runtimes.ENGINES`)."""
    return f"latency_ms_{engine}"


@dataclass
class ScreenedOut:
    """A model that screening left out: its accuracy on the screening subset, no full-data figures."""

    model: str
    family: str
    input_size: int
    weights: str
    params: int
    base_params: int
    feature_dim: int
    size_mb: float
    runtime: str
    subset_accuracy: float
    subset_images: int
    status: Status = Status.SCREENED_OUT

    @classmethod
    def of(cls, result: ModelResult, images: int) -> ScreenedOut:
        """The record of `result`, a model scored on a screening subset of `images` images."""
        shared = {
            f.name: getattr(result, f.name) for f in fields(cls) if hasattr(result, f.name) and f.name != "status"
        }
        return cls(**{**shared, "subset_accuracy": result.val_accuracy, "subset_images": images})


@dataclass
class Failed:
    """A model that could not be run, with the reason."""

    model: str
    error: str
    status: Status = Status.FAILED


@dataclass
class NotRun:
    """A model of the sweep that never started (the sweep was cancelled first)."""

    model: str
    status: Status = Status.NOT_RUN


Result = ModelResult | ScreenedOut | Failed | NotRun
_RESULT_TYPES: dict[Status, type] = {
    Status.OK: ModelResult,
    Status.PARTIAL: ModelResult,
    Status.SCREENED_OUT: ScreenedOut,
    Status.FAILED: Failed,
    Status.NOT_RUN: NotRun,
}


def result_to_dict(result: Result) -> dict[str, Any]:
    """A result as JSON-ready values; a trained model's also carries its latency in the runtime that ran."""
    data = asdict(result)
    if isinstance(result, ModelResult):
        data.update(latency_ms=result.latency_ms, throughput_ips=result.throughput_ips)
    return data


def result_from_dict(data: dict[str, Any]) -> Result:
    """The record a stored result dict describes, by its `status`."""
    kind = _RESULT_TYPES[Status(data.get("status", Status.OK))]
    if kind is ModelResult and "test_accuracy" not in data:
        return Failed(data["model"], "stored by an older version, which scored no test set: run the sweep again")
    if kind is ModelResult:
        return ModelResult.from_dict(data)
    return kind(**{**_known(kind, data), "status": Status(data["status"])})


@dataclass
class ScreeningRound:
    images: int
    models: list[str]
    finalists: list[str]
    screened_out: list[str]
    margin: float | None


@dataclass
class Screening:
    """How a screened sweep chose its finalists."""

    finalists: list[str]
    screened_out: list[str]
    margin: float | None
    subset_images: int
    subset_accuracy: dict[str, float]
    screened_winner: str | None
    rounds: list[ScreeningRound]
    winner_changed: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Screening:
        rounds = [ScreeningRound(**_known(ScreeningRound, r)) for r in data.get("rounds", [])]
        return cls(**{**_known(cls, data), "rounds": rounds})


@dataclass
class Recommendation:
    """The smallest model not clearly below the best test accuracy, and the fastest by the same rule."""

    model: str
    best: str
    fastest: dict[str, str]  # by engine: the fastest of the `tied` models there
    tolerance: float
    reason: str
    tied: list[str] = field(default_factory=list)  # the models not clearly below the best
    p_values: dict[str, float] = field(default_factory=dict)  # McNemar, each model against the best
    images_to_resolve: int | None = None  # test images that would tell the best from the recommended one
    screening: Screening | None = None

    @property
    def statistically_tied(self) -> bool:
        return len(self.tied) > 1

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Recommendation | None:
        if not data:
            return None
        screening, fastest = data.get("screening"), data.get("fastest")
        return cls(
            **{
                **_known(cls, data),
                "fastest": fastest if isinstance(fastest, dict) else {},  # older runs: one model, runtime unknown
                "screening": screening and Screening.from_dict(screening),
            }
        )


@dataclass
class Run:
    """One sweep as stored: its settings, state and outcome (results are stored apart, per model)."""

    id: int
    created: float
    updated: float
    status: RunStatus
    dataset: str  # the folder or zip as given
    settings: dict[str, Any]  # `SweepSettings.to_dict()`
    report: DataReport | None = None
    recommendation: Recommendation | None = None
    error: str | None = None
    cancel_requested: bool = False
    pid: int | None = None
    workspace: str = "local"  # whose run it is (`core.workspaces`); "local" on your own machine
    job: dict[str, Any] | None = None  # a fine-tuning job waiting or running on this finished run

    @property
    def models(self) -> list[str]:
        return list(self.settings["models"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        report = data.get("report")
        return cls(
            **{
                **_known(cls, data),
                "status": RunStatus(data["status"]),
                "report": report and DataReport.from_dict(report),
                "recommendation": Recommendation.from_dict(data.get("recommendation")),
                "cancel_requested": bool(data.get("cancel_requested")),
            }
        )


@dataclass
class SweepOutcome:
    """What `run_sweep` returns, and what the command line's `--out` file holds."""

    run_id: int
    results: list[Result]
    recommendation: Recommendation | None
    report: DataReport

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "results": [result_to_dict(r) for r in self.results]}
