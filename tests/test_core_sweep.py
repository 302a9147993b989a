"""End to end on real data: the shared cats-and-dogs photos and real ImageNet weights, offline."""

from __future__ import annotations

import numpy as np
import pytest

from core.data import load_dataset
from core.features import Extractor
from core.images import load_image, open_image
from core.predict import imagenet_top5, load_classifier
from core.records import ModelResult, RunStatus, ScreenedOut, Status
from core.runtimes import relative_difference
from core.store import Store
from core.sweep import SweepSettings, run_sweep
from core.zoo import ModelRef

SHARED_MODELS = ["MobileNetV2:0.35", "MobileNet:0.75", "MobileNet:0.25"]
MINIMUM_ACCURACY = {"MobileNetV2:0.35": 0.95, "MobileNet:0.75": 0.97, "MobileNet:0.25": 0.93}


pytestmark = pytest.mark.usefixtures("module_home")  # its own data folder: the first sweep is cold whatever ran before


@pytest.fixture(scope="module")
def sweep(module_home, cats_and_dogs):
    """One cold sweep of the three shared pretrained models."""
    return run_sweep(cats_and_dogs, SweepSettings(models=SHARED_MODELS))


def test_pretrained_models_reach_their_accuracy(sweep):
    accuracy = {r.model: r.test_accuracy for r in sweep.results}
    for model, minimum in MINIMUM_ACCURACY.items():
        assert accuracy[model] >= minimum, (model, accuracy[model])


def test_results_carry_metrics_sizes_and_timings(sweep):
    for result in sweep.results:
        assert result.status == Status.OK
        assert result.input_size == 224 and result.weights == "imagenet"
        assert result.test_images == sum(c.support for c in result.per_class) == np.array(result.confusion).sum() == 500
        assert np.trace(result.confusion) / 500 == pytest.approx(result.test_accuracy)
        low, high = result.test_accuracy_ci
        assert low < result.test_accuracy < high and high - low < 0.06  # 500 images: about 2 points either side
        assert result.val_accuracy > 0.9 and result.balanced_accuracy == pytest.approx(result.test_accuracy, abs=0.01)
        assert result.latency_ms > 0 and result.throughput_ips > 0
        assert result.latency["onnx"].ms == result.latency_ms and result.latency["tf"].ms > 0  # timed in both
        assert (
            result.latency["tf"].images_per_second > 0
            and result.throughput_ips == result.latency["onnx"].images_per_second
        )
        assert result.feature_seconds > 0 and not result.features_cached and not result.head_cached
        assert (result.runtime, result.runtime_note) == ("onnx", "")  # its features matched TensorFlow's
        assert result.params > result.base_params > 0


def test_recommendation_is_the_smallest_model_close_to_the_best(sweep):
    results = {r.model: r for r in sweep.results}
    recommendation = sweep.recommendation
    best = results[recommendation.best]
    assert best.test_accuracy == max(r.test_accuracy for r in results.values())
    chosen = results[recommendation.model]
    assert chosen.model in recommendation.tied and all(results[m].params >= chosen.params for m in recommendation.tied)
    for model, result in results.items():  # a model left out is clearly worse: beyond 1 point, and p < 0.05
        if model not in recommendation.tied:
            assert result.test_accuracy < best.test_accuracy - 0.01 and recommendation.p_values[model] < 0.05
    assert recommendation.model in recommendation.reason and "500 test images" in recommendation.reason


def test_sweep_is_stored_as_it_goes(sweep):
    store = Store()
    run = store.run(sweep.run_id)
    assert run.status == RunStatus.DONE
    assert run.report.counts["validation"] == run.report.counts["test"] == {"cats": 250, "dogs": 250}
    assert store.results(sweep.run_id) == sweep.results  # the records come back as they went in
    assert [r.model for r in store.results(sweep.run_id)] == SHARED_MODELS
    history = store.history(sweep.run_id, "MobileNet:0.25")
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= history[0].keys()


def test_second_run_reads_features_from_the_cache(sweep, cats_and_dogs):
    again = run_sweep(cats_and_dogs, SweepSettings(models=["MobileNet:0.25"]))
    result = again.results[0]
    assert result.features_cached and result.head_cached
    first = next(r for r in sweep.results if r.model == "MobileNet:0.25")
    assert (result.test_accuracy, result.test_predictions) == (first.test_accuracy, first.test_predictions)
    assert len(Store().history(again.run_id, "MobileNet:0.25")) == first.epochs_run  # epochs replayed


def test_tensorflow_runtime_gives_the_same_accuracy(sweep, cats_and_dogs):
    forced = run_sweep(cats_and_dogs, SweepSettings(models=["MobileNet:0.25"], runtime="tf")).results[0]
    first = next(r for r in sweep.results if r.model == "MobileNet:0.25")
    assert forced.runtime == "tf" and not forced.features_cached
    assert forced.latency_ms == forced.latency["tf"].ms and "onnx" not in forced.latency  # no graph exported
    assert forced.test_accuracy == pytest.approx(first.test_accuracy, abs=0.005)  # at most one image of 500 apart


