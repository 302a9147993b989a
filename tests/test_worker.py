"""The background worker: a real sweep in its own process on a tiny generated dataset, and dead workers."""

from __future__ import annotations

import time

from faults import colour_dataset

from core import worker
from core.records import ModelResult, Run, RunStatus, Status
from core.store import Store
from core.sweep import SweepSettings


def test_background_worker_runs_a_sweep_and_keeps_results(tb_home, tmp_path):
    data = colour_dataset(tmp_path / "data", per_class=12, size=40)
    settings = SweepSettings(models=["MobileNet:0.25@32"], weights="none", epochs=3)
    run_id = worker.start_sweep(str(data), settings)
    active = worker.active_run()
    assert isinstance(active, Run) and active.id == run_id
    store = Store()
    deadline = time.time() + 180
    while store.run(run_id).status.active and time.time() < deadline:
        time.sleep(0.5)
    run = store.run(run_id)
    assert run.status == RunStatus.DONE, (run, (tb_home / "runs" / str(run_id) / "worker.log").read_text()[-2000:])
    (result,) = store.results(run_id)
    assert isinstance(result, ModelResult)
    assert result.status == Status.OK and result.input_size == 32 and result.weights == "none"
    # 30% of each class of 12 held out (4): 2 to validate on, 2 to test on.
    assert run.report.counts == {
        "train": {"blue": 8, "red": 8},
        "validation": {"blue": 2, "red": 2},
        "test": {"blue": 2, "red": 2},
    }
    assert result.test_images == 4 == len(result.test_labels) == len(result.test_predictions)
    assert result.test_accuracy == result.test_right.mean()
    low, high = result.test_accuracy_ci
    assert 0 <= low <= result.test_accuracy <= high <= 1 and high - low > 0.4  # 4 images tell little
    assert (result.epochs_planned, result.class_weighted) == (3, False)
    assert len(store.history(run_id, "MobileNet:0.25@32")) == result.epochs_run
    assert store.progress(run_id).fraction == 1.0
    assert worker.active_run() is None


def test_a_dead_worker_is_marked_failed(tb_home):
    store = Store()
    run_id = store.create_run("/nowhere", {"models": ["ResNet50"]})
    store.update_run(run_id, status=RunStatus.RUNNING, pid=2**22 + 12345)  # no such process
    assert worker.active_run() is None
    assert store.run(run_id).status == RunStatus.FAILED
    assert "stopped unexpectedly" in store.run(run_id).error
