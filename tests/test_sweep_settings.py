"""Sweep settings are checked up front, resolve each model id once, and survive the store's JSON."""

from __future__ import annotations

import json

import pytest

from core import config
from core.sweep import SweepSettings
from core.zoo import ModelRef


def test_model_ids_may_carry_size_and_weights():
    settings = SweepSettings(models=["MobileNet:0.25@128/none", "ResNet50"], weights="imagenet")
    ref = settings.ref("MobileNet:0.25@128/none")
    assert isinstance(ref, ModelRef) and (ref.spec.id, ref.size, ref.weights) == ("MobileNet:0.25", 128, "none")
    assert settings.ref("MobileNet:0.25@128").weights == "imagenet"
    with pytest.raises(ValueError, match="Received: model='MobileNet:0.25/random'"):
        SweepSettings(models=["MobileNet:0.25/random"])


def test_screening_settings_are_checked():
    assert SweepSettings(models=["ResNet50", "ResNet50/none"], screen=0.2).screen == 0.2
    with pytest.raises(ValueError, match="Received: screen=1.5"):
        SweepSettings(models=["ResNet50"], screen=1.5)
    with pytest.raises(ValueError, match="Received: screen_keep=0"):
        SweepSettings(models=["ResNet50"], screen=0.2, screen_keep=0)
    with pytest.raises(ValueError, match="once"):
        SweepSettings(models=["ResNet50", "ResNet50"])


def test_sweep_settings_check_arguments_up_front():
    with pytest.raises(ValueError, match="at least one model"):
        SweepSettings(models=[])
    with pytest.raises(ValueError, match="Received: weights=random"):
        SweepSettings(models=["ResNet50"], weights="random")
    with pytest.raises(ValueError, match="Received: epochs=0"):
        SweepSettings(models=["ResNet50"], epochs=0)
    with pytest.raises(ValueError, match="Unknown model id"):
        SweepSettings(models=["ResNet51"])
    with pytest.raises(ValueError, match="at least 75 px"):
        SweepSettings(models=["InceptionV3"], image_size=64)
    with pytest.raises(ValueError, match="Received: runtime=gpu"):
        SweepSettings(models=["ResNet50"], runtime="gpu")
    settings = SweepSettings(models=["MobileNet:0.25@128", "ResNet50"], image_size=96)
    assert (settings.ref("MobileNet:0.25@128").size, settings.ref("ResNet50").size) == (128, 96)
    assert SweepSettings(models=["ResNet50"]).ref("ResNet50").size == 224  # the model's default


def test_thirty_percent_of_plain_class_folders_is_held_out_by_default():
    assert SweepSettings(models=["ResNet50"]).holdout == config.DEFAULT_HOLDOUT == 0.3


def test_ids_weights_win_over_the_sweeps():
    settings = SweepSettings(models=["ResNet50@160/none", "MobileNet:0.25/imagenet", "MobileNet:0.5"], weights="none")
    weights = [settings.ref(model).weights for model in settings.models]
    assert weights == ["none", "imagenet", "none"]


def test_settings_survive_the_store(monkeypatch):
    monkeypatch.delenv("TRANSFERBENCH_HOSTED", raising=False)
    settings = SweepSettings(
        models=["MobileNet:0.25@128/none", "ResNet50"], image_size=96, epochs=5, screen=0.2, holdout=0.4
    )
    data = json.loads(json.dumps(settings.to_dict()))  # as a run's settings column holds them
    assert data["models"] == ["MobileNet:0.25@128/none", "ResNet50"]
    assert data["holdout"] == 0.4 and "val_split" not in data
    assert SweepSettings(**data) == settings  # what the background worker rebuilds


def test_hosted_mode_caps_models_and_images(monkeypatch):
    monkeypatch.setenv("TRANSFERBENCH_HOSTED", "1")
    with pytest.raises(ValueError, match=r"up to 5M parameters.*Received: models=\['ResNet50'\]"):
        SweepSettings(models=["MobileNet:0.25", "ResNet50"])
    assert SweepSettings(models=["MobileNet:0.25"]).max_images == 1000
    assert SweepSettings(models=["MobileNet:0.25"], max_images=200).max_images == 200
    monkeypatch.setenv("TRANSFERBENCH_HOSTED", "0")
    assert SweepSettings(models=["ResNet50"]).max_images is None
