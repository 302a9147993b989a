"""The model zoo: every `keras.applications` constructor, and its width variants, described as data.

The zoo is static: each model's constructor, its module and what Keras cannot tell without building it
(parameter count, feature size, published ImageNet accuracy, the weights file it downloads) sit in
`zoo_facts.py`, so reading the zoo imports no Keras (a warm sweep never loads TensorFlow). Only
`preprocess_input` and `build` import Keras. `tests/test_zoo.py` checks the table against the installed
Keras (every constructor has a row, every row a constructor) and against real builds.

A model id names a spec, and optionally its input size and weights: `Constructor[:variant][@size][/weights]`,
e.g. `ResNet50`, `MobileNetV2:0.35`, `MobileNetV3Small:min`, `MobileNet:0.25@128`, `ResNet50@160/none`.
`ModelRef.parse` reads one, once; everything downstream takes the `ModelRef`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from core.errors import WeightsUnavailable
from core.paths import file_stem
from core.zoo_facts import CONSTRUCTOR_MODULES, FAMILIES, MODEL_FACTS, Family

WEIGHTS = ("imagenet", "none")
SUMMARY_COLUMNS = (
    "model",
    "family",
    "params",
    "feature_dim",
    "default_size",
    "imagenet_top1",
    "weights_mb",
    "weights_cached",
)
UNTRAINED_SEED = 1337  # fixed, apart from the sweep seed: an untrained ("none") base is always the same network, so Predict rebuilds it


@dataclass(frozen=True)
class ModelSpec:
    """One pretrained configuration: a constructor, its variant arguments and what is known about it."""

    id: str
    constructor: str
    family: Family
    default_size: int
    params: int  # without the classification top
    feature_dim: int  # length of the globally pooled feature vector
    imagenet_top1: float | None  # published top-1 accuracy (%) of the full ImageNet model
    weights_file: str  # Keras' cache file name for the no-top weights ("{size}" where sizes differ)
    kwargs: dict = field(default_factory=dict)  # variant arguments: alpha, minimalistic

    @property
    def min_size(self) -> int:
        return self.family.min_size

    @property
    def weights_size_mb(self) -> float:
        """Size of the float32 no-top weights in MB (what a download costs)."""
        return self.params * 4 / 1e6

    @cached_property
    def preprocess_input(self) -> Callable:
        """The `preprocess_input` of the model's own Keras module: exactly what its weights expect."""
        import keras

        return getattr(keras.applications, self.family.module).preprocess_input

    def check_size(self, size: int) -> int:
        if not isinstance(size, int) or size < self.min_size:
            raise ValueError(f"{self.id} needs an input size of at least {self.min_size} px. Received: size={size}")
        return size

    def weights_filename(self, size: int | None = None) -> str:
        """The file Keras caches these no-top ImageNet weights as, for an input of `size` px."""
        size = size or self.default_size
        if self.family.weight_sizes and size not in self.family.weight_sizes:
            size = self.default_size  # Keras falls back to its default-size weights
        return self.weights_file.format(size=size)

    def weights_path(self, size: int | None = None) -> Path:
        return keras_cache() / "models" / self.weights_filename(size)

    def weights_cached(self, size: int | None = None) -> bool:
        return self.weights_path(size).exists()

    def build(self, size: int | None = None, weights: str = "imagenet", include_top: bool = False):
        """Build the model. Without the top, it ends in global average pooling (a feature vector).

        Untrained (`weights="none"`), its random initialisation is seeded with `UNTRAINED_SEED`, which
        resets Keras' global random seed. Raises `WeightsUnavailable` when ImageNet weights are neither
        cached nor downloadable.
        """
        import keras

        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={weights}")
        size = self.check_size(size or self.default_size)
        constructor = getattr(keras.applications, self.constructor)
        arguments = dict(
            include_top=include_top,
            weights=None if weights == "none" else weights,
            input_shape=(size, size, 3),
            **self.kwargs,
        )
        if not include_top:
            arguments["pooling"] = "avg"
        if weights == "none":
            keras.utils.set_random_seed(UNTRAINED_SEED)
        try:
            return constructor(**arguments)
        except Exception as error:  # Keras raises a bare Exception for a failed download
            if weights == "imagenet" and "fetch failure" in str(error):
                raise WeightsUnavailable(
                    f"ImageNet weights for {self.id} are not in the Keras cache "
                    f"({self.weights_path(size)}) and could not be downloaded ({error}). "
                    "Connect to the internet once, copy the file there, or run it untrained "
                    "with weights='none'."
                ) from error
            raise

    def describe(self) -> dict:
        """Plain data for tables and JSON."""
        return {
            "model": self.id,
            "family": self.family.name,
            "constructor": self.constructor,
            "params": self.params,
            "feature_dim": self.feature_dim,
            "default_size": self.default_size,
            "min_size": self.min_size,
            "imagenet_top1": self.imagenet_top1,
            "weights_mb": round(self.weights_size_mb, 1),
            "weights_cached": self.weights_cached(),
            "preprocessing": str(self.family.preprocessing),
            "paper": self.family.paper,
            "year": self.family.year,
        }


