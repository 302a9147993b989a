"""Where ImageNet weights come from: which input sizes are cached or would be downloaded, and the untrained
variant (`MODEL/none`) offered explicitly where weights cannot be had."""

from __future__ import annotations

import streamlit as st

from core.errors import WeightsUnavailable
from core.records import Failed, Result
from core.zoo import ModelRef, ModelSpec
from ui import state


def untrained_id(model_id: str) -> str:
    """`MobileNet:0.25@128` -> `MobileNet:0.25@128/none`: the same network and size, untrained."""
    return f"{model_id.partition('/')[0]}/none"


def weights_line(spec: ModelSpec) -> str:
    """`ImageNet weights: 128 px cached · 160 px to download (1.9 MB) · …` for the Models page."""
    sizes = spec.family.weight_sizes or (spec.default_size,)
    parts = [
        f"{size} px {'cached' if spec.weights_cached(size) else f'to download ({spec.weights_size_mb:.1f} MB)'}"
        for size in sizes
    ]
    scope = "" if spec.family.weight_sizes else " (one file, used at every input size)"
    other = (
        f"; other sizes use the {spec.default_size} px weights"
        if spec.family.weight_sizes and spec.default_size in sizes
        else ""
    )
    return f":material/download: **ImageNet weights:** {' · '.join(parts)}{scope}{other}."


def missing_weights(models: list[str], image_size: int | None) -> list[str]:
    """The models that would load ImageNet weights that are not in the Keras cache at the size they run at."""
    missing = []
    for model_id in models:
        try:
            ref = ModelRef.parse(model_id, image_size)
        except ValueError:
            continue  # the sweep's settings report it
        if ref.weights == "imagenet" and not ref.spec.weights_cached(ref.size):
            missing.append(model_id)
    return missing


def untrained_choice(models: list[str], image_size: int | None) -> list[str]:
    """Warn about models whose weights must be downloaded and let the user run them untrained instead; the models
    with the chosen ones as their untrained ids."""
    missing = missing_weights(models, image_size)
    if not missing:
        return models
    st.warning(
        f"ImageNet weights are not cached here for {', '.join(missing)}: they are downloaded when the sweep "
        "starts. Without internet access that model fails; you can run it untrained instead (random weights: "
        "far less accurate, but it runs anywhere).",
        icon=":material/cloud_download:",
    )
    st.session_state[state.UNTRAINED_WIDGET] = [model for model in state.untrained() if model in missing]
    untrained = st.multiselect("Run untrained instead (no ImageNet weights)", missing, key=state.UNTRAINED_WIDGET)
    return [untrained_id(model) if model in untrained else model for model in models]


def offer_untrained(results: list[Result], models: list[str]) -> None:
    """After a sweep, for each of `models` (those to sweep next) that failed for want of weights: a button that
    chooses its untrained variant instead."""
    for failed in (r for r in results if isinstance(r, Failed) and WeightsUnavailable.__name__ in r.error):
        if failed.model not in models or failed.model in state.untrained():
            continue
        st.button(
            f"Sweep {untrained_id(failed.model)} (untrained) instead",
            icon=":material/swap_horiz:",
            key=f"untrained-{failed.model}",
            on_click=state.choose_untrained,
            args=(failed.model,),
            help="Its ImageNet weights could not be had here: the same network with random weights runs anywhere.",
        )
