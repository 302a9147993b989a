"""The model zoo: a static table checked against the installed Keras and real builds, preprocessing pinned per family."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from core.errors import WeightsUnavailable
from core.zoo import ModelRef, zoo
from core.zoo_facts import CONSTRUCTOR_MODULES, FAMILIES

REPO = Path(__file__).resolve().parents[1]


def installed_constructors() -> dict[str, str]:
    """Every constructor of the installed `keras.applications`, with the submodule it lives in."""
    return {
        name: function.__module__.rsplit(".", 1)[-1]
        for name, function in vars(keras.applications).items()
        if inspect.isfunction(function) and name[0].isupper()
    }


def test_every_applications_constructor_is_in_the_zoo():
    installed = installed_constructors()
    assert len(installed) == 40
    assert {spec.constructor for spec in zoo().values()} == set(installed)  # a row for each, and no other
    assert installed == CONSTRUCTOR_MODULES  # each in the module Keras has it in
    assert set(CONSTRUCTOR_MODULES.values()) == set(FAMILIES)  # every family has a constructor


def test_each_model_gets_its_constructor_and_the_preprocessing_of_its_module():
    for spec in zoo().values():
        constructor = getattr(keras.applications, spec.constructor)
        assert constructor.__module__.endswith(f".{spec.family.module}")
        module = getattr(keras.applications, spec.family.module)
        assert spec.preprocess_input is module.preprocess_input


def test_the_zoo_is_read_without_importing_keras():
    code = (
        "import sys\n"
        "from core.zoo import ModelRef, zoo\n"
        "assert len(zoo()) == 52 and ModelRef.parse('MobileNet:0.25@128/none').size == 128\n"
        "print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_width_variants_are_models():
    ids = set(zoo())
    assert {f"MobileNet:{a}" for a in ("0.25", "0.5", "0.75", "1.0")} <= ids
    assert {f"MobileNetV2:{a}" for a in ("0.35", "0.5", "0.75", "1.0", "1.3", "1.4")} <= ids
    for name in ("MobileNetV3Small", "MobileNetV3Large"):
        assert {f"{name}:0.75", f"{name}:1.0", f"{name}:min"} <= ids
    assert zoo()["MobileNetV3Small:min"].kwargs == {"alpha": 1.0, "minimalistic": True}


# Every id form the README lists: (id, spec id, the size in the id, the weights in the id, the stem at the defaults).
ID_FORMS = [
    ("ResNet50", "ResNet50", None, None, "ResNet50-imagenet-224"),
    ("MobileNet:0.25", "MobileNet:0.25", None, None, "MobileNet_0.25-imagenet-224"),
    ("MobileNetV2:1.4", "MobileNetV2:1.4", None, None, "MobileNetV2_1.4-imagenet-224"),
    ("MobileNetV3Small:min", "MobileNetV3Small:min", None, None, "MobileNetV3Small_min-imagenet-224"),
    ("MobileNet:0.25@128", "MobileNet:0.25", 128, None, "MobileNet_0.25-imagenet-128"),
    ("ResNet50@160/none", "ResNet50", 160, "none", "ResNet50-none-160"),
    ("MobileNet:0.5@128/none", "MobileNet:0.5", 128, "none", "MobileNet_0.5-none-128"),
    ("MobileNet:0.25/none", "MobileNet:0.25", None, "none", "MobileNet_0.25-none-224"),
]


@pytest.mark.parametrize("model_id,spec_id,id_size,id_weights,stem", ID_FORMS, ids=[form[0] for form in ID_FORMS])
def test_model_refs_parse_every_id_form(model_id, spec_id, id_size, id_weights, stem):
    spec = zoo()[spec_id]
    ref = ModelRef.parse(model_id)
    assert (ref.id, ref.spec, ref.size, ref.weights, ref.stem) == (
        model_id,
        spec,
        id_size or spec.default_size,
        id_weights or "imagenet",
        stem,
    )
    # A sweep's image size and weights are defaults: the size and weights in the id win.
    assert ModelRef.parse(model_id, image_size=96).size == (id_size or 96)
    assert ModelRef.parse(model_id, weights="imagenet").weights == (id_weights or "imagenet")
    assert ModelRef.parse(model_id, weights="none").weights == (id_weights or "none")
    untrained_small = ModelRef.parse(model_id, image_size=96, weights="none")
    assert untrained_small.stem == f"{spec_id.replace(':', '_')}-{id_weights or 'none'}-{id_size or 96}"
    assert ModelRef.parse(f"  {model_id} ") == ref  # surrounding spaces are not part of the id


def test_model_ids_parse_with_optional_size():
    ref = ModelRef.parse("MobileNet:0.25@128")
    assert (ref.spec.id, ref.spec.kwargs, ref.size) == ("MobileNet:0.25", {"alpha": 0.25}, 128)
    assert ModelRef.parse("ResNet50").spec == zoo()["ResNet50"]
    with pytest.raises(
        ValueError, match=r"Variants of MobileNetV2: .*MobileNetV2:0.35.*Received: model='MobileNetV2:0.3'"
    ):
        ModelRef.parse("MobileNetV2:0.3")
    with pytest.raises(ValueError, match=r"Unknown model id. See `python -m core models`. Received: model='ResNet51'"):
        ModelRef.parse("ResNet51")
    with pytest.raises(ValueError, match="at least 75 px. Received: size=64"):
        ModelRef.parse("InceptionV3@64")
    with pytest.raises(ValueError, match="at least 75 px. Received: size=64"):
        ModelRef.parse("InceptionV3", image_size=64)  # a sweep's size is checked too
    with pytest.raises(ValueError, match="whole number"):
        ModelRef.parse("ResNet50@big")
    with pytest.raises(ValueError, match="whole number.*Received: model='ResNet50@abc'"):
        ModelRef.parse("ResNet50@abc")
    with pytest.raises(ValueError, match="whole number.*Received: model='ResNet50@'"):
        ModelRef.parse("ResNet50@")  # an '@' promises a size


def test_model_ids_may_carry_weights():
    ref = ModelRef.parse("MobileNet:0.25@128/none")
    assert (ref.spec.id, ref.size, ref.weights) == ("MobileNet:0.25", 128, "none")
    assert ModelRef.parse("MobileNet:0.25@128", weights="imagenet").weights == "imagenet"
    with pytest.raises(ValueError, match="one of .*Received: model='MobileNet:0.25/random'"):
        ModelRef.parse("MobileNet:0.25/random")
    with pytest.raises(ValueError, match=r"weights must be one of \('imagenet', 'none'\). Received: weights=foo"):
        ModelRef.parse("MobileNet:0.25", weights="foo")


def test_a_model_ref_builds_its_network():
    model = ModelRef.parse("MobileNet:0.25@32/none").build()
    assert tuple(model.input_shape) == (None, 32, 32, 3) and tuple(model.output_shape) == (None, 256)
    keras.backend.clear_session()


@pytest.mark.parametrize("model_id", list(zoo()))
def test_builds_untrained_at_a_small_size_with_its_documented_features(model_id):
    spec = zoo()[model_id]
    model = spec.build(spec.min_size, weights="none")
    features = model(np.zeros((1, spec.min_size, spec.min_size, 3), "float32"), training=False)
    assert tuple(features.shape) == (1, spec.feature_dim)
    assert model.count_params() == spec.params
    keras.backend.clear_session()


def _caffe(rgb):
    return np.array(rgb, "float32")[::-1] - [103.939, 116.779, 123.68]


def _torch(rgb):
    return (np.array(rgb, "float32") / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]


# One pixel (R, G, B) = (255, 128, 0) through each family's preprocessing. ResNet50 scored 49.6% on
# cats-vs-dogs in a well-known comparison because every model got x / 255 instead of these.
PIXEL = (255.0, 128.0, 0.0)
EXPECTED = {
    "ResNet50": _caffe(PIXEL),
    "ResNet152": _caffe(PIXEL),
    "VGG16": _caffe(PIXEL),
    "VGG19": _caffe(PIXEL),
    "MobileNet:0.25": [1.0, 128 / 127.5 - 1, -1.0],
    "MobileNetV2:0.35": [1.0, 128 / 127.5 - 1, -1.0],
    "ResNet50V2": [1.0, 128 / 127.5 - 1, -1.0],
    "InceptionV3": [1.0, 128 / 127.5 - 1, -1.0],
    "Xception": [1.0, 128 / 127.5 - 1, -1.0],
    "NASNetMobile": [1.0, 128 / 127.5 - 1, -1.0],
    "DenseNet121": _torch(PIXEL),
    "EfficientNetB0": PIXEL,
    "EfficientNetV2B0": PIXEL,
    "ConvNeXtTiny": PIXEL,
    "MobileNetV3Small:1.0": PIXEL,
}


@pytest.mark.parametrize("model_id", EXPECTED)
def test_each_family_gets_its_own_preprocessing(model_id):
    out = zoo()[model_id].preprocess_input(np.array([[[PIXEL]]], "float32"))
    np.testing.assert_allclose(np.asarray(out)[0, 0, 0], EXPECTED[model_id], rtol=1e-5, atol=1e-4)


def test_every_model_has_a_family_preprocessing_description():
    for spec in zoo().values():
        assert spec.family.preprocessing.mode in {"caffe", "tf", "torch", "none"}


@pytest.mark.parametrize(
    "model_id,size",
    [("MobileNetV2:0.35", 224), ("MobileNet:0.75", 224)] + [("MobileNet:0.25", s) for s in (128, 160, 192, 224)],
)
def test_shared_weights_are_found_in_the_keras_cache(model_id, size):
    spec = zoo()[model_id]
    assert spec.weights_cached(size), spec.weights_path(size)


# One member of each family: the constructor must ask Keras' cache for the file name in our table.
REPRESENTATIVES = [
    "ConvNeXtTiny",
    "DenseNet121",
    "EfficientNetB0",
    "EfficientNetV2B0",
    "InceptionV3",
    "MobileNet:0.5",
    "MobileNetV2:1.4",
    "MobileNetV3Large:min",
    "NASNetMobile",
    "ResNet50",
    "ResNet50V2",
    "VGG16",
    "Xception",
]


@pytest.mark.parametrize("model_id", REPRESENTATIVES)
def test_weights_file_names_match_what_keras_downloads(model_id, monkeypatch):
    from keras.src.utils import file_utils

    asked = []

    def no_download(fname=None, origin=None, **kwargs):
        asked.append(fname)
        raise Exception(f"URL fetch failure on {origin}: offline in this test")

    monkeypatch.setattr(file_utils, "get_file", no_download)
    spec = zoo()[model_id]
    assert not spec.weights_cached()
    with pytest.raises(WeightsUnavailable, match=f"ImageNet weights for {model_id} are not in the Keras cache"):
        spec.build()
    assert asked == [spec.weights_filename()]
    keras.backend.clear_session()
