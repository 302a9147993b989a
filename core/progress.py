"""Live progress of a sweep: the stages a model goes through, and how far the whole sweep is.

The sweep updates one `Progress` record as it goes; the command line draws it, and the store keeps it
for the app's pages. The fraction never goes back, and the time left is estimated from the pace so far.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Cancelled(Exception):
    """Raised where a sweep stops between batches because Cancel was pressed."""


class Stage(StrEnum):
    """Where a sweep is, in the order a model goes through them."""

    LOADING = "loading data"
    BUILDING = "building"
    DECODING = "decoding images and extracting features"  # the first model at a size decodes the images too
    EXTRACTING = "extracting features"
    TRAINING = "training head"
    TIMING = "measuring latency"
    FINE_TUNING = "fine-tuning"  # a fine-tuning job: `epoch` of `epochs`, `done` of `total` batches within it
    DONE = "done"
    CANCELLED = "cancelled"


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
    started: float = field(default_factory=time.time)  # when the sweep started (seconds since the epoch)
    phase_start: float = 0.0  # the overall fraction at which the current phase began...
    phase_share: float = 1.0  # ...and the part of the bar it fills
    peak: float = 0.0  # the furthest fraction reported: the bar never goes back

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1], never less than what was reported before."""
        if self.stage == Stage.DONE:
            return 1.0
        if self.stage == Stage.CANCELLED:
            return self.peak
        return max(self.peak, min(1.0, self.phase_start + self.phase_share * self._phase_fraction()))

    def advance(self) -> None:
        """Remember the current fraction as reported."""
        self.peak = self.fraction

    def begin_phase(self, phase: str, models: list[str], share: float) -> None:
        """A new pass over `models` (a screening round, the finalists) that fills `share` of the bar."""
        start = self.fraction  # where the last phase got to, reported or not
        self.phase, self.models, self.finished, self.model = phase, list(models), [], None
        self.stage, self.done, self.total, self.epoch = Stage.BUILDING, 0, 0, 0
        self.phase_start, self.phase_share = start, share

    def remaining_seconds(self, now: float | None = None) -> float | None:
        """The time left at the pace so far (None until there is a pace to go by)."""
        elapsed, done = (now or time.time()) - self.started, self.fraction
        if done < 0.02 or elapsed < 3 or self.stage in (Stage.DONE, Stage.CANCELLED):
            return None
        return elapsed * (1 - done) / done

    def timing_text(self, now: float | None = None) -> str:
        """`1:23 elapsed · about 2:10 left`"""
        now = now or time.time()
        text = f"{clock(now - self.started)} elapsed"
        remaining = self.remaining_seconds(now)
        return text if remaining is None else f"{text} · about {clock(remaining)} left"

    def _phase_fraction(self) -> float:
        """Completion of the current phase: each model an equal share, split across its stages."""
        if self.stage == Stage.FINE_TUNING:
            return min(1.0, (max(0, self.epoch - 1) + (self.done / self.total if self.total else 0)) / self.epochs)
        if self.model in self.finished:  # between two models: the one just finished counts whole, in `finished`
            return min(1.0, len(self.finished) / max(1, len(self.models)))
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
        if self.stage in (Stage.TRAINING, Stage.FINE_TUNING):
            return f"epoch {self.epoch}/{self.epochs}"
        return f"{self.done}/{self.total} images" if self.total else ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        known = {f.name for f in fields(cls)}
        return cls(
            **{key: value for key, value in data.items() if key in known}
            | {"stage": Stage(data.get("stage", Stage.LOADING))}
        )


_STAGE_SHARES = ((Stage.BUILDING, 0.05), (Stage.EXTRACTING, 0.75), (Stage.TRAINING, 0.15), (Stage.TIMING, 0.05))


def clock(seconds: float) -> str:
    """`1:05`, or `1:02:05` past an hour."""
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"