SCREENED_MODELS = [
    *(f"MobileNet:0.25@{size}" for size in (128, 160, 192, 224)),
    *("MobileNet:0.75", "MobileNetV2:0.35", "MobileNet:0.5@128/none", "MobileNetV2:0.5@128/none"),
]
UNTRAINED = {"MobileNet:0.5@128/none", "MobileNetV2:0.5@128/none"}


def test_screening_keeps_the_full_data_winner(sweep, cats_and_dogs):
    """Eight models, two of them untrained: screening on a fifth of the images finds the full sweep's winner.

    A quick first round, on a third of that fifth, already drops the untrained models.
    """
    full = run_sweep(cats_and_dogs, SweepSettings(models=SCREENED_MODELS))
    screened = run_sweep(cats_and_dogs, SweepSettings(models=SCREENED_MODELS, screen=0.2))
    assert all(isinstance(r, ModelResult) for r in full.results)
    assert screened.recommendation.model == full.recommendation.model

    record = screened.recommendation.screening
    assert 550 <= record.subset_images <= 650
    first, last = record.rounds
    assert 180 <= first.images <= 220 and first.models == SCREENED_MODELS and set(first.screened_out) >= UNTRAINED
    assert last.images == record.subset_images and last.models == first.finalists
    assert last.finalists == record.finalists and first.margin > last.margin  # fewer images, wider margin
    assert set(record.finalists) | set(record.screened_out) == set(SCREENED_MODELS)
    assert full.recommendation.model in record.finalists and set(record.screened_out) >= UNTRAINED
    assert len(record.finalists) <= 4  # the point of screening: most models never see the full data
    assert record.winner_changed == (record.screened_winner != screened.recommendation.model)

    by_model = {r.model: r for r in screened.results}
    full_accuracy = {r.model: r.val_accuracy for r in full.results}
    for model in record.finalists:  # finished on all images: the full sweep's figures, plus the subset's
        assert isinstance(by_model[model], ModelResult) and by_model[model].val_accuracy == full_accuracy[model]
        assert by_model[model].subset_accuracy == record.subset_accuracy[model]
    for model in record.screened_out:
        assert isinstance(by_model[model], ScreenedOut) and not hasattr(by_model[model], "val_accuracy")
        assert by_model[model].subset_accuracy == record.subset_accuracy[model]
        assert by_model[model].subset_images == (first if model in first.screened_out else last).images
    untrained = [record.subset_accuracy[m] for m in UNTRAINED]
    assert max(untrained) < 0.7 < min(record.subset_accuracy[m] for m in set(SCREENED_MODELS) - UNTRAINED)
    assert {r.model: r.status for r in Store().results(screened.run_id)} == {
        m: by_model[m].status for m in SCREENED_MODELS
    }


def test_predict_on_an_untrained_model_rebuilds_the_network_it_was_trained_on(cats_and_dogs):
    """An untrained base is random: Predict must get the same random network as the sweep, not a new one."""
    model = "MobileNet:0.25@128/none"
    outcome = run_sweep(cats_and_dogs, SweepSettings(models=[model], max_images=60, epochs=2))
    dataset = load_dataset(cats_and_dogs, max_images=60)  # the sweep's images: same seed and split
    ref = ModelRef.parse(model)
    with np.load(Extractor(dataset, ref).cache_path) as saved:
        swept = saved["features"][len(dataset.train) :][:4]  # what the head was trained and scored on

    classifier = load_classifier(outcome.run_id, model)
    rebuilt = classifier.base(np.stack([load_image(r.path, ref.size) for r in dataset.validation[:4]]))
    assert (
        relative_difference(rebuilt, swept) < 1e-4
    )  # the parity bound (ONNX Runtime may have run); a new random network: ~1e-3


def test_trained_classifier_predicts_a_held_out_photo(sweep, cats_and_dogs):
    classifier = load_classifier(sweep.run_id, "MobileNet:0.75")
    cats = sorted((cats_and_dogs / "validation" / "cats").glob("*.jpg"))[:4]
    dogs = sorted((cats_and_dogs / "validation" / "dogs").glob("*.jpg"))[:4]
    probabilities = classifier.predict([open_image(p) for p in cats + dogs])
    assert classifier.classes == ["cats", "dogs"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == [0] * 4 + [1] * 4).mean() >= 0.75


def test_imagenet_top5_names_a_cat(cats_and_dogs):
    photo = sorted((cats_and_dogs / "validation" / "cats").glob("*.jpg"))[0]
    labels = [label for label, _ in imagenet_top5("MobileNet:0.75", open_image(photo))]
    assert len(labels) == 5
    assert set(labels) & {"tabby", "tiger_cat", "Persian_cat", "Siamese_cat", "Egyptian_cat"}, labels


def test_cancel_keeps_finished_models(sweep, cats_and_dogs):
    seen = {}
    outcome = run_sweep(
        cats_and_dogs,
        SweepSettings(models=["MobileNet:0.25", "MobileNet:0.75"]),
        on_progress=lambda progress: seen.setdefault("progress", progress),
        should_stop=lambda: bool(seen and seen["progress"].finished),
    )
    assert [(r.model, r.status) for r in outcome.results] == [("MobileNet:0.25", "ok"), ("MobileNet:0.75", "not run")]
    assert Store().run(outcome.run_id).status == RunStatus.CANCELLED
