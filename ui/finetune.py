"""The Compare page's Fine-tune panel: choose the best frozen models, set the recipe, start the background job,
and follow it live (progress, per-epoch validation accuracy, Cancel) until its results join the table."""

from __future__ import annotations

import streamlit as st

from core import scheduler, worker
from core.finetune import AUGMENT, MAX_MODELS_PER_JOB, FineTuneSettings, fine_tuned_name
from core.progress import Progress, Stage
from core.records import Failed, ModelResult, Result, Run, Status
from core.store import Store
from ui import state
from ui.charts import history_figure
from ui.guard import page_store, plain
from ui.live import waiting_text

LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
DEFAULTS = FineTuneSettings()


def tunable(results: list[Result]) -> list[ModelResult]:
    """The run's finished frozen models, most accurate on the test images first."""
    frozen = [r for r in results if isinstance(r, ModelResult) and r.status == Status.OK and not r.fine_tuning]
    return sorted(frozen, key=lambda r: r.test_accuracy, reverse=True)


def finetuning(run: Run) -> bool:
    """True while `run` is active again after its sweep, for a fine-tuning job (waiting or running)."""
    return run.status.active and run.job is not None


def settings_form() -> FineTuneSettings:
    """The recipe, in an expander: epochs, layers to unfreeze, learning rate and augmentation."""
    with st.expander("Settings", icon=":material/tune:"):
        cols = st.columns(3)
        epochs = cols[0].number_input("Max epochs (early stopping)", 1, 50, DEFAULTS.epochs, key="ft-epochs")
        learning_rate = cols[1].select_slider(
            "Learning rate", LEARNING_RATES, DEFAULTS.learning_rate, format_func="{:g}".format, key="ft-lr"
        )
        scope = cols[2].radio("Unfreeze", ["All layers", "Top layers only"], key="ft-scope", horizontal=True)
        top = cols[2].number_input(
            "Top convolution layers to train", 1, 500, 20, key="ft-top", disabled=scope == "All layers"
        )
        left, right = st.columns(2)
        augment = left.toggle("Augmentation (small rotations, zoom, contrast)", value=False, key="ft-augment")
        flip = right.toggle("Horizontal flips", value=AUGMENT["flip"], key="ft-flip", disabled=not augment)
        st.caption(
            ":material/info: Turn flips off where a mirror image is another class (digits, letters, arrows, "
            "left/right signs). Augmentation is off by default: in 8 epochs on Fashion-MNIST it cost about a "
            "point. BatchNormalization stays frozen; the epoch is chosen on validation, and the frozen model is "
            "kept when no epoch beats it."
        )
    return FineTuneSettings(
        epochs=int(epochs),
        unfreeze=None if scope == "All layers" else int(top),
        learning_rate=float(learning_rate),
        **({**AUGMENT, "flip": flip} if augment else {}),
    )


def finetune_panel(store: Store, run: Run, results: list[Result]) -> None:
    """Choose, start and follow a fine-tuning job on `run`."""
    st.subheader("Fine-tune")
    active = worker.active_run(store)
    if active and active.id == run.id and finetuning(active):
        live(run.id)
        return
    candidates = tunable(results)
    if not candidates:
        st.caption("No finished frozen model in this run to fine-tune.")
        return
    by_name = {r.model: r for r in candidates}
    chosen = st.multiselect(
        f"Models (the most accurate first; up to {MAX_MODELS_PER_JOB})",
        list(by_name),
        default=[candidates[0].model],
        max_selections=MAX_MODELS_PER_JOB,
        format_func=lambda name: f"{name} · {by_name[name].test_accuracy:.1%}",
        key=f"ft-models-{run.id}",
    )
    settings = settings_form()
    reason = active and f"Run #{active.id} is {active.status}: one job at a time; start when it has finished."
    reason = reason or (not chosen and "Choose at least one model.")
    if st.button("Start fine-tuning", type="primary", icon=":material/tune:", disabled=bool(reason), key="ft-start"):
        try:
            worker.start_finetune(run.id, chosen, settings, store)
            state.set_run_id(run.id)
            st.rerun()
        except ValueError as error:
            st.error(plain(error), icon=":material/error:")
    if reason:
        st.caption(f":material/block: {reason}")
    tuned = [r for r in results if isinstance(r, ModelResult) and r.fine_tuning]
    for result in tuned:
        st.markdown(outcome_line(result))