def keras_cache() -> Path:
    """Keras' cache folder: `$KERAS_HOME`, else `~/.keras`, else `/tmp/.keras` when not writable."""
    base = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())
    if not os.access(base if base.exists() else base.parent, os.W_OK):
        base = Path("/tmp/.keras")
    return base


def _specs() -> dict[str, ModelSpec]:
    """One spec per model id, from the facts table alone (no Keras import)."""
    specs = {}
    for model_id, facts in MODEL_FACTS.items():
        constructor = model_id.split(":")[0]
        family = FAMILIES[CONSTRUCTOR_MODULES[constructor]]
        specs[model_id] = ModelSpec(id=model_id, constructor=constructor, family=family, **facts)
    return specs


_ZOO: dict[str, ModelSpec] = {}


def zoo() -> dict[str, ModelSpec]:
    """All models, by id, in a stable order (the facts table's: by constructor, then variant)."""
    if not _ZOO:
        _ZOO.update(_specs())
    return _ZOO


@dataclass(frozen=True)
class ModelRef:
    """A model id resolved once: its spec, the input size it runs at and the weights it loads.

    Which size wins: the size in the id (`@128`), else the sweep's image size, else the model's default.
    Which weights win: those in the id (`/none`), else the sweep's.
    """

    id: str  # as written (without surrounding spaces): the key of the model's result
    spec: ModelSpec
    size: int
    weights: str

    @classmethod
    def parse(cls, model_id: str, image_size: int | None = None, weights: str = "imagenet") -> ModelRef:
        """`MobileNet:0.25@128/none` -> (the MobileNet:0.25 spec, 128 px, untrained)."""
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={weights}")
        text = model_id.strip()
        name_and_size, slash, id_weights = text.partition("/")
        name, at, size_text = name_and_size.partition("@")
        spec = zoo().get(name)
        if spec is None:
            family = name.split(":")[0]
            variants = [key for key in zoo() if key.split(":")[0] == family]
            hint = f" Variants of {family}: {', '.join(variants)}." if variants else " See `python -m core models`."
            raise ValueError(f"Unknown model id.{hint} Received: model={model_id!r}")
        if at and not size_text.isdigit():
            raise ValueError(f"The size after '@' must be a whole number of pixels. Received: model={model_id!r}")
        if slash and id_weights not in WEIGHTS:
            raise ValueError(f"The weights after '/' must be one of {WEIGHTS}. Received: model={model_id!r}")
        size = int(size_text) if size_text else image_size or spec.default_size
        return cls(text, spec, spec.check_size(size), id_weights if slash else weights)

    @property
    def stem(self) -> str:
        """The file name of everything cached for this network: spec, weights and size."""
        return file_stem(f"{self.spec.id}-{self.weights}-{self.size}")

    def build(self, include_top: bool = False):
        """The Keras model (see `ModelSpec.build`)."""
        return self.spec.build(self.size, self.weights, include_top)
