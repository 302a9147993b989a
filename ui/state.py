"""The session state the pages share: one key per fact, read and written through these functions only."""

from __future__ import annotations

import streamlit as st

from core import config

_DATASET = "dataset"  # the chosen dataset: a folder or zip on the server
_MODELS = "models"  # the chosen model ids, kept for the Train page
_RUN_ID = "run_id"  # the run last started or looked at
_HOLDOUT = "holdout"
_SEED = "seed"
MODELS_WIDGET = "models_widget"  # the Models page's multiselect, which owns its own key
UNTRAINED_WIDGET = "untrained_widget"  # the Train page's choice of models to run without ImageNet weights


def dataset() -> str | None:
    return st.session_state.get(_DATASET)


def set_dataset(source: object | None) -> None:
    """Choose a dataset for the session (a path), or forget it (None)."""
    if source is None:
        st.session_state.pop(_DATASET, None)
    else:
        st.session_state[_DATASET] = str(source)


def models() -> list[str]:
    return list(st.session_state.get(_MODELS, []))


def set_models(model_ids: list[str]) -> None:
    st.session_state[_MODELS] = list(model_ids)


def run_id() -> int | None:
    return st.session_state.get(_RUN_ID)


def set_run_id(run_id: int) -> None:
    st.session_state[_RUN_ID] = run_id


def holdout() -> float:
    return st.session_state.get(_HOLDOUT, config.DEFAULT_HOLDOUT)


def seed() -> int:
    return st.session_state.get(_SEED, config.DEFAULT_SEED)


def set_holdout_and_seed(holdout: float, seed: int) -> None:
    """The Train page's choices, which the Data page's checks use too."""
    st.session_state[_HOLDOUT], st.session_state[_SEED] = holdout, int(seed)


def untrained() -> list[str]:
    """The models the Train page runs untrained (their weights cannot be had here)."""
    return list(st.session_state.get(UNTRAINED_WIDGET, []))


def choose_untrained(model: str) -> None:
    st.session_state[UNTRAINED_WIDGET] = [*untrained(), model]
