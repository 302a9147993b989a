"""Fine-tuning a finished model, on real photos with the shared ImageNet weights: BatchNormalization stays
frozen, the frozen model is kept when no epoch beats it, and the result sits beside the frozen one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import run_data
from core.complete import load_complete
from core.finetune import AUGMENT, FineTuneSettings, _training_data, fine_tune, fine_tuned_name, unfreeze
from core.records import Failed, ModelResult, RunStatus
from core.store import Store

MODEL = "MobileNet:0.25@128"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_id(finished_copy) -> int:
    """The session's finished sweep of MODEL on cats and dogs, in this module's own copy: fine-tuning writes into it."""
    assert [result.model for result in finished_copy.outcome.results] == [MODEL]
    return finished_copy.run_id


def _frozen(run_id: int) -> ModelResult:
    return next(r for r in Store().results(run_id) if r.model == MODEL)


def _held_out(run_id: int) -> np.ndarray:
    store = Store()
    dataset = run_data.run_dataset(store.run(run_id), _frozen(run_id))
    return run_data.images(dataset.validation, 128)


def _one_epoch_at_learning_rate_0(run_id: int, batch_norm_trainable: bool) -> float:
    """The largest change of held-out probabilities after one training epoch at learning rate 0."""
    import keras

    network = load_complete(_frozen(run_id))
    held_out = _held_out(run_id)
    before = network.predict(held_out, verbose=0)
    unfreeze(network, None)
    if batch_norm_trainable:  # the mistake the recipe avoids
        for layer in network.get_layer("base").layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = True
    network.compile(optimizer=keras.optimizers.Adam(0.0), loss="sparse_categorical_crossentropy")
    dataset = run_data.run_dataset(Store().run(run_id), _frozen(run_id))
    settings = FineTuneSettings(epochs=1, **AUGMENT)  # augmented, as a user may ask: it changes nothing at lr 0
    train = _training_data(run_data.images(dataset.train, 128), run_data.labels(dataset.train), settings)
    network.fit(train, epochs=1, verbose=0)
    return float(np.abs(network.predict(held_out, verbose=0) - before).max())


def test_an_epoch_at_learning_rate_0_leaves_predictions_unchanged(run_id):
    assert _one_epoch_at_learning_rate_0(run_id, batch_norm_trainable=False) < 1e-5


def test_trainable_batch_norm_would_change_them_even_at_learning_rate_0(run_id):
    assert _one_epoch_at_learning_rate_0(run_id, batch_norm_trainable=True) > 1e-2


def test_augmentation_changes_pixels_but_not_shapes_or_labels(run_id):
    dataset = run_data.run_dataset(Store().run(run_id), _frozen(run_id))
    images, labels = run_data.images(dataset.train[:32], 128), run_data.labels(dataset.train[:32])
    plain = next(iter(_training_data(images, labels, FineTuneSettings(batch_size=32))))
    augmented = next(iter(_training_data(images, labels, FineTuneSettings(batch_size=32, **AUGMENT))))
    assert augmented[0].dtype == plain[0].dtype == "uint8" and augmented[0].shape == plain[0].shape
    assert sorted(augmented[1].numpy()) == sorted(plain[1].numpy()) == sorted(labels)
    assert not np.array_equal(np.sort(augmented[0].numpy(), axis=None), np.sort(plain[0].numpy(), axis=None))


def test_unfreeze_trains_the_top_layers_and_never_batch_norm(run_id):
    import keras

    network = load_complete(_frozen(run_id))
    assert unfreeze(network, 3) == 3
    base = network.get_layer("base")
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert trainable == ["conv_pw_12", "conv_dw_13", "conv_pw_13"]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in base.layers)
    everything = unfreeze(network, None)
    assert everything == 27  # MobileNet: 1 + 13 x 2 convolutions
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in base.layers)


def test_fine_tuned_result_sits_beside_the_frozen_one(run_id):
    frozen = _frozen(run_id)
    result = fine_tune(run_id, MODEL, FineTuneSettings(epochs=2, learning_rate=1e-4))
    stored = {r.model: r for r in Store().results(run_id)}
    assert stored[fine_tuned_name(MODEL)] == result and stored[MODEL] == frozen
    tuning = result.fine_tuning
    assert tuning.source == MODEL and tuning.frozen_accuracy == frozen.test_accuracy
    assert tuning.lift == pytest.approx(result.test_accuracy - frozen.test_accuracy)
    assert tuning.lift_ci[0] <= tuning.lift <= tuning.lift_ci[1]
    # the frozen model is the bar to beat on validation (Keras counts in float32)
    assert result.val_accuracy >= frozen.val_accuracy - 1e-6
    assert result.test_labels == frozen.test_labels and result.network == MODEL
    assert 1 <= result.epochs_run <= 2 and tuning.seconds_per_epoch > 0
    assert [row["epoch"] for row in Store().history(run_id, result.model)] == list(range(1, result.epochs_run + 1))
    # the saved complete model predicts what was scored
    network = load_complete(result)
    dataset = run_data.run_dataset(Store().run(run_id), frozen)
    predictions = network.predict(run_data.images(dataset.test, 128), verbose=0).argmax(axis=1)
    assert predictions.tolist() == result.test_predictions


def test_no_better_epoch_keeps_the_frozen_weights(run_id):
    frozen = _frozen(run_id)
    result = fine_tune(run_id, MODEL, FineTuneSettings(epochs=1, learning_rate=0.0))
    assert result.fine_tuning.kept_frozen and result.best_epoch == 0
    assert result.test_predictions == frozen.test_predictions and result.fine_tuning.lift == 0


def test_cancel_keeps_nothing(run_id):
    before = Store().results(run_id)
    assert fine_tune(run_id, MODEL, FineTuneSettings(epochs=3), should_stop=lambda: True) is None
    assert [r.model for r in Store().results(run_id)] == [r.model for r in before]


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(epochs=0), "epochs must be a positive integer. Received: epochs=0"),
        (dict(unfreeze=-1), "Received: unfreeze=-1"),
        (dict(learning_rate=2.0), "Received: learning_rate=2.0"),
        (dict(rotation=1.5), "Received: rotation=1.5"),
    ],
)
def test_settings_are_checked_up_front(settings, message):
    with pytest.raises(ValueError, match=message):
        FineTuneSettings(**settings)


def test_only_finished_frozen_models_can_be_fine_tuned(run_id):
    with pytest.raises(ValueError, match=r"no finished frozen model 'ResNet50'.*Finished: \['MobileNet:0.25@128'\]"):
        fine_tune(run_id, "ResNet50")
    with pytest.raises(ValueError, match="no finished frozen model"):
        fine_tune(run_id, fine_tuned_name(MODEL))


def test_background_job_runs_and_the_run_returns_to_done(run_id):
    from core.worker import active_run, start_finetune

    store = Store()
    start_finetune(run_id, [MODEL], FineTuneSettings(epochs=1, unfreeze=2))
    assert store.run(run_id).status.active and store.run(run_id).job["models"] == [MODEL]
    assert store.process(run_id)[0] is not None  # the queue was empty: its worker started at once
    with pytest.raises(ValueError, match="Only a finished run can be fine-tuned"):
        start_finetune(run_id, [MODEL], FineTuneSettings(epochs=1))
    deadline = time.time() + 240
    while active_run(store) and time.time() < deadline:
        time.sleep(1)
    run = store.run(run_id)
    assert run.status == RunStatus.DONE and run.job is None, (run.status, run.error)
    result = next(r for r in store.results(run_id) if r.model == fine_tuned_name(MODEL))
    assert isinstance(result, ModelResult) and result.fine_tuning.unfreeze == 2
    assert store.progress(run_id).fraction == 1.0


def test_cli_finetune_prints_the_lift_and_refuses_unknown_models(run_id, finished_copy):
    environment = {**os.environ, "TRANSFERBENCH_HOME": str(finished_copy.home)}
    command = [sys.executable, "-m", "core", "finetune", "--run", str(run_id), "--epochs", "1", "--unfreeze", "4"]
    done = subprocess.run([*command, "--model", MODEL], capture_output=True, text=True, env=environment, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"{MODEL}: " in done.stdout and "frozen ->" in done.stdout and "lift" in done.stdout
    refused = subprocess.run([*command, "--model", "Nope"], capture_output=True, text=True, env=environment, cwd=REPO)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "error: Run" in refused.stderr and "no finished frozen model 'Nope'" in refused.stderr
    results = {r.model: r for r in Store().results(run_id)}
    assert not any(isinstance(r, Failed) for r in results.values())
    assert results[fine_tuned_name(MODEL)].fine_tuning.unfreeze == 4
    assert json.loads(json.dumps(results[fine_tuned_name(MODEL)].row()))["lift"] is not None
