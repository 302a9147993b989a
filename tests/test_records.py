"""Typed records: results, the recommendation, progress and runs survive their dict and JSON forms, and older stored dicts."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from core.records import (
    ClassMetrics,
    Failed,
    Latency,
    ModelResult,
    Progress,
    Recommendation,
    Run,
    RunStatus,
    ScreenedOut,
    Screening,
    ScreeningRound,
    Stage,
    Status,
    SweepOutcome,
    latency_column,
    result_from_dict,
    result_to_dict,
)
from core.report import DataReport, DuplicateGroup, Skipped
from core.runtimes import ENGINES


def model_result(**changes) -> ModelResult:
    """A trained MobileNet:0.25 at 128 px on two classes, run in ONNX Runtime and timed in both engines."""
    values = dict(
        model="MobileNet:0.25@128",
        family="MobileNet",
        input_size=128,
        weights="imagenet",
        params=219_058,
        base_params=218_544,
        feature_dim=256,
        size_mb=0.88,
        classes=["cat", "dog"],
        val_accuracy=0.9,
        val_loss=0.25,
        per_class=[ClassMetrics("cat", 0.92, 0.88, 0.9, 50), ClassMetrics("dog", 0.885, 0.92, 0.902, 50)],
        confusion=[[44, 6], [4, 46]],
        epochs_run=12,
        best_epoch=9,
        runtime="onnx",
        runtime_note="",
        feature_seconds=1.5,
        features_cached=False,
        head_seconds=0.8,
        head_cached=True,
        latency={"tf": Latency(4.2, 310.0), "onnx": Latency(1.1, 950.0)},
        subset_accuracy=0.88,
        head_path="/runs/1/MobileNet_0.25_128.keras",
    )
    return ModelResult(**{**values, **changes})


def through_json(data):
    return json.loads(json.dumps(data))


def test_status_and_stage_values_are_the_stored_strings():
    assert (Status.OK, Status.FAILED, Status.SCREENED_OUT) == ("ok", "failed", "screened out")
    assert [str(s) for s in RunStatus] == ["queued", "running", "done", "cancelled", "failed"]
    assert [s for s in RunStatus if s.active] == [RunStatus.QUEUED, RunStatus.RUNNING]
    assert [str(s) for s in Stage] == [
        "loading data",
        "building",
        "decoding images and extracting features",
        "extracting features",
        "training head",
        "measuring latency",
        "done",
        "cancelled",
    ]
    assert json.dumps([Status.SCREENED_OUT, RunStatus.DONE]) == '["screened out", "done"]'
    assert (model_result().status, Failed("x", "boom").status) == (Status.OK, Status.FAILED)


def test_a_screened_out_record_keeps_the_subset_accuracy():
    screened = ScreenedOut.of(model_result(val_accuracy=0.74, runtime="tf"), images=200)
    assert (screened.model, screened.family, screened.input_size, screened.weights) == (
        "MobileNet:0.25@128",
        "MobileNet",
        128,
        "imagenet",
    )
    assert (screened.params, screened.base_params, screened.feature_dim, screened.size_mb, screened.runtime) == (
        219_058,
        218_544,
        256,
        0.88,
        "tf",
    )
    assert (screened.subset_accuracy, screened.subset_images, screened.status) == (0.74, 200, Status.SCREENED_OUT)


RESULTS = {
    "trained, timed in both engines": model_result(),
    "trained, ONNX unavailable": model_result(runtime="tf", latency={"tf": Latency(4.2, 310.0), "onnx": None}),
    "trained, not timed": model_result(latency={}, subset_accuracy=None, head_path=None),
    "screened out": ScreenedOut.of(model_result(val_accuracy=0.74), images=200),
    "failed": Failed("ResNet50", "WeightsUnavailable: ImageNet weights for ResNet50 are not in the Keras cache"),
}


@pytest.mark.parametrize("result", RESULTS.values(), ids=RESULTS.keys())
def test_results_round_trip_through_dicts_and_json(result):
    data = result_to_dict(result)
    assert data["status"] == result.status and data["model"] == result.model
    for back in (result_from_dict(data), result_from_dict(through_json(data))):
        assert back == result and type(back) is type(result)
        assert type(back.status) is Status
    if isinstance(result, ModelResult):
        assert (data["latency_ms"], data["throughput_ips"]) == (result.latency_ms, result.throughput_ips)
        assert all(type(item) is ClassMetrics for item in result_from_dict(through_json(data)).per_class)


def test_latency_of_the_runtime_that_ran():
    result = model_result()
    assert (result.latency_ms, result.throughput_ips) == (1.1, 950.0)  # ran in ONNX Runtime
    fell_back = RESULTS["trained, ONNX unavailable"]
    assert (fell_back.latency_ms, fell_back.throughput_ips) == (4.2, 310.0)
    assert (RESULTS["trained, not timed"].latency_ms, RESULTS["trained, not timed"].throughput_ips) == (None, None)
    assert model_result(runtime="tf", latency={"onnx": Latency(1.1, 950.0)}).latency_ms is None


# A result as stored before results were records: latencies in flat columns per engine, per-class rows keyed "class".
OLDER_FLAT = {
    "model": "MobileNet:0.25@128",
    "status": "ok",
    "family": "MobileNet",
    "input_size": 128,
    "weights": "imagenet",
    "params": 219_058,
    "base_params": 218_544,
    "feature_dim": 256,
    "size_mb": 0.88,
    "classes": ["cat", "dog"],
    "val_accuracy": 0.9,
    "val_loss": 0.25,
    "per_class": [
        {"class": "cat", "precision": 0.92, "recall": 0.88, "f1": 0.9, "support": 50},
        {"class": "dog", "precision": 0.885, "recall": 0.92, "f1": 0.902, "support": 50},
    ],
    "confusion": [[44, 6], [4, 46]],
    "epochs_run": 12,
    "best_epoch": 9,
    "runtime": "onnx",
    "runtime_note": "",
    "feature_seconds": 1.5,
    "features_cached": False,
    "head_seconds": 0.8,
    "head_cached": True,
    "subset_accuracy": 0.88,
    "latency_ms_tf": 4.2,
    "throughput_ips_tf": 310.0,
    "latency_ms_onnx": 1.1,
    "throughput_ips_onnx": 950.0,
    "latency_ms": 1.1,
    "throughput_ips": 950.0,
    "head_path": "/runs/1/MobileNet_0.25_128.keras",
}


def test_an_older_flat_result_dict_reads_as_the_same_record():
    assert ModelResult.from_dict(OLDER_FLAT) == model_result()
    assert result_from_dict(through_json(OLDER_FLAT)) == model_result()
    # ONNX Runtime unavailable: its columns were None. Not timed there, whatever the record says about why.
    fell_back = ModelResult.from_dict(
        {**OLDER_FLAT, "runtime": "tf", "latency_ms_onnx": None, "throughput_ips_onnx": None}
    )
    assert fell_back.latency["tf"] == Latency(4.2, 310.0) and fell_back.latency.get("onnx") is None
    assert fell_back.row() == RESULTS["trained, ONNX unavailable"].row()


def test_a_row_is_flat_with_a_latency_column_per_engine():
    assert latency_column("onnx") == "latency_ms_onnx"
    row = model_result().row()
    assert {key for key in row if key.startswith("latency_ms")} == {"latency_ms", *map(latency_column, ENGINES)}
    assert {key for key in row if key.startswith("throughput_ips")} == {
        "throughput_ips",
        *(f"throughput_ips_{e}" for e in ENGINES),
    }
    assert (row["latency_ms_tf"], row["throughput_ips_tf"], row["latency_ms_onnx"], row["throughput_ips_onnx"]) == (
        4.2,
        310.0,
        1.1,
        950.0,
    )
    assert (row["latency_ms"], row["throughput_ips"], row["val_accuracy"], row["status"]) == (1.1, 950.0, 0.9, "ok")
    assert not {"per_class", "confusion", "classes", "latency"} & row.keys()
    assert all(value is None or isinstance(value, str | int | float) for value in row.values())
    fell_back = RESULTS["trained, ONNX unavailable"].row()
    assert (fell_back["latency_ms_onnx"], fell_back["throughput_ips_onnx"], fell_back["latency_ms"]) == (
        None,
        None,
        4.2,
    )
    untimed = RESULTS["trained, not timed"].row()
    assert all(untimed[latency_column(engine)] is None for engine in ENGINES) and untimed["latency_ms"] is None


def recommendation(screening: bool = True) -> Recommendation:
    rounds = [
        ScreeningRound(
            images=67,
            models=["big", "mid", "tiny", "untrained"],
            finalists=["big", "mid", "tiny"],
            screened_out=["untrained"],
            margin=0.15,
        ),
        ScreeningRound(
            images=200, models=["big", "mid", "tiny"], finalists=["big", "mid"], screened_out=["tiny"], margin=0.077
        ),
    ]
    return Recommendation(
        model="mid",
        best="big",
        fastest="mid",
        tolerance=0.01,
        reason="mid is the smallest of the 2 models within 1 point of the best validation accuracy",
        screening=Screening(
            finalists=["big", "mid"],
            screened_out=["untrained", "tiny"],
            margin=0.077,
            subset_images=200,
            subset_accuracy={"big": 0.97, "mid": 0.965, "tiny": 0.85, "untrained": 0.5},
            screened_winner="mid",
            rounds=rounds,
            winner_changed=False,
        )
        if screening
        else None,
    )


@pytest.mark.parametrize("screening", [True, False], ids=["screened", "not screened"])
def test_recommendation_and_screening_round_trip(screening):
    original = recommendation(screening)
    assert Recommendation.from_dict(asdict(original)) == original
    assert Recommendation.from_dict(through_json(asdict(original))) == original
    if screening:
        back = Recommendation.from_dict(through_json(asdict(original)))
        assert all(type(r) is ScreeningRound for r in back.screening.rounds)
        assert Screening.from_dict(through_json(asdict(original.screening))) == original.screening
    assert Recommendation.from_dict(None) is None and Recommendation.from_dict({}) is None


def test_progress_round_trips_with_its_fraction():
    progress = Progress(
        run_id=7,
        models=["a", "b"],
        phase="screening on 200 images (round 2 of 2)",
        index=1,
        model="b",
        stage=Stage.TRAINING,
        epoch=3,
        epochs=20,
        metrics={"loss": 0.4, "val_accuracy": 0.85},
        finished=["a"],
    )
    data = progress.to_dict()
    assert data["fraction"] == progress.fraction == pytest.approx((1 + 0.05 + 0.75 + 0.15 * 3 / 20) / 2)
    for back in (Progress.from_dict(data), Progress.from_dict(through_json(data))):
        assert back == progress and type(back.stage) is Stage
    assert Progress.from_dict({"run_id": 1, "models": ["a"]}).stage == Stage.LOADING


def test_progress_step_in_words():
    progress = Progress(run_id=1, models=["a"], stage=Stage.TRAINING, epoch=3, epochs=20)
    assert progress.step == "epoch 3/20"
    progress.stage, progress.done, progress.total = Stage.DECODING, 480, 3000
    assert progress.step == "480/3000 images"
    progress.stage, progress.done, progress.total = Stage.BUILDING, 0, 0
    assert progress.step == ""


def test_progress_fraction_grows_through_the_stages():
    progress = Progress(run_id=1, models=["a", "b"])
    seen = [progress.fraction]
    for stage, done, total in [(Stage.BUILDING, 0, 0), (Stage.DECODING, 50, 100), (Stage.EXTRACTING, 100, 100)]:
        progress.model, progress.stage, progress.done, progress.total = "a", stage, done, total
        seen.append(progress.fraction)
    progress.stage, progress.epoch, progress.epochs = Stage.TRAINING, 10, 20
    seen.append(progress.fraction)
    progress.stage = Stage.TIMING
    seen.append(progress.fraction)
    progress.finished.append("a")
    progress.stage, progress.model = Stage.BUILDING, "b"
    seen.append(progress.fraction)
    progress.finished.append("b")
    progress.stage = Stage.DONE
    seen.append(progress.fraction)
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 1
    assert seen[3] == pytest.approx((0.05 + 0.75) / 2)


def data_report() -> DataReport:
    return DataReport(
        classes=["cat", "dog"],
        counts={"train": {"cat": 40, "dog": 40}, "validation": {"cat": 10, "dog": 10}},
        skipped=[Skipped("cat/broken.jpg", "not an image")],
        duplicates=[DuplicateGroup("abc123", ("train/cat/1.jpg", "validation/cat/9.jpg"), leakage=True)],
        layout="train/validation folders",
        imbalance=1.0,
        warnings=["1 image is in both train and validation"],
    )


def test_run_round_trips_with_its_report_and_recommendation():
    run = Run(
        id=3,
        created=1_700_000_000.5,
        updated=1_700_000_100.25,
        status=RunStatus.DONE,
        dataset="/data/pets",
        settings={"models": ["MobileNet:0.25", "ResNet50"], "epochs": 20, "screen": None},
        report=data_report(),
        recommendation=recommendation(),
        error=None,
        cancel_requested=False,
        pid=4242,
    )
    back = Run.from_dict(through_json(asdict(run)))
    assert back == run and type(back.status) is RunStatus
    assert run.models == ["MobileNet:0.25", "ResNet50"]
    # as the store's row has them: no report or recommendation yet, cancel_requested a 0/1 integer
    stored = Run.from_dict(
        {**asdict(run), "status": "running", "report": None, "recommendation": None, "cancel_requested": 1}
    )
    assert (stored.status, stored.report, stored.recommendation, stored.cancel_requested) == (
        RunStatus.RUNNING,
        None,
        None,
        True,
    )


def test_sweep_outcome_is_json_ready():
    results = [
        model_result(),
        ScreenedOut.of(model_result(model="tiny", val_accuracy=0.5), 200),
        Failed("ResNet50", "no weights"),
    ]
    outcome = SweepOutcome(run_id=3, results=results, recommendation=recommendation(), report=data_report())
    data = through_json(outcome.to_dict())
    assert [result_from_dict(r) for r in data["results"]] == results
    assert data["results"][0]["latency_ms"] == 1.1 and data["run_id"] == 3
    assert Recommendation.from_dict(data["recommendation"]) == outcome.recommendation
    assert DataReport.from_dict(data["report"]) == outcome.report
