"""Benchmark of issue #10's latency goal: two fresh measurements of the same model agree within 20%.

Run from the repository root:

    python bench/latency.py [--shared ../shared] [--out bench/results/latency.json]
                            [--models MobileNetV2:0.35 MobileNet:0.75 MobileNet:0.25 ResNet50/none]
                            [--runs 2] [--budget SECONDS] [--threads N] [--quiet-wait SECONDS]
                            [--no-old] [--keep-temp]

Each run of each model is a fresh Python process with an empty TRANSFERBENCH_HOME (nothing cached: the
base is built and exported again) and a KERAS_HOME of symlinks into the shared cache, as bench/sweep.py
sets up. The process does what a sweep does: `core.latency.model_latency(extractor, head)` with an
untrained 2-class head from `core.train.build_head`, in both engines. It also times, for contrast, the
definition before issue #10 (an eager Keras call of the head, one warm-up, at most 20 calls in 0.25 s)
and the numpy head alone. While each engine is timed it reads /proc/stat: `others_cores` is the CPU
the rest of the host used meanwhile (0 on an idle host, up to the number of cores); just before, it
times a fixed pure-Python loop (`reference_ms`): on a virtual machine the host's own speed can change
between runs while nothing else runs here.

Printed per model and engine: each run's median and IQR, the ratio of the two medians (max/min), PASS
when within 1.2, and the old definition's figures. Exit code 0 when every pair passes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("MobileNetV2:0.35", "MobileNet:0.75", "MobileNet:0.25", "ResNet50/none")
TARGET_RATIO = 1.2  # max/min of two fresh medians
QUIET_CORES = 0.2  # the rest of the host counts as idle below this many busy cores
OLD_BUDGET_SECONDS, OLD_MAX_RUNS = 0.25, 20  # batch 1 before issue #10: half of 0.5 s, at most 20 calls


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="default: <repo>/../shared")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latency.json")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--runs", type=int, default=2, help="fresh processes per model (default 2)")
    parser.add_argument("--budget", type=float, help="seconds per engine (default: core.latency's)")
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0, help="before each run, wait up to this long for an idle host"
    )
    parser.add_argument(
        "--threads", type=int, help="intra-op threads of both engines (default: theirs, as the app runs them)"
    )
    parser.add_argument("--no-old", action="store_true", help="skip the old definition's figure")
    parser.add_argument("--keep-temp", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


def log(message: str = "") -> None:
    print(message, flush=True)


def host_busy_seconds() -> float:
    """CPU seconds the whole host has been busy since boot (all cores), from /proc/stat; 0 elsewhere."""
    try:
        with open("/proc/stat") as stat:
            values = [int(value) for value in stat.readline().split()[1:9]]
    except OSError:
        return 0.0
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def reference_ms(calls: int = 21) -> float:
    """A fixed single-threaded pure-Python loop, median ms per call: the host's own speed at that moment.
    When it moves between runs as much as a model's figure does, the host changed, not the method."""
    times = []
    for _ in range(calls):
        started, total = time.perf_counter(), 0
        for i in range(50_000):
            total += i * i
        times.append(time.perf_counter() - started)
    return round(sorted(times)[calls // 2] * 1000, 3)


def others_cores(seconds: float = 1.0) -> float:
    """Cores the rest of the host keeps busy, sampled over `seconds` (this process sleeps meanwhile)."""
    busy, cpu = host_busy_seconds(), time.process_time()
    time.sleep(seconds)
    return max(0.0, (host_busy_seconds() - busy - (time.process_time() - cpu)) / seconds)


# -- the child: one fresh process, one model --------------------------------------------------------------


def child(model_id: str, out: Path, budget: float | None, old: bool, threads: int | None) -> None:
    import numpy as np

    from core import latency, runtimes

    if threads is not None:  # before any session or TensorFlow op exists
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        runtimes.ONNX_THREADS = threads
    from core.features import Extractor
    from core.train import build_head
    from core.zoo import ModelRef

    if budget is not None:
        latency.TIMING_BUDGET_SECONDS = budget
    measure, engines = latency.measure_latency, []

    def observed(predict, size, budget_seconds=None, threads=None):
        """`measure_latency` as the sweep calls it, with its wall time and the rest of the host's CPU."""
        reference = reference_ms()
        busy, cpu, started = host_busy_seconds(), time.process_time(), time.perf_counter()
        timed = measure(predict, size, budget_seconds, threads)
        wall = time.perf_counter() - started
        others = max(0.0, (host_busy_seconds() - busy - (time.process_time() - cpu)) / wall)
        engines.append({"seconds": round(wall, 3), "others_cores": round(others, 2), "reference_ms": reference})
        return timed

    latency.measure_latency = observed
    ref = ModelRef.parse(model_id)
    extractor = Extractor(None, ref)
    started = time.perf_counter()
    built = extractor.runtime  # build, export and check ONNX: untimed, as in a sweep
    setup_seconds = time.perf_counter() - started
    head = build_head(extractor.base.feature_dim, 2, 0.2)
    measured = latency.model_latency(extractor, head)
    record = {
        "model": model_id,
        "runtime": built.name,
        "budget_seconds": latency.TIMING_BUDGET_SECONDS,
        "setup_seconds": round(setup_seconds, 1),
        "engines": {},
    }
    order = iter(engines)
    for engine, timed in measured.items():
        entry = {"latency": timed and {**asdict(timed), "ms_iqr": timed.ms_iqr}}
        if timed:
            entry.update(next(order))
            forward = extractor.base if engine == "tf" else extractor.runtime
            if old:
                entry["old_ms"] = old_definition(lambda images, f=forward: head(f(images), training=False), ref.size)
            features = forward(np.zeros((1, ref.size, ref.size, 3), np.uint8))
            entry["numpy_head_us"] = head_microseconds(latency.NumpyHead.of(head), features)
        record["engines"][engine] = entry
    out.write_text(json.dumps(record))


def old_definition(predict, size: int) -> float:
    """ms per image at batch 1 as measured before issue #10: one warm-up, the median of at least 3 and
    at most 20 calls within 0.25 s (the Keras head called eagerly)."""
    import numpy as np

    images = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    predict(images)
    times: list[float] = []
    deadline = time.perf_counter() + OLD_BUDGET_SECONDS
    while len(times) < OLD_MAX_RUNS and (len(times) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        predict(images)
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1000, 3)


def head_microseconds(head, features, calls: int = 2000) -> float:
    """µs per call of the numpy head at batch 1."""
    for _ in range(10):
        head(features)
    started = time.perf_counter()
    for _ in range(calls):
        head(features)
    return round((time.perf_counter() - started) / calls * 1e6, 2)


# -- the parent: fresh processes, then the table -------------------------------------------------------------


def run_child(args: argparse.Namespace, temp: Path, model_id: str, run: int) -> dict:
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in model_id)
    home, out = temp / f"home-{stem}-{run}", temp / f"{stem}-{run}.json"
    waited, before = 0.0, others_cores()
    while before > QUIET_CORES and waited < args.quiet_wait:
        waited += 5.0
        time.sleep(4.0)
        before = others_cores()
    command = [sys.executable, str(Path(__file__).resolve()), "--child", model_id, str(out)]
    command += ["--budget", str(args.budget)] if args.budget is not None else []
    command += ["--no-old"] if args.no_old else []
    command += ["--threads", str(args.threads)] if args.threads is not None else []
    environment = {**os.environ, "TRANSFERBENCH_HOME": str(home)}
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"{model_id} run {run} failed:\n{completed.stderr[-3000:]}")
    record = json.loads(out.read_text())
    record.update(
        run=run, wall_seconds=round(time.perf_counter() - started, 1), others_before=round(before, 2), waited=waited
    )
    return record


