"""Sweeps on a real local Ray cluster (a head and one worker node on loopback), against the local executor."""

from __future__ import annotations

import importlib.util

import pytest

from core.progress import Stage
from core.records import Failed, ModelResult, NotRun, RunStatus, Status
from core.store import Store
from core.sweep import SweepSettings, run_sweep

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install -r requirements-ray.txt"
)
MODELS = ["MobileNet:0.25@128", "MobileNet:0.25@160", "MobileNet:0.5"]  # MobileNet:0.5's weights are not cached
SETTINGS = dict(models=MODELS, max_images=300, epochs=3, runtime="tf")


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def sweep(cats_and_dogs, tmp_path, monkeypatch):
    """A sweep in a data folder of its own: each executor computes everything itself."""

    def run(name: str, settings: SweepSettings, on_progress=None):
        monkeypatch.setenv("TRANSFERBENCH_HOME", str(tmp_path / name))
        return run_sweep(cats_and_dogs, settings, on_progress=on_progress)

    return run


def test_a_sweep_on_ray_matches_the_local_one_shows_progress_and_fails_one_model_alone(cluster, sweep):
    local = sweep("local", SweepSettings(**SETTINGS))
    seen = []
    remote = sweep(
        "ray",
        SweepSettings(**SETTINGS, executor="ray", address=cluster.address),
        lambda progress: seen.append((progress.model, progress.stage, progress.done, progress.epoch)),
    )
    by_model = {result.model: result for result in remote.results}
    assert isinstance(by_model["MobileNet:0.5"], Failed) and "WeightsUnavailable" in by_model["MobileNet:0.5"].error
    for result in local.results:
        if isinstance(result, ModelResult):
            twin = by_model[result.model]
            assert twin.status == Status.OK and twin.device == result.device == "CPU"
            assert (twin.test_accuracy, twin.val_accuracy, twin.best_epoch) == (
                result.test_accuracy,
                result.val_accuracy,
                result.best_epoch,
            )
            assert twin.test_predictions == result.test_predictions
    worker_reports = [(stage, done) for model, stage, done, _ in seen if model in MODELS[:2]]  # from the workers
    assert any(stage == Stage.DECODING and done > 0 for stage, done in worker_reports)
    assert Stage.TRAINING in {stage for stage, _ in worker_reports}
    store = Store()
    assert store.run(remote.run_id).status == RunStatus.DONE
    assert len(store.history(remote.run_id, "MobileNet:0.25@128")) == by_model["MobileNet:0.25@128"].epochs_run
    assert remote.recommendation.model == local.recommendation.model


def test_cancel_reaches_the_workers(cluster, sweep):
    settings = SweepSettings(
        **{**SETTINGS, "models": MODELS[:2], "max_images": 2000}, executor="ray", address=cluster.address
    )
    requested = []

    def cancel_once_extracting(progress):
        if progress.stage == Stage.DECODING and progress.done > 0 and not requested:
            Store().request_cancel(progress.run_id)
            requested.append(progress.done)

    outcome = sweep("cancel", settings, cancel_once_extracting)
    assert Store().run(outcome.run_id).status == RunStatus.CANCELLED
    assert requested and all(isinstance(result, NotRun) for result in outcome.results), outcome.results
