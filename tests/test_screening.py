"""Screening on made-up results: which models go on, and how rounds are run through a `RoundRunner`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from results import model_result, scored_on

from core.data import Dataset, ImageRecord
from core.records import Failed, ModelResult, Result, ScreenedOut, Status
from core.report import DataReport
from core.screening import SCREEN_FIRST_ROUND, SCREEN_FIRST_ROUND_MIN_IMAGES, screen, screen_in_rounds

TEST_IMAGES = 200


def _result(model: str, accuracy: float, params: float, test_accuracy: float | None = None) -> ModelResult:
    """A trained model with just what screening looks at: accuracy (validation, and the same on the test images,
    where the models' right answers nest: the more accurate gets right every image a less accurate one does) and
    parameters."""
    correct = round((accuracy if test_accuracy is None else test_accuracy) * TEST_IMAGES)
    labels = np.arange(TEST_IMAGES) % 2
    return model_result(
        model=model,
        params=int(params),
        base_params=int(params),
        size_mb=round(params * 4 / 1e6, 2),
        **scored_on(labels, np.where(np.arange(TEST_IMAGES) < correct, labels, 1 - labels)),
        val_accuracy=accuracy,
        subset_accuracy=None,
    )


def test_screen_keeps_the_top_few_and_the_close_pareto_front():
    results = [
        _result("big", 0.97, 20e6),  # most accurate
        _result("mid", 0.96, 5e6),  # on the front, within the margin
        _result("dominated", 0.955, 8e6),  # bigger and worse than "mid": off the front
        _result("tiny", 0.90, 0.5e6),  # on the front but far below the best
        _result("untrained", 0.5, 3e6),
        Failed("broken", "no weights"),
    ]
    outcome = screen(results, keep=1, tolerance=0.01, validation_images=400)
    # margin = tolerance + 2 standard errors of 97% on 400 images (Agresti-Coull: 390 of 404): 0.01 + 2 * 0.0087
    assert outcome.margin == pytest.approx(0.01 + 2 * ((390 / 404) * (14 / 404) / 404) ** 0.5)
    assert outcome.finalists == ["big", "mid"]  # in the sweep's order
    assert outcome.screened_out == ["dominated", "tiny", "untrained"]  # by subset accuracy; "broken" is neither
    assert outcome.models == ["big", "mid", "dominated", "tiny", "untrained", "broken"] and outcome.images == 0
    assert screen(results, keep=3, tolerance=0.01, validation_images=400).finalists == ["big", "mid", "dominated"]
    # A first round drops only the models clearly beaten: the close one off the front stays.
    assert screen(results, keep=1, tolerance=0.01, validation_images=400, front_only=False).finalists == [
        "big",
        "mid",
        "dominated",
    ]
    # Few validation images: a wider margin lets the small model through.
    assert "tiny" in screen(results, keep=1, tolerance=0.01, validation_images=20).finalists
    # Every image right is no certainty: on 30 images the margin still exceeds the tolerance by 2 standard errors.
    perfect = [_result("perfect", 1.0, 20e6), _result("close", 0.94, 1e6)]
    assert screen(perfect, keep=1, tolerance=0.01, validation_images=30).finalists == ["perfect", "close"]
    nothing = screen(results[-1:], keep=2, tolerance=0.01, validation_images=400)
    assert (nothing.finalists, nothing.screened_out, nothing.margin) == ([], [], None)
    with pytest.raises(ValueError, match="Received: keep=0"):
        screen(results, keep=0, tolerance=0.01, validation_images=400)


def test_screening_chooses_on_validation_never_on_test_images():
    """The test images give the reported score; no choice is made on them, screening's included."""
    results = [
        _result("lucky", 0.80, 1e6, test_accuracy=0.99),  # best on test, clearly beaten on validation
        _result("steady", 0.95, 5e6, test_accuracy=0.90),
        _result("close", 0.94, 2e6, test_accuracy=0.50),
    ]
    outcome = screen(results, keep=1, tolerance=0.01, validation_images=400)
    assert outcome.finalists == ["steady", "close"] and outcome.screened_out == ["lucky"]


# The same subset accuracies in every round; "broken" always fails.
ACCURACY = {
    "big": (0.97, 20e6),
    "mid": (0.965, 5e6),
    "dominated": (0.955, 8e6),
    "tiny": (0.85, 0.5e6),
    "untrained": (0.5, 3e6),
}
MODELS = [*ACCURACY, "broken"]


def _dataset(images: int) -> Dataset:
    """Two balanced classes, `images` in all: 60% train, 20% validation, 20% test; the files need not exist
    to draw subsets."""
    records = {
        split: [
            ImageRecord(Path(f"/nowhere/{split}/{label}/{i}.png"), label, split, f"{split}-{label}-{i}")
            for label in (0, 1)
            for i in range(count // 2)
        ]
        for split, count in (("train", images * 3 // 5), ("validation", images // 5), ("test", images // 5))
    }
    report = DataReport(["a", "b"], {}, [], [], "train/, validation/ and test/ folders", 1.0, [])
    return Dataset(
        Path("/nowhere"), ["a", "b"], records["train"], records["validation"], records["test"], report, "fingerprint"
    )


class FakeRunner:
    """A `RoundRunner` that scores each model from `ACCURACY` and records what screening asked of it."""

    def __init__(self, cancel_in_round: int | None = None):
        self.cancel_in_round = cancel_in_round
        self.rounds: list[tuple[int, int, list[str], str]] = []  # (images, validation images, models, phase)
        self.tests: list[int] = []  # test images of each round's subset
        self.finished: list[Result] = []
        self.kept: list[list[str]] = []

    def run_round(self, subset: Dataset, models: list[str], phase: str) -> list[Result]:
        self.rounds.append((len(subset.images), len(subset.validation), list(models), phase))
        self.tests.append(len(subset.test))
        scored = [Failed(m, "no weights") if m == "broken" else _result(m, *ACCURACY[m]) for m in models]
        return scored[:1] if len(self.rounds) == self.cancel_in_round else scored

    def finish(self, result: Result) -> None:
        self.finished.append(result)

    def keep(self, models: list[str]) -> None:
        self.kept.append(list(models))


def test_screening_rounds_drop_the_clearly_beaten_first_then_keep_the_close_front():
    runner = FakeRunner()
    finalists, record = screen_in_rounds(runner, _dataset(2000), MODELS, share=0.1, keep=1, tolerance=0.01, seed=1337)
    (first_images, _, first_models, first_phase), (images, validation, second_models, phase) = runner.rounds
    assert (
        first_images == pytest.approx(2000 * 0.1 * SCREEN_FIRST_ROUND, abs=4)
        and first_images >= SCREEN_FIRST_ROUND_MIN_IMAGES
    )
    assert images == pytest.approx(200, abs=4)
    assert first_phase == f"screening on {first_images} images (round 1 of 2)"
    assert phase == f"screening on {images} images (round 2 of 2)"
    # The quick round (wide margin, not only the front) drops the untrained model; the last keeps the close front.
    assert first_models == MODELS and second_models == ["big", "mid", "dominated", "tiny"]
    assert finalists == record.finalists == ["big", "mid"]
    assert runner.kept == [second_models, ["big", "mid"]]
    assert [(r.model, r.status) for r in runner.finished] == [
        ("untrained", Status.SCREENED_OUT),
        ("broken", Status.FAILED),
        ("dominated", Status.SCREENED_OUT),
        ("tiny", Status.SCREENED_OUT),
    ]
    screened = {r.model: r for r in runner.finished if isinstance(r, ScreenedOut)}
    assert (screened["untrained"].subset_images, screened["tiny"].subset_images) == (first_images, images)
    assert (screened["untrained"].subset_accuracy, screened["tiny"].subset_accuracy) == (0.5, 0.85)
    assert record.screened_out == ["untrained", "dominated", "tiny"]
    assert [r.images for r in record.rounds] == [first_images, images] and record.subset_images == images
    assert (
        record.margin
        == record.rounds[-1].margin
        == screen(
            [_result(m, *ACCURACY[m]) for m in second_models], keep=1, tolerance=0.01, validation_images=validation
        ).margin
    )
    assert record.subset_accuracy == {m: accuracy for m, (accuracy, _) in ACCURACY.items()}
    assert record.screened_winner == "mid" and record.winner_changed is False  # the sweep sets winner_changed
    # Each subset keeps its share of the test images too, in proportion (a fifth of the 2,000, then a tenth).
    assert runner.tests == [pytest.approx(400 * 0.1 * SCREEN_FIRST_ROUND, abs=2), pytest.approx(40, abs=2)]


def test_screening_stops_when_a_round_leaves_no_more_than_keep():
    runner = FakeRunner()
    finalists, record = screen_in_rounds(runner, _dataset(2000), MODELS, share=0.1, keep=4, tolerance=0.01, seed=1337)
    assert len(runner.rounds) == len(record.rounds) == 1  # the quick round already left 4
    assert finalists == ["big", "mid", "dominated", "tiny"] and record.screened_out == ["untrained"]


def test_few_images_screen_in_one_round():
    runner = FakeRunner()
    screen_in_rounds(runner, _dataset(400), MODELS, share=0.1, keep=1, tolerance=0.01, seed=1337)
    ((images, _, _, phase),) = runner.rounds  # a third of 40 images is too few for a quick round
    assert phase == f"screening on {images} images" and images == pytest.approx(40, abs=4)


def test_cancelled_screening_has_no_record():
    runner = FakeRunner(cancel_in_round=2)
    finalists, record = screen_in_rounds(runner, _dataset(2000), MODELS, share=0.1, keep=1, tolerance=0.01, seed=1337)
    assert record is None and finalists == runner.rounds[-1][2]  # the models of the unfinished round
    assert [r.model for r in runner.finished] == ["untrained", "broken"]  # only the first round's
