"""The store: runs, results, history and progress go in as records and come out equal."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest
from results import model_result

from core.progress import Progress, Stage
from core.records import (
    ClassMetrics,
    Failed,
    Latency,
    ModelResult,
    NotRun,
    Recommendation,
    Run,
    RunStatus,
    ScreenedOut,
    Screening,
    ScreeningRound,
    Status,
    result_to_dict,
)
from core.report import DataReport, DuplicateGroup, Skipped
from core.store import Store


def _result(model: str = "a", accuracy: float = 0.9, **changes) -> ModelResult:
    """A trained model run in TensorFlow after ONNX Runtime failed (so untimed there)."""
    values = dict(
        model=model,
        classes=["x", "y"],
        test_accuracy=accuracy,
        balanced_accuracy=accuracy,
        macro_f1=accuracy,
        val_accuracy=accuracy,
        per_class=[ClassMetrics("x", 0.92, 0.88, 0.9, 50), ClassMetrics("y", 0.885, 0.92, 0.902, 50)],
        runtime="tf",
        runtime_note="no onnxruntime",
        head_cached=False,
        latency={"tf": Latency(4.2, 310.0), "onnx": None},
        subset_accuracy=None,
        head_path="/runs/1/a.keras",
    )
    return model_result(**{**values, **changes})


def _report() -> DataReport:
    return DataReport(
        classes=["x", "y"],
        counts={"train": {"x": 40, "y": 40}, "validation": {"x": 5, "y": 5}, "test": {"x": 5, "y": 5}},
        skipped=[Skipped("x/broken.jpg", "not an image")],
        duplicates=[DuplicateGroup("abc123", ("x/1.jpg", "x/9.jpg"), leakage=True)],
        layout="class folders",
        imbalance=1.0,
        warnings=["1 image(s) appear in more than one of train, validation and test"],
    )


def test_store_round_trip(tb_home):
    store = Store()
    assert store.path == tb_home / "transferbench.db"
    run_id = store.create_run("/data", {"models": ["a"]})
    store.update_run(run_id, status=RunStatus.RUNNING, report=_report())
    store.save_epoch(run_id, "a", 1, {"loss": 0.5, "val_accuracy": 0.9})
    store.save_result(run_id, _result("a", 0.9))
    progress = Progress(run_id, models=["a", "b", "c", "d", "e"], model="c", stage=Stage.BUILDING, finished=["a", "b"])
    store.set_progress(run_id, progress)
    run = store.run(run_id)
    assert (run.status, run.settings, run.report) == (RunStatus.RUNNING, {"models": ["a"]}, _report())
    assert store.results(run_id) == [_result("a", 0.9)]
    assert store.history(run_id) == [{"model": "a", "epoch": 1, "loss": 0.5, "val_accuracy": 0.9}]
    assert store.progress(run_id).fraction == 0.4
    with pytest.raises(ValueError, match="Received: status=finished"):
        store.update_run(run_id, status="finished")
    assert not store.cancel_requested(run_id)
    store.request_cancel(run_id)
    assert store.cancel_requested(run_id)


def test_runs_are_records(tb_home):
    store = Store()
    first = store.create_run("/data/one", {"models": ["MobileNet:0.25", "ResNet50"], "epochs": 20})
    second = store.create_run("/data/two.zip", {"models": ["ResNet50"]})
    run = store.run(first)
    assert isinstance(run, Run) and (run.id, run.dataset, run.status) == (first, "/data/one", RunStatus.QUEUED)
    assert run.models == ["MobileNet:0.25", "ResNet50"] and run.created <= run.updated
    assert (run.report, run.recommendation, run.error, run.cancel_requested, run.pid) == (None, None, None, False, None)
    store.update_run(first, status=RunStatus.FAILED, error="the background worker stopped unexpectedly", pid=4242)
    run = store.run(first)
    assert (run.status, run.error, run.pid) == (RunStatus.FAILED, "the background worker stopped unexpectedly", 4242)
    assert not run.status.active and store.run(second).status.active
    assert [r.id for r in store.runs()] == [second, first]  # newest first
    assert [r.id for r in store.runs(limit=1)] == [second]
    assert store.run(999) is None
    with pytest.raises(ValueError, match="update_run takes"):
        store.update_run(first, dataset="elsewhere")  # a run's dataset is fixed at its creation
    store.request_cancel(first)
    store.update_run(first, cancel_requested=False)  # a fine-tuning job starts a finished run again
    assert not store.cancel_requested(first)


def test_results_keep_their_kind_and_order(tb_home):
    store = Store()
    run_id = store.create_run("/data", {"models": ["a", "tiny", "broken", "cut", "later"]})
    results = [
        _result("a", 0.9, latency={"tf": Latency(4.2, 310.0), "onnx": Latency(1.1, 950.0)}, runtime="onnx"),
        ScreenedOut.of(_result("tiny", 0.6), images=200),
        Failed("broken", "WeightsUnavailable: ImageNet weights for broken are not in the Keras cache"),
        _result("cut", 0.857, status=Status.PARTIAL, epochs_run=2, best_epoch=2, latency={}, head_path=None),
        NotRun("later"),
    ]
    for result in results:
        store.save_result(run_id, result)
    assert store.results(run_id) == results
    assert [type(r) for r in store.results(run_id)] == [ModelResult, ScreenedOut, Failed, ModelResult, NotRun]
    assert [r.status for r in store.results(run_id)] == ["ok", "screened out", "failed", "partial", "not run"]
    assert store.results(run_id)[0].latency_ms == 1.1
    assert store.results(run_id)[0].test_right.sum() == 90
    assert store.results(store.create_run("/data", {"models": ["a"]})) == []


def test_a_result_stored_by_an_older_version_reads_as_failed(tb_home):
    """A database from before test sets: its trained results were scored on the images that chose their epoch."""
    store = Store()
    run_id = store.create_run("/data", {"models": ["a", "broken"]})
    older = {
        key: value
        for key, value in result_to_dict(_result("a")).items()
        if not key.startswith("test_") and key not in ("balanced_accuracy", "macro_f1", "epochs_planned")
    }
    with closing(sqlite3.connect(store.path)) as connection, connection:  # as the older version wrote it
        connection.execute(
            "INSERT INTO results (run_id, model, position, status, data) VALUES (?, ?, ?, ?, ?)",
            (run_id, "a", 0, "ok", json.dumps(older)),
        )
    store.save_result(run_id, Failed("broken", "no weights"))
    (a, broken) = store.results(run_id)
    assert type(a) is Failed and a.model == "a" and "older version" in a.error
    assert broken == Failed("broken", "no weights")


def test_recommendation_with_screening_is_stored(tb_home):
    store = Store()
    run_id = store.create_run("/data", {"models": ["big", "mid", "tiny"], "screen": 0.1})
    recommendation = Recommendation(
        model="mid",
        best="big",
        fastest={"tf": "mid", "onnx": "mid"},
        tolerance=0.01,
        reason="mid is the smallest of the 2 models not clearly below the best test accuracy",
        tied=["big", "mid"],
        p_values={"mid": 0.5},
        images_to_resolve=3100,
        screening=Screening(
            finalists=["big", "mid"],
            screened_out=["tiny"],
            margin=0.077,
            subset_images=200,
            subset_accuracy={"big": 0.97, "mid": 0.965, "tiny": 0.85},
            screened_winner="big",
            rounds=[ScreeningRound(200, ["big", "mid", "tiny"], ["big", "mid"], ["tiny"], 0.077)],
            winner_changed=True,
        ),
    )
    store.update_run(run_id, status=RunStatus.DONE, recommendation=recommendation)
    run = store.run(run_id)
    assert run.recommendation == recommendation and run.status == RunStatus.DONE
    assert run.recommendation.screening.rounds[0].finalists == ["big", "mid"]
    store.update_run(run_id, recommendation=None)
    assert store.run(run_id).recommendation is None


def test_progress_is_stored_as_a_record(tb_home):
    store = Store()
    run_id = store.create_run("/data", {"models": ["a", "b"]})
    assert store.progress(run_id) is None
    progress = Progress(
        run_id,
        models=["a", "b"],
        phase="finishing 2 finalist(s) on all images",
        index=1,
        model="b",
        stage=Stage.TRAINING,
        epoch=3,
        epochs=20,
        metrics={"loss": 0.4, "val_accuracy": 0.85},
        finished=["a"],
    )
    store.set_progress(run_id, progress)
    assert store.progress(run_id) == progress
    progress.stage, progress.finished = Stage.DONE, ["a", "b"]
    store.set_progress(run_id, progress)  # replaces the previous one
    assert store.progress(run_id) == progress and store.progress(run_id).fraction == 1.0
