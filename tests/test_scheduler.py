"""Issue 12, the queue: one first-in-first-out queue of runs for every workspace, run by `TRANSFERBENCH_WORKERS`
processes, with real workers (`python -m core worker`) on a tiny generated dataset, and real processes
standing in for the workers of queued runs (a `time.sleep` that the test starts and kills)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest
from faults import colour_dataset

from core import config, scheduler, worker, workspaces
from core.records import RunStatus
from core.scheduler import Place
from core.store import Store, SweepBusy
from core.sweep import SweepSettings

TINY = SweepSettings(models=["MobileNet:0.25@32"], weights="none", epochs=1)
WAITING_FOR_ITS_TURN = r"Run #{} is still queued: wait for it to finish or cancel it first"


@pytest.fixture
def sleeper() -> Iterator[Callable[[], subprocess.Popen]]:
    """Starts long-sleeping processes (standing in for a run's worker or a command line sweep); at the end
    kills them, and any worker a test's dispatch started that is still running."""
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()
    for child in psutil.Process().children(recursive=True):  # workers spawned here: `scheduler.spawn` reaps them
        if child.pid not in before:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def start_time(process: subprocess.Popen) -> float:
    return psutil.Process(process.pid).create_time()


def command_line_run(store: Store, process: subprocess.Popen) -> int:
    """A run as `python -m core sweep` records it: created with its own (live) process."""
    return store.create_run("/data/cli", TINY.to_dict(), pid=process.pid, pid_started=start_time(process))


def started_at(store: Store, run_id: int) -> float | None:
    with store.transaction(write=False) as db:
        return db.execute("SELECT started FROM runs WHERE id = ?", (run_id,)).fetchone()["started"]


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"still not {what} after {seconds} s")
        time.sleep(0.1)


def zombies() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def worker_log(tb_home, run_id: int) -> str:
    log = tb_home / "runs" / str(run_id) / "worker.log"
    return log.read_text()[-2000:] if log.exists() else "(no worker log)"


# The queue, with real workers ----------------------------------------------------------------------------
def test_runs_of_three_workspaces_start_one_at_a_time_in_the_order_they_were_queued(tb_home, tmp_path, sleeper):
    data = str(colour_dataset(tmp_path / "data", per_class=12, size=32))
    store = Store()
    holder = sleeper()
    cli_run = command_line_run(store, holder)  # a command line sweep holds the one slot meanwhile
    spaces = [workspaces.create(store) for _ in range(3)]
    queued = [worker.start_sweep(data, TINY, Store(workspace=space)) for space in spaces]
    # The command line's run is ahead of all three: each is number 2, 3, 4 of the queue's 4.
    assert [scheduler.place(store, run_id) for run_id in queued] == [
        Place(1, 4, None),
        Place(2, 4, None),
        Place(3, 4, None),
    ]
    assert all(store.process(run_id) == (None, None) for run_id in queued)  # none started

    holder.kill()
    holder.wait()
    assert scheduler.dispatch(store) == [queued[0]]  # the slot is free again: the oldest starts, only it
    assert store.run(cli_run).status == RunStatus.FAILED and "stopped unexpectedly" in store.run(cli_run).error
    assert scheduler.place(store, queued[1]) == Place(1, 3, None)  # no run has finished yet: no pace to go by

    # Each worker starts the next when it ends. At no time do two hold a process; the third, waiting while
    # the second runs, is given an estimate from the first one's pace.
    estimate, deadline = None, time.time() + 150
    while any(run.status.active for run in map(store.run, queued)) and time.time() < deadline:
        with_process = [run_id for run_id in queued if store.run(run_id).status.active and store.process(run_id)[0]]
        assert len(with_process) <= 1, with_process
        if store.run(queued[0]).status == RunStatus.DONE and estimate is None:
            estimate = scheduler.place(store, queued[2])
        time.sleep(0.1)
    runs = [store.run(run_id) for run_id in queued]
    assert [run.status for run in runs] == [RunStatus.DONE] * 3, [worker_log(tb_home, run.id) for run in runs]
    assert [run.workspace for run in runs] == spaces
    starts = [started_at(store, run_id) for run_id in queued]
    assert starts == sorted(starts)
    assert starts[1] >= runs[0].updated - 1 and starts[2] >= runs[1].updated - 1  # each after the one before ended
    assert estimate is not None and (estimate.ahead, estimate.length) == (1, 2)
    assert estimate.wait_seconds is not None and 0 <= estimate.wait_seconds < 120

    # The first worker was this process's child: it ended and was reaped, not left a zombie.
    wait_for(lambda: not zombies(), 5, "without zombies")


