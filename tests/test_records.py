"""Typed records: results, the recommendation and runs survive their dict and JSON forms, and older stored dicts.

(Live progress, `core.progress`, has its own tests in test_progress.py.)
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from results import TEST_FIGURES, model_result

from core.progress import Stage
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
    SweepOutcome,
    latency_column,
    result_from_dict,
    result_to_dict,
)
from core.report import DataReport, DuplicateGroup, Skipped
from core.runtimes import ENGINES


def through_json(data):
    return json.loads(json.dumps(data))


def test_status_and_stage_values_are_the_stored_strings():
    assert (Status.OK, Status.FAILED, Status.SCREENED_OUT) == ("ok", "failed", "screened out")
    assert (Status.PARTIAL, Status.NOT_RUN) == ("partial", "not run")
    assert [str(s) for s in RunStatus] == ["queued", "running", "done", "cancelled", "failed"]
    assert [s for s in RunStatus if s.active] == [RunStatus.QUEUED, RunStatus.RUNNING]
    assert [str(s) for s in Stage] == [
        "loading data",
        "building",
        "decoding images and extracting features",
        "extracting features",
        "training head",
        "measuring latency",
        "fine-tuning",
        "done",
        "cancelled",
    ]
    assert json.dumps([Status.SCREENED_OUT, RunStatus.DONE]) == '["screened out", "done"]'
    assert (model_result().status, Failed("x", "boom").status) == (Status.OK, Status.FAILED)
    assert NotRun("x").status == Status.NOT_RUN


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
    "partial (cut short by Cancel)": model_result(
        status=Status.PARTIAL, epochs_run=2, best_epoch=2, latency={}, subset_accuracy=None, head_path=None
    ),
    "class-weighted": model_result(class_weighted=True, balanced_accuracy=0.87),
    "screened out": ScreenedOut.of(model_result(val_accuracy=0.74), images=200),
    "failed": Failed("ResNet50", "WeightsUnavailable: ImageNet weights for ResNet50 are not in the Keras cache"),
    "not run": NotRun("MobileNetV2:0.35"),
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
        back = result_from_dict(through_json(data))
        assert all(type(item) is ClassMetrics for item in back.per_class)
        assert (back.test_labels, back.test_predictions) == (result.test_labels, result.test_predictions)
        assert back.test_accuracy_ci == result.test_accuracy_ci


def test_test_figures_image_by_image():
    result = model_result()
    right = result.test_right
    assert right.dtype == bool and right.shape == (100,)
    assert right.sum() == 90 == np.trace(result.confusion)  # the confusion's diagonal, image by image
    assert right.mean() == result.test_accuracy
    assert not right[44:50].any() and not right[50:54].any()  # the six cats called dogs, the four dogs called cats


def test_score_text_states_the_interval():
    assert model_result().score_text() == "90.0% (95% CI 82.6%-94.5%)"
    assert model_result(test_accuracy=1.0, test_accuracy_ci=[0.964, 1.0]).score_text() == "100.0% (95% CI 96.4%-100.0%)"


@pytest.mark.parametrize(
    ("best_epoch", "epochs_run", "epochs_planned", "improving"),
    [
        (20, 20, 20, True),  # its best epoch was the last one allowed: more epochs might help
        (9, 12, 20, False),  # early stopping found a best epoch
        (17, 20, 20, False),  # ran to the cap, but the best was earlier
        (2, 2, 20, False),  # cut short by Cancel: not "at the cap"
    ],
)
def test_still_improving_at_the_epoch_cap(best_epoch, epochs_run, epochs_planned, improving):
    result = model_result(best_epoch=best_epoch, epochs_run=epochs_run, epochs_planned=epochs_planned)
    assert result.still_improving is improving


def test_latency_of_the_runtime_that_ran():
    result = model_result()
    assert (result.latency_ms, result.throughput_ips) == (1.1, 950.0)  # ran in ONNX Runtime
    fell_back = RESULTS["trained, ONNX unavailable"]
    assert (fell_back.latency_ms, fell_back.throughput_ips) == (4.2, 310.0)
    assert (RESULTS["trained, not timed"].latency_ms, RESULTS["trained, not timed"].throughput_ips) == (None, None)
    assert model_result(runtime="tf", latency={"onnx": Latency(1.1, 950.0)}).latency_ms is None


# A result as stored before results were records: latencies in flat columns per engine, per-class rows keyed "class".
# (With the test figures of today's records: a result stored without them reads as Failed, below.)
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
    **TEST_FIGURES,
    "val_accuracy": 0.9,
    "val_loss": 0.25,
    "per_class": [
        {"class": "cat", "precision": 0.92, "recall": 0.88, "f1": 0.9, "support": 50},
        {"class": "dog", "precision": 0.885, "recall": 0.92, "f1": 0.902, "support": 50},
    ],
    "confusion": [[44, 6], [4, 46]],
    "epochs_run": 12,
    "best_epoch": 9,
    "epochs_planned": 20,
    "class_weighted": False,
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


OLDER_WITHOUT_TEST = {key: value for key, value in OLDER_FLAT.items() if key not in (*TEST_FIGURES, "epochs_planned")}


@pytest.mark.parametrize("status", ["ok", None], ids=["status ok", "no status"])
def test_a_result_stored_before_test_sets_reads_as_failed_with_the_reason(status):
    """Its accuracy was on the validation images that chose its epoch: not a score to rank or recommend on."""
    data = {key: value for key, value in OLDER_WITHOUT_TEST.items() if key != "status"}
    if status:
        data["status"] = status
    back = result_from_dict(through_json(data))
    assert type(back) is Failed and back.model == "MobileNet:0.25@128" and back.status == Status.FAILED
    assert "older version" in back.error and "test set" in back.error and "again" in back.error
    # Screened-out and failed records carry no test figures, and never did: they read back as before.
    assert result_from_dict(through_json(result_to_dict(RESULTS["screened out"]))) == RESULTS["screened out"]


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
    assert not {"per_class", "confusion", "classes", "latency", "test_labels", "test_predictions"} & row.keys()
    assert (row["test_accuracy"], row["test_ci_low"], row["test_ci_high"]) == (0.9, 0.8256, 0.9448)
    assert "test_accuracy_ci" not in row and (row["test_images"], row["balanced_accuracy"]) == (100, 0.9)
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
        fastest={"tf": "mid", "onnx": "big"},
        tolerance=0.01,
        reason="mid is the smallest of the 2 models not clearly below the best test accuracy",
        tied=["big", "mid"],
        p_values={"mid": 0.62},
        images_to_resolve=5200,
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
    assert original.statistically_tied


def test_an_older_recommendation_reads_with_no_fastest_by_engine():
    """Older runs stored one fastest model without its runtime: it is dropped rather than quoted in the wrong one."""
    older = {key: value for key, value in asdict(recommendation(False)).items() if key not in ("tied", "p_values")}
    back = Recommendation.from_dict(through_json({**older, "fastest": "mid"}))
    assert (back.model, back.best, back.fastest, back.tied, back.p_values) == ("mid", "big", {}, [], {})
    assert not back.statistically_tied
    assert Recommendation.from_dict(through_json({**older, "fastest": None})).fastest == {}


def data_report() -> DataReport:
    return DataReport(
        classes=["cat", "dog"],
        counts={"train": {"cat": 40, "dog": 40}, "validation": {"cat": 5, "dog": 5}, "test": {"cat": 5, "dog": 5}},
        skipped=[Skipped("cat/broken.jpg", "not an image")],
        duplicates=[DuplicateGroup("abc123", ("test/cat/9.jpg", "train/cat/1.jpg"), leakage=True)],
        layout="train/ and validation/ folders; validation/ split in half (seeded, stratified) for a test set",
        imbalance=1.0,
        warnings=["1 image(s) appear in more than one of train, validation and test"],
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
        model_result(model="MobileNet:0.5", status=Status.PARTIAL, epochs_run=2, latency={}),
        ScreenedOut.of(model_result(model="tiny", val_accuracy=0.5), 200),
        Failed("ResNet50", "no weights"),
        NotRun("MobileNetV2:0.35"),
    ]
    outcome = SweepOutcome(run_id=3, results=results, recommendation=recommendation(), report=data_report())
    data = through_json(outcome.to_dict())
    assert [result_from_dict(r) for r in data["results"]] == results
    assert data["results"][0]["latency_ms"] == 1.1 and data["run_id"] == 3
    assert [r["status"] for r in data["results"]] == ["ok", "partial", "screened out", "failed", "not run"]
    assert Recommendation.from_dict(data["recommendation"]) == outcome.recommendation
    assert DataReport.from_dict(data["report"]) == outcome.report
