"""What a sweep produces, as typed records: per-model results, the recommendation, progress and runs.

The engine, the store, the command line, the app and the benchmark all speak these records; they become
plain dicts only at the store and JSON boundary (`to_dict` / `from_dict`). Status and stage names are
defined here once, as enums whose values are the strings the store and the JSON files hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from core.report import DataReport
from core.runtimes import ENGINES


class Status(StrEnum):
    """How one model of a sweep ended."""

    OK = "ok"
    FAILED = "failed"
    SCREENED_OUT = "screened out"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)


class Stage(StrEnum):
    """Where a sweep is, in the order a model goes through them."""

    LOADING = "loading data"
    BUILDING = "building"
    DECODING = "decoding images and extracting features"  # the first model at a size decodes the images too
    EXTRACTING = "extracting features"
    TRAINING = "training head"
    TIMING = "measuring latency"
    DONE = "done"
    CANCELLED = "cancelled"


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `cls` (older or newer extras are ignored)."""
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass(frozen=True)
class Latency:
    """Speed of base + head on this host in one runtime."""

    ms: float  # per image at batch 1
    images_per_second: float  # at batch 32


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class ModelResult:
    """A model trained and scored on the full data."""

    model: str  # the id as given in the sweep
    family: str
    input_size: int
    weights: str
    params: int  # base + head
    base_params: int
    feature_dim: int
    size_mb: float  # float32 weights
    classes: list[str]
    val_accuracy: float
    val_loss: float
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # rows: true class
    epochs_run: int
    best_epoch: int
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
        nested = ("per_class", "confusion", "classes", "latency")
        row = {key: value for key, value in asdict(self).items() if key not in nested}
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


Result = ModelResult | ScreenedOut | Failed
_RESULT_TYPES: dict[Status, type] = {Status.OK: ModelResult, Status.SCREENED_OUT: ScreenedOut, Status.FAILED: Failed}


def result_to_dict(result: Result) -> dict[str, Any]:
    """A result as JSON-ready values; a trained model's also carries its latency in the runtime that ran."""
    data = asdict(result)
    if isinstance(result, ModelResult):
        data.update(latency_ms=result.latency_ms, throughput_ips=result.throughput_ips)
    return data


def result_from_dict(data: dict[str, Any]) -> Result:
    """The record a stored result dict describes, by its `status`."""
    kind = _RESULT_TYPES[Status(data.get("status", Status.OK))]
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
    """The smallest model within `tolerance` of the best accuracy, and the fastest by the same rule."""

    model: str
    best: str
    fastest: str | None
    tolerance: float
    reason: str
    screening: Screening | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Recommendation | None:
        if not data:
            return None
        screening = data.get("screening")
        return cls(**{**_known(cls, data), "screening": screening and Screening.from_dict(screening)})


@dataclass
class Progress:
    """Where a sweep is: which model, which stage, how far; sent to `on_progress` and the store."""

    run_id: int
    models: list[str]  # the models of the current phase
    phase: str = ""  # with screening: which screening round, or the finalists' pass, is running
    index: int = 0  # position of the current model
    model: str | None = None
    stage: Stage = Stage.LOADING
    done: int = 0
    total: int = 0
    epoch: int = 0
    epochs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1]: each model is an equal share, split across its stages."""
        if self.stage in (Stage.DONE, Stage.CANCELLED):
            return len(self.finished) / max(1, len(self.models))
        stage = Stage.EXTRACTING if self.stage == Stage.DECODING else self.stage
        within = 0.0
        for name, share in _STAGE_SHARES:
            if name == stage:
                steps = (self.epoch, self.epochs) if name == Stage.TRAINING else (self.done, self.total)
                within += share * (steps[0] / steps[1] if steps[1] else 0.0)
                break
            within += share
        else:
            within = 0.0  # loading data: no model started yet
        return min(1.0, (len(self.finished) + within) / max(1, len(self.models)))

    @property
    def step(self) -> str:
        """How far the current stage is, in words: `epoch 3/20`, `480/3000 images`, or ''."""
        if self.stage == Stage.TRAINING:
            return f"epoch {self.epoch}/{self.epochs}"
        return f"{self.done}/{self.total} images" if self.total else ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(**{**_known(cls, data), "stage": Stage(data.get("stage", Stage.LOADING))})


_STAGE_SHARES = ((Stage.BUILDING, 0.05), (Stage.EXTRACTING, 0.75), (Stage.TRAINING, 0.15), (Stage.TIMING, 0.05))


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