def test_a_killed_worker_fails_its_run_with_the_reason_and_the_next_run_starts(tb_home, tmp_path, sleeper):
    data = str(colour_dataset(tmp_path / "data", per_class=12, size=32))
    store = Store()
    mine, theirs = workspaces.create(store), workspaces.create(store)
    first = worker.start_sweep(data, TINY, Store(workspace=mine))
    second = worker.start_sweep(data, TINY, Store(workspace=theirs))
    wait_for(lambda: store.run(first).status == RunStatus.RUNNING, 60, "running")  # claimed by its worker
    pid, started = store.process(first)
    assert scheduler.process_alive(pid, started)
    assert scheduler.place(store, second) == Place(1, 2, None)

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not scheduler.process_alive(pid, started), 10, "gone")
    assert store.run(first).status == RunStatus.RUNNING  # nobody looked yet
    assert scheduler.dispatch(store) == [second]
    run = store.run(first)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith(f"the background worker (pid {pid}) stopped unexpectedly"), run.error
    assert scheduler.process_alive(*store.process(second)) and scheduler.place(store, second) is None
    assert worker.active_run(Store(workspace=mine)) is None  # its workspace may start another
    wait_for(lambda: not zombies(), 5, "without zombies")  # the killed worker was reaped


def test_a_finished_worker_is_reaped(tb_home, sleeper):
    store = Store()
    run_id = worker.start_sweep("/nowhere", TINY, store)  # a worker that ends at once: no such dataset
    pid, _ = store.process(run_id)
    assert pid in {child.pid for child in psutil.Process().children()}
    wait_for(lambda: not store.run(run_id).status.active, 30, "finished")
    assert store.run(run_id).error.endswith("Dataset not found: /nowhere does not exist.")
    wait_for(lambda: not psutil.pid_exists(pid), 5, "reaped")
    assert not zombies()


# Queue logic, with stand-in processes ----------------------------------------------------------------------
def test_one_active_run_per_workspace(tb_home, sleeper):
    store = Store()
    command_line_run(store, sleeper())  # holds the slot: everything below waits
    mine, theirs = workspaces.create(store), workspaces.create(store)
    first = worker.start_sweep("/data/a", TINY, Store(workspace=mine))
    with pytest.raises(ValueError, match=WAITING_FOR_ITS_TURN.format(first)):
        worker.start_sweep("/data/b", TINY, Store(workspace=mine))
    assert [run.id for run in Store(workspace=mine).runs()] == [first]  # nothing was queued
    other = worker.start_sweep("/data/c", TINY, Store(workspace=theirs))  # another workspace is not held up
    assert scheduler.place(store, other) == Place(2, 3, None)  # behind the command line's run and the first

    worker.cancel(first, Store(workspace=mine))
    again = worker.start_sweep("/data/b", TINY, Store(workspace=mine))  # once cancelled, it may queue again...
    assert scheduler.place(store, other) == Place(1, 3, None)
    assert scheduler.place(store, again) == Place(2, 3, None)  # ...behind the run queued meanwhile


def test_place_gives_the_position_and_an_estimate_from_finished_runs(tb_home, sleeper, monkeypatch):
    store = Store()
    holder = sleeper()
    a, b, c = (workspaces.create(store) for _ in range(3))
    running = Store(workspace=a).create_run("/data/a", {"models": ["m1"]})
    store.update_run(running, status=RunStatus.RUNNING, pid=holder.pid, pid_started=start_time(holder))
    store.update_run(running, started=time.time())
    two_models = SweepSettings(models=["MobileNet:0.25@32", "MobileNetV2:0.35@32"], weights="none", epochs=1)
    second = worker.start_sweep("/data/b", two_models, Store(workspace=b))
    third = worker.start_sweep("/data/c", TINY, Store(workspace=c))
    assert scheduler.place(store, running) is None  # not waiting: it runs
    assert scheduler.place(store, second) == Place(1, 3, None)  # no finished run: no estimate
    assert scheduler.place(store, third) == Place(2, 3, None)

    done = store.create_run("/data/old", {"models": ["m1"]})  # one model in 30 s
    store.update_run(done, status=RunStatus.DONE, started=time.time() - 30)
    first_place, next_place = scheduler.place(store, second), scheduler.place(store, third)
    assert (first_place.ahead, next_place.ahead) == (1, 2)
    assert first_place.wait_seconds == pytest.approx(30, abs=2)  # the running run's one model
    assert next_place.wait_seconds == pytest.approx(30 + 2 * 30, abs=2)  # ...then the second run's two

    monkeypatch.setenv(config.WORKERS_ENV, "2")  # a free slot: the second would start now, the third after 30 s
    assert scheduler.place(store, second).wait_seconds == 0
    assert scheduler.place(store, third).wait_seconds == pytest.approx(30, abs=2)


