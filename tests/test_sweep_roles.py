"""Three sets, three roles, on the shared cats-and-dogs photos with real ImageNet weights.

The head trains on train/, validation/ chooses its epoch, and test/ gives the reported score: changing
the test images (here: swapping their labels) must change the score and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.evaluate import wilson_interval
from core.records import ModelResult, NotRun, RunStatus, Status
from core.store import Store
from core.sweep import SweepSettings, run_sweep

MODEL = "MobileNet:0.25@128"  # real ImageNet weights, small and fast
PER_CLASS = {"train": 300, "validation": 100, "test": 100}


pytestmark = pytest.mark.usefixtures("module_home")


def three_folders(cats_and_dogs: Path, root: Path, swap_test_labels: bool = False) -> Path:
    """train/, validation/ and test/ of symlinks to real photos: train from the tutorial's train set,
    validation and test from disjoint halves of its validation set."""
    for animal in ("cats", "dogs"):
        train = sorted((cats_and_dogs / "train" / animal).glob("*.jpg"))[: PER_CLASS["train"]]
        held_out = sorted((cats_and_dogs / "validation" / animal).glob("*.jpg"))
        validation, test = held_out[: PER_CLASS["validation"]], held_out[-PER_CLASS["test"] :]
        test_folder = {"cats": "dogs", "dogs": "cats"}[animal] if swap_test_labels else animal
        for split, folder, photos in (
            ("train", animal, train),
            ("validation", animal, validation),
            ("test", test_folder, test),
        ):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            for photo in photos:
                (root / split / folder / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="module")
def as_given(cats_and_dogs, tmp_path_factory):
    root = three_folders(cats_and_dogs, tmp_path_factory.mktemp("three") / "pets")
    return run_sweep(root, SweepSettings(models=[MODEL], epochs=20))


def test_each_folder_is_used_for_its_role(as_given):
    counts = as_given.report.counts
    assert {split: sum(per_class.values()) for split, per_class in counts.items()} == {
        "train": 600,
        "validation": 200,
        "test": 200,
    }
    assert "used as given" in as_given.report.layout
    result = as_given.results[0]
    assert isinstance(result, ModelResult) and result.status == Status.OK
    assert result.test_images == 200 == len(result.test_labels) == np.array(result.confusion).sum()
    assert result.test_accuracy > 0.85 and result.val_accuracy > 0.85
    assert result.test_accuracy == pytest.approx(np.trace(result.confusion) / 200)
    low, high = result.test_accuracy_ci
    assert (low, high) == pytest.approx(wilson_interval(round(result.test_accuracy * 200), 200))
    assert low < result.test_accuracy < high and high - low > 0.04  # 200 images: a few points either side


def test_test_images_never_influence_the_epoch_or_the_choice(as_given, cats_and_dogs, tmp_path):
    """Swap the test labels: the score collapses, and every choice made on train and validation stays."""
    swapped = run_sweep(
        three_folders(cats_and_dogs, tmp_path / "pets", swap_test_labels=True), SweepSettings(models=[MODEL])
    )
    first, second = as_given.results[0], swapped.results[0]
    assert (second.best_epoch, second.epochs_run) == (first.best_epoch, first.epochs_run)
    assert second.val_accuracy == first.val_accuracy and second.val_loss == pytest.approx(first.val_loss, abs=1e-6)
    assert second.test_accuracy == pytest.approx(1 - first.test_accuracy)  # the same predictions, labels swapped
    half = PER_CLASS["test"]  # test images are ordered by label: the swapped folders list the dogs first
    assert second.test_predictions == first.test_predictions[half:] + first.test_predictions[:half]


def test_a_cancelled_model_is_partial_and_never_recommended(as_given, cats_and_dogs, tmp_path):
    """Cancel during the second model's head training: it is partial, the third never runs, and the
    recommendation comes from the one model that finished, whatever the partial one scored."""
    root = three_folders(cats_and_dogs, tmp_path / "pets")
    models = [MODEL, "MobileNet:0.25@160", "MobileNet:0.25@192"]
    seen = {}

    def cancel_at_epoch_2() -> bool:
        progress = seen.get("progress")
        return bool(progress and progress.model == models[1] and progress.epoch >= 2)

    outcome = run_sweep(
        root,
        SweepSettings(models=models, epochs=20),
        on_progress=lambda progress: seen.setdefault("progress", progress),
        should_stop=cancel_at_epoch_2,
    )
    by_model = {r.model: r for r in outcome.results}
    partial = by_model[models[1]]
    assert partial.status == Status.PARTIAL and partial.epochs_run == 2 and partial.epochs_planned == 20
    assert partial.latency == {} and partial.head_path is None  # neither timed nor kept
    assert isinstance(by_model[models[2]], NotRun)
    assert by_model[MODEL].status == Status.OK
    assert outcome.recommendation.model == MODEL and models[1] not in outcome.recommendation.tied
    stored = Store()
    assert stored.run(outcome.run_id).status == RunStatus.CANCELLED
    assert [r.status for r in stored.results(outcome.run_id)] == [Status.OK, Status.PARTIAL, Status.NOT_RUN]