def summarize(records: list[dict], models: list[str]) -> tuple[list[dict], list[str]]:
    """Per model and engine: both runs' figures, the ratio of the medians, PASS/FAIL; and the printed lines."""
    rows, lines = [], []
    for model_id in models:
        runs = [r for r in records if r["model"] == model_id]
        for engine in runs[0]["engines"]:
            entries = [r["engines"].get(engine) or {} for r in runs]
            figures = [e.get("latency") for e in entries]
            if not all(figures):
                lines.append(f"{model_id:<18} {engine:<4} cannot run in this engine (TensorFlow is used)")
                continue
            medians, firsts = [f["ms"] for f in figures], [f["ms_q1"] for f in figures]
            ratio = max(medians) / min(medians)
            row = {
                "model": model_id,
                "engine": engine,
                "medians_ms": medians,
                "quartiles_ms": [[f["ms_q1"], f["ms_q3"]] for f in figures],
                "images_per_second": [f["images_per_second"] for f in figures],
                "repeats": [f["repeats"] for f in figures],
                "threads": figures[0]["threads"],
                "ratio": round(ratio, 3),
                "q1_ratio": round(max(firsts) / min(firsts), 3),  # the same for the first quartiles
                "pass": ratio <= TARGET_RATIO,
                "timing_seconds": [e["seconds"] for e in entries],
                "others_cores": [e["others_cores"] for e in entries],
                "numpy_head_us": [e["numpy_head_us"] for e in entries],
                "reference_ms": [e["reference_ms"] for e in entries],
            }
            runs_text = "  ".join(
                f"{f['ms']:7.2f} ({f['ms_q1']:.2f}-{f['ms_q3']:.2f}) n={f['repeats']:<4} {f['images_per_second']:5.0f}/s"
                for f in figures
            )
            text = f"{model_id:<18} {engine:<4} {runs_text}  ratio {ratio:5.2f} {'PASS' if row['pass'] else 'FAIL'}"
            text += f" (q1 {row['q1_ratio']:.2f})  others {'/'.join(f'{c:.2f}' for c in row['others_cores'])}"
            text += f"  timing {'/'.join(f'{s:.1f}' for s in row['timing_seconds'])} s"
            text += f"  reference {'/'.join(f'{ms:.2f}' for ms in row['reference_ms'])} ms"
            if all("old_ms" in e for e in entries):
                old = [e["old_ms"] for e in entries]
                row["old_ms"], row["old_ratio"] = old, round(max(old) / min(old), 3)
                text += f"  | old (Keras head) {' / '.join(f'{ms:.2f}' for ms in old)} ratio {row['old_ratio']:.2f}"
            rows.append(row)
            lines.append(text)
    return rows, lines


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(REPO))
    if args.child:
        child(args.child[0], Path(args.child[1]), args.budget, not args.no_old, args.threads)
        return 0
    sys.path.insert(0, str(REPO / "bench"))
    from sweep import setup_environment  # the same offline KERAS_HOME as the sweep benchmark

    temp = Path(tempfile.mkdtemp(prefix="transferbench-latency-"))
    setup_environment(args.shared, temp)
    threads = f"{args.threads} intra-op threads" if args.threads else "the engines' own thread settings"
    budget = f"{args.budget} s" if args.budget else "core.latency's budget"
    log(f"{len(args.models)} models x {args.runs} fresh processes, {os.cpu_count()} cores, {threads}, {budget}")
    records = []
    try:
        for run in range(1, args.runs + 1):  # every model once, then again: the runs of a model are minutes apart
            for model_id in args.models:
                record = run_child(args, temp, model_id, run)
                records.append(record)
                figures = "  ".join(
                    f"{engine} {entry['latency']['ms']:.2f} ms (others {entry['others_cores']:.2f} cores)"
                    for engine, entry in record["engines"].items()
                    if entry.get("latency")
                )
                log(
                    f"  run {run} {model_id:<18} {figures}  [{record['wall_seconds']:.0f} s, waited {record['waited']:.0f} s]"
                )
    finally:
        if not args.keep_temp:
            import shutil

            shutil.rmtree(temp, ignore_errors=True)
    rows, lines = summarize(records, args.models)
    log()
    log("model              eng  per run: median ms (IQR) timed calls, images/s at batch 32    ratio of medians")
    for line in lines:
        log(line)
    passed = sum(row["pass"] for row in rows)
    log(f"\n{passed} of {len(rows)} pairs within {TARGET_RATIO}x.")
    head_us = [us for row in rows for us in row["numpy_head_us"]]
    if head_us:
        log(f"numpy head alone at batch 1 (2 classes): {min(head_us):.1f}-{max(head_us):.1f} µs per call")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"budget": args.budget, "threads": args.threads}
    args.out.write_text(json.dumps({**settings, "rows": rows, "runs": records}, indent=1))
    log(f"Results: {args.out}")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