def test_cancelling_a_waiting_run_takes_it_out_of_the_queue(tb_home, sleeper):
    store = Store()
    command_line_run(store, sleeper())
    spaces = [workspaces.create(store) for _ in range(3)]
    queued = [worker.start_sweep(f"/data/{i}", TINY, Store(workspace=space)) for i, space in enumerate(spaces)]

    with pytest.raises(ValueError, match=rf"No run #{queued[1]} in this workspace"):
        worker.cancel(queued[1], Store(workspace=spaces[0]))  # only its own workspace may cancel it
    assert not store.run(queued[1]).cancel_requested

    worker.cancel(queued[1], Store(workspace=spaces[1]))
    run = store.run(queued[1])
    assert run.status == RunStatus.CANCELLED and store.process(run.id) == (None, None)
    assert scheduler.place(store, queued[1]) is None
    assert [scheduler.place(store, queued[0]), scheduler.place(store, queued[2])] == [
        Place(1, 3, None),
        Place(2, 3, None),
    ]
    assert worker.active_run(Store(workspace=spaces[1])) is None
    assert scheduler.dispatch(store) == []  # the command line still holds the slot


def test_a_reused_pid_does_not_keep_a_run_alive(tb_home, sleeper):
    store = Store()
    other = sleeper()  # the process that now has the pid
    real = start_time(other)
    assert scheduler.process_alive(other.pid, real) and scheduler.process_alive(other.pid, None)
    assert not scheduler.process_alive(other.pid, real - 3600)

    stale = store.create_run("/data/a", TINY.to_dict())  # its worker started an hour before this process
    store.update_run(stale, status=RunStatus.RUNNING, pid=other.pid, pid_started=real - 3600)
    waiting = Store(workspace=workspaces.create(store)).create_run("/nowhere", TINY.to_dict())
    assert scheduler.dispatch(store) == [waiting]  # the stale run's slot is free
    run = store.run(stale)
    assert run.status == RunStatus.FAILED and f"(pid {other.pid}) stopped unexpectedly" in run.error
    assert other.poll() is None  # the process that has the pid now is left alone


def test_claim_with_two_workers_lets_two_run_and_refuses_a_third(tb_home, sleeper, monkeypatch):
    monkeypatch.setenv(config.WORKERS_ENV, "2")
    store = Store()
    one, two = sleeper(), sleeper()
    runs = [store.create_run(f"/data/{i}", TINY.to_dict()) for i in range(4)]
    scheduler.claim(store, runs[0], one.pid, start_time(one))
    scheduler.claim(store, runs[1], two.pid, start_time(two))
    assert [store.run(run_id).status for run_id in runs[:2]] == [RunStatus.RUNNING] * 2

    own = psutil.Process().create_time()
    with pytest.raises(SweepBusy, match=rf"run #{runs[0]} on /data/0, pid {one.pid}") as busy:
        scheduler.claim(store, runs[2], os.getpid(), own)
    assert busy.value.holder.id == runs[0]
    assert store.run(runs[2]).status == RunStatus.QUEUED and store.process(runs[2]) == (None, None)
    assert scheduler.dispatch(store) == []  # both slots are taken: nothing is spawned
    assert [scheduler.place(store, run_id) for run_id in runs[2:]] == [Place(2, 4, None), Place(3, 4, None)]

    one.kill()
    one.wait()
    scheduler.claim(store, runs[2], os.getpid(), own)  # a slot was freed: its run is failed on the way
    assert store.run(runs[0]).status == RunStatus.FAILED
    assert [store.run(run_id).status for run_id in runs[1:3]] == [RunStatus.RUNNING] * 2
    assert scheduler.dispatch(store) == []  # two run again


def test_a_command_line_run_is_never_spawned(tb_home, sleeper):
    store = Store()
    command = sleeper()
    cli_run = command_line_run(store, command)
    assert store.run(cli_run).status == RunStatus.QUEUED  # loading, before its own claim
    assert scheduler.dispatch(store) == [] and scheduler.place(store, cli_run) is None
    assert store.process(cli_run) == (command.pid, start_time(command))

    waiting = Store(workspace=workspaces.create(store)).create_run("/nowhere", TINY.to_dict())
    assert scheduler.dispatch(store) == []  # the command line holds the one slot
    assert scheduler.place(store, waiting) == Place(1, 2, None)

    command.kill()
    command.wait()
    assert scheduler.dispatch(store) == [waiting]  # the waiting run, not the command line's
    run = store.run(cli_run)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith(f"the process running it (pid {command.pid}) stopped unexpectedly")
    assert not (tb_home / "runs" / str(cli_run) / "worker.log").exists()  # no worker was ever started for it
