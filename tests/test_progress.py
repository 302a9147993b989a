"""Live progress: the bar never goes back, through stages, early stops and screening phases; time left from the pace."""

from __future__ import annotations

import json

import pytest

from core.progress import Progress, Stage, clock

# A model's stages and their shares of its part of a phase (core.progress._STAGE_SHARES).
BUILT, EXTRACTED, TRAINED = 0.05, 0.05 + 0.75, 0.05 + 0.75 + 0.15


def through_json(data):
    return json.loads(json.dumps(data))


class Script:
    """Drives a `Progress` the way the sweep does: every change is reported, and a report advances the bar."""

    def __init__(self, models: list[str]):
        self.progress = Progress(run_id=1, models=models, started=1000.0)
        self.seen: list[float] = []
        self.report()

    def report(self) -> float:
        self.progress.advance()
        self.seen.append(self.progress.fraction)
        return self.seen[-1]

    def stage(self, stage: Stage, done: int = 0, total: int = 0) -> float:
        self.progress.stage, self.progress.done, self.progress.total = stage, done, total
        return self.report()

    def model(self, name: str, images: int, stop_at: int, epochs: int = 20, timed: bool = True) -> None:
        """One model: building, features in batches, training until `stop_at` of `epochs`, latency, finished."""
        progress = self.progress
        progress.model, progress.epoch, progress.epochs = name, 0, epochs
        self.stage(Stage.BUILDING)
        for done in range(0, images + 1, max(1, images // 3)):
            self.stage(Stage.DECODING, done, images)
        self.stage(Stage.EXTRACTING, images, images)
        self.stage(Stage.TRAINING)
        for epoch in range(1, stop_at + 1):
            progress.epoch = epoch
            self.report()
        if timed:
            self.stage(Stage.TIMING)
        progress.finished.append(name)
        self.report()


def test_the_bar_never_goes_back_through_screening_rounds_and_the_finalists():
    script = Script(["a", "b", "c"])
    progress = script.progress
    assert script.seen == [0.0] and progress.stage == Stage.LOADING

    # Two screening rounds on subsets (no latency there), then the finalists on all images.
    progress.begin_phase("screening on 67 images (round 1 of 2)", ["a", "b", "c"], share=0.1)
    for name in ("a", "b", "c"):
        script.model(name, images=67, stop_at=4, timed=False)
    assert script.seen[-1] == pytest.approx(0.1)
    progress.begin_phase("screening on 200 images (round 2 of 2)", ["a", "b"], share=0.2)
    assert progress.phase_start == pytest.approx(0.1) and progress.finished == []  # it starts where round 1 ended
    for name in ("a", "b"):
        script.model(name, images=200, stop_at=6, timed=False)
    assert script.seen[-1] == pytest.approx(0.3)

    progress.begin_phase("finishing 2 finalist(s) on all images", ["a", "b"], share=0.7)
    assert progress.phase_start == pytest.approx(0.3)
    finalists = len(script.seen)
    # building -> extracting -> training, early-stopped at epoch 5 of 20 -> measuring latency -> the next model
    progress.model, progress.epochs = "a", 20
    assert script.stage(Stage.BUILDING) == pytest.approx(0.3)
    assert script.stage(Stage.EXTRACTING, 1500, 3000) == pytest.approx(0.3 + 0.7 * (BUILT + 0.75 / 2) / 2)
    assert script.stage(Stage.EXTRACTING, 3000, 3000) == pytest.approx(0.3 + 0.7 * EXTRACTED / 2)
    progress.epoch = 5
    early_stop = script.stage(Stage.TRAINING)
    assert early_stop == pytest.approx(0.3 + 0.7 * (EXTRACTED + 0.15 * 5 / 20) / 2)
    assert script.stage(Stage.TIMING) == pytest.approx(0.3 + 0.7 * TRAINED / 2)  # the unused epochs are skipped
    progress.finished.append("a")
    assert script.report() == pytest.approx(0.3 + 0.7 / 2)
    progress.model, progress.epoch = "b", 0
    assert script.stage(Stage.BUILDING) == pytest.approx(0.3 + 0.7 / 2)  # the next model starts where "a" ended
    script.model("b", images=3000, stop_at=20)
    assert script.seen[-1] == pytest.approx(1.0)

    assert script.seen == sorted(script.seen), [round(f, 4) for f in script.seen]
    assert len(set(script.seen[finalists:])) > 10  # it moves, too
    progress.stage = Stage.DONE
    assert progress.fraction == 1.0


def test_a_finished_model_counts_once_and_the_next_one_moves_the_bar():
    """The sweep reports a model's finish with its last stage still set: that stage must not count again on
    top of the finished model (it read 97.5% after the first of two models, and held there to the end)."""
    script = Script(["a", "b"])
    script.model("a", images=300, stop_at=5)
    assert script.progress.stage == Stage.TIMING and script.seen[-1] == pytest.approx(0.5)
    before_b = len(script.seen)
    script.model("b", images=300, stop_at=5)
    moving = script.seen[before_b:]
    assert moving == sorted(moving) and len(set(moving)) >= 6 and moving[-1] == pytest.approx(1.0)


def test_the_bar_holds_at_the_furthest_point_reported():
    progress = Progress(run_id=1, models=["a", "b"], stage=Stage.TRAINING, epoch=10, epochs=20, finished=["a"])
    progress.advance()
    furthest = progress.fraction
    assert furthest == pytest.approx((1 + EXTRACTED + 0.15 / 2) / 2)
    progress.finished, progress.stage = [], Stage.BUILDING  # a pass that starts over: the bar waits, never drops
    assert progress.fraction == furthest
    progress.stage = Stage.CANCELLED
    assert progress.fraction == furthest  # cancelled: where it got to
    progress.stage = Stage.DONE
    assert progress.fraction == 1.0


def test_a_phase_begins_where_the_last_one_ended_even_unreported():
    progress = Progress(run_id=1, models=["a", "b"])
    progress.begin_phase("screening", ["a", "b"], share=0.2)
    progress.finished, progress.stage, progress.epoch, progress.epochs = ["a", "b"], Stage.TRAINING, 4, 20
    assert progress.fraction == pytest.approx(0.2)  # both screened (early-stopped at epoch 4), not yet reported
    progress.begin_phase("finishing 1 finalist(s) on all images", ["a"], share=0.8)
    assert progress.phase_start == pytest.approx(0.2)
    assert progress.fraction == pytest.approx(0.2)  # no model of the new phase has started


def test_fraction_grows_through_the_stages():
    progress = Progress(run_id=1, models=["a", "b"])
    seen = [progress.fraction]
    for stage, done, total in [(Stage.BUILDING, 0, 0), (Stage.DECODING, 50, 100), (Stage.EXTRACTING, 100, 100)]:
        progress.model, progress.stage, progress.done, progress.total = "a", stage, done, total
        seen.append(progress.fraction)
    progress.stage, progress.epoch, progress.epochs = Stage.TRAINING, 10, 20
    seen.append(progress.fraction)
    progress.stage = Stage.TIMING
    seen.append(progress.fraction)
    progress.finished.append("a")
    progress.stage, progress.model = Stage.BUILDING, "b"
    seen.append(progress.fraction)
    progress.finished.append("b")
    progress.stage = Stage.DONE
    seen.append(progress.fraction)
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 1
    assert seen[3] == pytest.approx(EXTRACTED / 2)


def test_done_is_the_whole_bar_whatever_was_reported():
    progress = Progress(run_id=1, models=["a", "b", "c"], finished=["a"], stage=Stage.DONE)
    assert progress.fraction == 1.0 and progress.to_dict()["fraction"] == 1.0


def test_time_left_from_the_pace_so_far():
    progress = Progress(run_id=1, models=["a", "b"], started=1000.0, finished=["a"], stage=Stage.BUILDING)
    assert progress.fraction == pytest.approx(0.5)
    assert progress.remaining_seconds(now=1060.0) == pytest.approx(60.0)  # half in a minute: a minute left
    progress.finished, progress.stage, progress.epoch, progress.epochs = [], Stage.TRAINING, 0, 20
    assert progress.fraction == pytest.approx(EXTRACTED / 2)  # 40% in 120 s: 180 s left
    assert progress.remaining_seconds(now=1120.0) == pytest.approx(120.0 * 0.6 / 0.4)
    # No pace to go by yet, or nothing left to estimate.
    assert Progress(run_id=1, models=["a"], started=1000.0).remaining_seconds(now=1100.0) is None  # nothing done
    assert progress.remaining_seconds(now=1002.0) is None  # too soon to tell
    for stage in (Stage.DONE, Stage.CANCELLED):
        progress.stage = stage
        assert progress.remaining_seconds(now=1120.0) is None


def test_timing_text():
    progress = Progress(run_id=1, models=["a", "b"], started=1000.0, finished=["a"], stage=Stage.BUILDING)
    assert progress.timing_text(now=1083.0) == "1:23 elapsed · about 1:23 left"
    assert progress.timing_text(now=1001.0) == "0:01 elapsed"  # too soon for an estimate
    progress.stage = Stage.DONE
    assert progress.timing_text(now=4725.0) == "1:02:05 elapsed"
    assert (clock(0), clock(65), clock(59.9), clock(3600), clock(3725)) == (
        "0:00",
        "1:05",
        "0:59",
        "1:00:00",
        "1:02:05",
    )


def test_step_in_words():
    progress = Progress(run_id=1, models=["a"], stage=Stage.TRAINING, epoch=3, epochs=20)
    assert progress.step == "epoch 3/20"
    progress.stage, progress.done, progress.total = Stage.DECODING, 480, 3000
    assert progress.step == "480/3000 images"
    progress.stage, progress.done, progress.total = Stage.BUILDING, 0, 0
    assert progress.step == ""


def test_progress_round_trips_with_its_fraction():
    progress = Progress(
        run_id=7,
        models=["a", "b"],
        phase="screening on 200 images (round 2 of 2)",
        index=1,
        model="b",
        stage=Stage.TRAINING,
        epoch=3,
        epochs=20,
        metrics={"loss": 0.4, "val_accuracy": 0.85},
        finished=["a"],
    )
    data = progress.to_dict()
    assert data["fraction"] == progress.fraction == pytest.approx((1 + EXTRACTED + 0.15 * 3 / 20) / 2)
    for back in (Progress.from_dict(data), Progress.from_dict(through_json(data))):
        assert back == progress and type(back.stage) is Stage
    assert Progress.from_dict({"run_id": 1, "models": ["a"]}).stage == Stage.LOADING


def test_a_later_phase_round_trips_with_its_start_share_and_peak():
    progress = Progress(run_id=7, models=["a", "b", "c"], started=1000.0)
    progress.begin_phase("screening on 67 images", ["a", "b", "c"], share=0.25)
    progress.finished, progress.stage = ["a", "b", "c"], Stage.BUILDING
    progress.advance()
    progress.begin_phase("finishing 1 finalist(s) on all images", ["b"], share=0.75)
    progress.model, progress.stage, progress.done, progress.total = "b", Stage.EXTRACTING, 600, 3000
    progress.advance()
    data = through_json(progress.to_dict())
    back = Progress.from_dict(data)
    assert back == progress and (back.phase_start, back.phase_share, back.started) == (0.25, 0.75, 1000.0)
    assert back.fraction == data["fraction"] == progress.peak == pytest.approx(0.25 + 0.75 * (BUILT + 0.75 * 0.2))
    assert back.timing_text(now=1030.0) == progress.timing_text(now=1030.0)
    # The bar holds after the trip too: a stored peak is not recomputed away.
    back.finished, back.stage = [], Stage.BUILDING
    assert back.fraction == pytest.approx(data["fraction"])
