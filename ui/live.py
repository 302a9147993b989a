"""A run as the Train page follows it: where it waits in the queue, its progress, Cancel, one line per model,
the validation curves, and how it ended."""

from __future__ import annotations

import streamlit as st

from core import scheduler, worker
from core.progress import clock
from core.records import Run, RunStatus
from ui.charts import history_figure
from ui.guard import PageStore, plain
from ui.runs import progress_text, run_summary, status_lines
from ui.weights import offer_untrained


def waiting_text(store: PageStore, run: Run) -> str | None:
    """`Queued: 1 run ahead of yours (number 2 of 2) · about 1:20 until it starts`, for a run not started yet."""
    place = scheduler.place(store, run.id)
    if place is None:
        return None
    wait = f" · about {clock(place.wait_seconds)} until it starts" if place.wait_seconds is not None else ""
    ahead = f"{place.ahead} run{'s' * (place.ahead != 1)} ahead of yours" if place.ahead else "next to start"
    return f"Queued: {ahead} (number {place.ahead + 1} of {place.length} in the queue){wait}"


def show_run(store: PageStore, run_id: int, models: list[str], running: bool = False) -> None:
    run, progress, results = store.run(run_id), store.progress(run_id), store.results(run_id)
    st.subheader(f"Run #{run_id}: {run_summary(run, results)}")
    if waiting := waiting_text(store, run):
        st.info(waiting, icon=":material/schedule:")
    else:
        fraction, text = progress_text(run, progress, results)
        st.progress(fraction, text=text)
    if running and st.button("Cancel", icon=":material/stop:", disabled=run.cancel_requested):
        worker.cancel(run_id, store)
        st.toast("Cancelling after the current batch or epoch; finished models are kept.")
    status_lines(run, progress, {r.model: r for r in results})
    offer_untrained(results, models)
    history = store.history(run_id)
    if history:
        left, right = st.columns(2)
        left.plotly_chart(history_figure(history, "val_accuracy"), key=f"acc-{run_id}")
        right.plotly_chart(history_figure(history, "val_loss"), key=f"loss-{run_id}")
    if run.status == RunStatus.FAILED:
        st.error(f"The sweep failed: {plain(run.error)}", icon=":material/error:")
    elif run.status == RunStatus.CANCELLED:
        st.warning(
            "Cancelled: finished models are kept; a model cut short is partial and never recommended.",
            icon=":material/cancel:",
        )
    elif run.status == RunStatus.DONE:
        st.success(f"Done in {clock(run.updated - run.created)}.", icon=":material/check_circle:")
        st.page_link("app_pages/compare.py", label="See the comparison", icon=":material/leaderboard:")


@st.fragment(run_every=1)
def live(store: PageStore, run_id: int, models: list[str]) -> None:
    scheduler.dispatch(store)  # a worker that died meanwhile frees its slot, and the queue moves on
    if not store.run(run_id).status.active or worker.active_run(store) is None:
        st.rerun(scope="app")  # finished: show the final state without polling
    show_run(store, run_id, models, running=True)