def outcome_line(result: ModelResult) -> str:
    """`X fine-tuned: 88.0% → 90.1% test accuracy, +2.1 points (95% CI ...), McNemar p=0.03 · 4 epochs, 12 s each`"""
    tuning = result.fine_tuning
    low, high = (value * 100 for value in tuning.lift_ci)
    kept = " · :material/lock: frozen weights kept (no epoch beat them on validation)" if tuning.kept_frozen else ""
    return (
        f":material/check_circle: **{result.model}**: {tuning.frozen_accuracy:.1%} → {result.test_accuracy:.1%} test "
        f"accuracy, {tuning.lift * 100:+.1f} points (95% CI {low:+.1f} to {high:+.1f}), McNemar p={tuning.p_value:.2g}"
        f" · {result.epochs_run} epoch(s), {tuning.seconds_per_epoch:.1f} s each{kept}"
    )


def job_lines(models: list[str], progress: Progress | None, results: dict[str, Result]) -> None:
    """One line per model of the job: its result, what it is doing, or that it waits."""
    current = progress and progress.model
    for model in models:
        name = fine_tuned_name(model)
        result = results.get(name)
        if name == current and progress.stage not in (Stage.DONE, Stage.CANCELLED):
            batches = f", batch {progress.done}/{progress.total}" if progress.total else ""
            st.markdown(f":material/progress_activity: **{name}**: {progress.stage} {progress.step}{batches}")
        elif isinstance(result, ModelResult):
            st.markdown(outcome_line(result))
        elif isinstance(result, Failed):
            st.markdown(f":material/error: **{name}**: failed: {plain(result.error)}")
        else:
            st.markdown(f":material/schedule: {name}: pending")


def job_progress(models: list[str], progress: Progress | None) -> tuple[float, str]:
    """The bar's fraction and caption over the whole job (each model an equal share)."""
    if progress is None or progress.stage in (Stage.DONE, Stage.CANCELLED) or progress.model in models:
        return 0.0, "0% · starting the worker"  # the progress left by the sweep, or by an earlier job
    job = [fine_tuned_name(model) for model in models]
    index, count = (job.index(progress.model), len(job)) if progress.model in job else (0, 1)
    fraction = (index + progress.fraction) / count
    which = f"model {index + 1} of {count} · " if count > 1 else ""
    step = f"{progress.stage} {progress.step}".strip()
    return fraction, f"{fraction:.0%} · {which}{progress.model}: {step} · {progress.timing_text()}"


@st.fragment(run_every=1)
def live(run_id: int) -> None:
    """The running job: progress bar, Cancel, one line per model and the per-epoch validation accuracy."""
    store = page_store()
    run, progress = store.run(run_id), store.progress(run_id)
    scheduler.dispatch(store)  # a worker that died meanwhile frees its slot, and the queue moves on
    if not finetuning(run) or worker.active_run(store) is None:
        st.rerun(scope="app")  # finished: show the results without polling
    models = run.job["models"]
    if waiting := waiting_text(store, run):
        st.info(waiting, icon=":material/schedule:")
    else:
        fraction, text = job_progress(models, progress)
        st.progress(fraction, text=text)
    if st.button("Cancel", icon=":material/stop:", disabled=run.cancel_requested, key="ft-cancel"):
        worker.cancel(run_id)
        st.toast("Cancelling after the current batch; models already fine-tuned are kept.")
    job_lines(models, progress, {r.model: r for r in store.results(run_id)})
    history = [row for row in store.history(run_id) if row["model"] not in run.models]
    if history:
        st.plotly_chart(history_figure(history, "val_accuracy"), key=f"ft-history-{run_id}")
