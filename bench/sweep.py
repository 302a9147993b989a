"""Benchmark of a real sweep against its targets, all measured in one run, offline.

Run from the repository root:

    python bench/sweep.py [--shared ../shared] [--out bench/results/sweep.json]
                          [--models MobileNetV2:0.35 MobileNet:0.75 MobileNet:0.25] [--skip-seeds]

Steps, in this order so that one measurement does not warm up the next:

1. cold sweep: `core.sweep.run_sweep` over cats-and-dogs (3,000 JPEGs) with a fresh, empty
   TRANSFERBENCH_HOME (dataset scan, decoding, features, heads, latency, store), wall time, with the
   process' peak resident memory sampled during it;
2. one-model cold sweep of the seeds' model (MobileNetV2:0.35) in another fresh home: our cost for the
   same job as step 5 (skipped with --skip-seeds);
3. repeat: the sweep of step 1 again with its now warm cache;
4. bare forward passes: every image decoded in memory first (untimed), then for each model only the
   batches of the engine's own size (core.features.BATCH_SIZE) through a `tf.function` of `model(preprocess_input(x), training=False)`;
5. the seeds' way (skipped with --skip-seeds): `image_dataset_from_directory` at 224 batch 32, frozen
   base + GlobalAveragePooling/Dropout/Dense softmax, `fit(epochs=3)`.

Then the ratios against the targets, each marked PASS or FAIL. Results are also written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("MobileNetV2:0.35", "MobileNet:0.75", "MobileNet:0.25")
SEEDS_MODEL = "MobileNetV2:0.35"
SIZE = 224
SEEDS_BATCH = 32
SEEDS_EPOCHS = 3

TARGET_SWEEP_OVER_FORWARD = 1.2  # sweep / forward <= 1.2
TARGET_SEEDS_SPEEDUP = 3.0  # seeds' way / our one-model sweep >= 3
TARGET_REPEAT_OVER_FIRST = 0.10  # repeat / first < 0.10
TARGET_PEAK_RSS_MB = 2500.0  # peak RSS < 2500 MB


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared folder (default: <repo>/../shared)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sweep.json", help="JSON results file")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="model ids to sweep")
    parser.add_argument("--skip-seeds", action="store_true", help="skip the seeds' way and the one-model cold sweep")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary folder (for debugging)")
    return parser.parse_args()


def setup_environment(shared: Path, temp: Path) -> None:
    """A writable KERAS_HOME of symlinks into the shared cache; must run before Keras or `core` is imported."""
    shared_keras = shared.resolve() / "keras"
    if not (shared_keras / "models").is_dir():
        sys.exit(f"No shared Keras cache at {shared_keras} (use --shared).")
    keras_home = temp / "keras"
    for sub in ("models", "datasets"):
        (keras_home / sub).mkdir(parents=True)
        source = shared_keras / sub
        if source.is_dir():
            for item in source.iterdir():
                (keras_home / sub / item.name).symlink_to(item)
    os.environ["KERAS_HOME"] = str(keras_home)
    os.environ["TRANSFERBENCH_HOME"] = str(temp / "data-home")  # only where the sample zip is extracted
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def use_home(path: Path) -> None:
    """Point `core.config.home()` (read on every call) at `path`."""
    os.environ["TRANSFERBENCH_HOME"] = str(path)


def log(message: str) -> None:
    print(message, flush=True)


class PeakRSS:
    """Peak resident memory of this process, sampled every 0.1 s in a background thread."""

    def __init__(self, interval: float = 0.1):
        import psutil

        self._process, self._interval = psutil.Process(), interval
        self._stop = threading.Event()
        self.peak = self.start = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


class StepClock:
    """Wall time of a step, with this process' CPU use and the host's load during it.

    Other processes on the host (say, a test run) take CPU from the benchmark; `cpu_share` (this
    process' CPU seconds / wall seconds / cores) and the load averages make that visible in the results.
    """

    def __init__(self, name: str, record: dict):
        self.name, self.record = name, record

    def __enter__(self) -> "StepClock":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self.load_before = os.getloadavg()[0]
        return self

    def __exit__(self, *exc) -> None:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        self.record[self.name] = {
            "wall_seconds": round(wall, 2),
            "cpu_share": round(cpu / wall / (os.cpu_count() or 1), 3) if wall else None,
            "load_1min_before": round(self.load_before, 2),
            "load_1min_after": round(os.getloadavg()[0], 2),
        }


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def timed_sweep(path: Path, models: list[str], home: Path) -> tuple[float, dict]:
    from core.sweep import SweepSettings, run_sweep

    use_home(home)
    settings = SweepSettings(models=models)  # built untimed (first use imports the zoo)
    started = time.perf_counter()
    result = run_sweep(path, settings)
    return time.perf_counter() - started, result


def per_model(result: dict) -> dict[str, dict]:
    keys = ("status", "error", "val_accuracy", "feature_seconds", "features_cached", "head_seconds", "epochs_run", "latency_ms", "throughput_ips")
    return {r["model"]: {k: r[k] for k in keys if k in r} for r in result["results"]}


def print_sweep(name: str, seconds: float, result: dict) -> None:
    log(f"{name}: {seconds:.1f} s")
    for model, r in per_model(result).items():
        if r.get("status") != "ok":
            log(f"  {model:<18} FAILED {r.get('error')}")
            continue
        log(
            f"  {model:<18} val_accuracy {r['val_accuracy']:.4f}  features {r['feature_seconds']:.1f} s"
            f"{' (cached)' if r['features_cached'] else ''}  head {r['head_seconds']:.1f} s ({r['epochs_run']} epochs)"
        )


def decode_all(path: Path):
    """Every image of the dataset (train, then validation) as one uint8 array at SIZE, decoded with core's loader."""
    import numpy as np

    from core.data import load_dataset, load_image

    dataset = load_dataset(path)
    paths = [r.path for r in dataset.train + dataset.validation]
    images = np.empty((len(paths), SIZE, SIZE, 3), np.uint8)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for index, image in enumerate(pool.map(lambda p: load_image(p, SIZE), paths)):
            images[index] = image
    return images


def forward_passes(images, model_id: str) -> float:
    """Seconds of the forward passes alone over `images` through the engine's TensorFlow base, in its batches."""
    from core.features import BATCH_SIZE, FrozenBase
    from core.zoo import parse_model_id

    spec, _ = parse_model_id(model_id)
    base = FrozenBase(spec, SIZE, "imagenet")  # untimed
    base(images[:BATCH_SIZE])  # warm-up, untimed
    started = time.perf_counter()
    for start in range(0, len(images), BATCH_SIZE):
        base(images[start : start + BATCH_SIZE])
    return time.perf_counter() - started


def seeds_way(path: Path, model_id: str) -> dict:
    """The usual notebook recipe: image_dataset_from_directory + frozen base + small head, fit 3 epochs."""
    import keras

    from core.zoo import parse_model_id

    spec, _ = parse_model_id(model_id)
    keras.utils.set_random_seed(1337)
    started = time.perf_counter()
    train = keras.utils.image_dataset_from_directory(path / "train", image_size=(SIZE, SIZE), batch_size=SEEDS_BATCH, shuffle=True, seed=1337, verbose=False)
    validation = keras.utils.image_dataset_from_directory(path / "validation", image_size=(SIZE, SIZE), batch_size=SEEDS_BATCH, shuffle=False, verbose=False)
    num_classes = len(train.class_names)

    base = getattr(keras.applications, spec.constructor)(include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3), **spec.kwargs)
    base.trainable = False
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Lambda(spec.preprocess_input, name="preprocess_input")(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    fit_started = time.perf_counter()
    history = model.fit(train, validation_data=validation, epochs=SEEDS_EPOCHS, shuffle=False, verbose=0)  # already shuffled by the dataset
    ended = time.perf_counter()
    return {
        "model": model_id,
        "seconds": ended - started,  # datasets + build + fit
        "fit_seconds": ended - fit_started,
        "epochs": SEEDS_EPOCHS,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "val_accuracy_per_epoch": [float(v) for v in history.history["val_accuracy"]],
    }


def check(name: str, value: float, ok: bool, target: str) -> dict:
    log(f"  {'PASS' if ok else 'FAIL'}  {name:<44} {value:>9.3f}   target {target}")
    return {"value": round(value, 4), "target": target, "pass": bool(ok)}


def main() -> int:
    args = parse_args()
    total_started = time.perf_counter()
    temp = Path(tempfile.mkdtemp(prefix="transferbench-bench-"))
    setup_environment(args.shared, temp)
    sys.path.insert(0, str(REPO))
    out: dict = {"models": list(args.models), "size": SIZE}
    host: dict = {}  # per step: wall time, this process' CPU share, host load
    try:
        import keras
        import tensorflow as tf

        from core.data import sample_dataset

        path = sample_dataset("cats_and_dogs")  # extracted once into the data home, untimed
        out["environment"] = {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        }
        log(f"Dataset: {path}")
        log(f"Models:  {', '.join(args.models)}   (Python {platform.python_version()}, TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs)")
        log("")

        # 1. Cold sweep, first, with peak RSS sampled during it.
        home = temp / "home-cold"
        log("[1/5] cold sweep ...")
        maxrss_before = ru_maxrss_mb()
        with PeakRSS() as rss, StepClock("cold_sweep", host):
            sweep_seconds, first = timed_sweep(path, args.models, home)
        out["sweep_seconds"] = round(sweep_seconds, 3)
        out["sweep"] = per_model(first)
        maxrss_after = ru_maxrss_mb()
        # The 0.1 s samples can miss a short spike; ru_maxrss (the lifetime peak) catches it, and before
        # this sweep it was well below (printed), so the larger of the two is the sweep's peak.
        out["peak_rss_mb"] = round(max(rss.peak / 2**20, maxrss_after), 1)
        out["rss_before_sweep_mb"] = round(rss.start / 2**20, 1)
        out["ru_maxrss_mb"] = {"before_sweep": round(maxrss_before, 1), "after_sweep": round(maxrss_after, 1)}
        print_sweep("sweep_seconds (cold)", sweep_seconds, first)
        log(f"  peak RSS during cold sweep {out['peak_rss_mb']:.0f} MB (RSS before it {out['rss_before_sweep_mb']:.0f} MB; ru_maxrss before {maxrss_before:.0f} MB, after {maxrss_after:.0f} MB)")
        log("")

        # 2. One-model cold sweep of the seeds' model, in another fresh home.
        if not args.skip_seeds:
            log(f"[2/5] one-model cold sweep of {SEEDS_MODEL} ...")
            with StepClock("one_model_sweep", host):
                one_seconds, one = timed_sweep(path, [SEEDS_MODEL], temp / "home-one")
            out["one_model_sweep_seconds"] = round(one_seconds, 3)
            out["one_model_sweep"] = per_model(one)
            print_sweep("one_model_sweep_seconds (cold)", one_seconds, one)
            shutil.rmtree(temp / "home-one", ignore_errors=True)
            log("")
        else:
            log("[2/5] one-model cold sweep: skipped (--skip-seeds)")

        # 3. Repeat with the warm cache of step 1.
        log("[3/5] repeat sweep (warm cache) ...")
        with StepClock("repeat", host):
            repeat_seconds, repeat = timed_sweep(path, args.models, home)
        out["repeat_seconds"] = round(repeat_seconds, 3)
        out["repeat"] = per_model(repeat)
        print_sweep("repeat_seconds (warm)", repeat_seconds, repeat)
        log("")

        # 4. Bare forward passes over images already in memory.
        log("[4/5] bare forward passes ...")
        started = time.perf_counter()
        images = decode_all(path)
        log(f"  decoded {len(images)} images at {SIZE} in memory in {time.perf_counter() - started:.1f} s (untimed)")
        out["forward"] = {}
        for model_id in args.models:
            with StepClock(f"forward {model_id}", host):
                seconds = forward_passes(images, model_id)
            out["forward"][model_id] = {"seconds": round(seconds, 3), "images_per_second": round(len(images) / seconds, 1)}
            log(f"  {model_id:<18} {seconds:6.1f} s  {len(images) / seconds:7.1f} images/s")
        forward_seconds = sum(f["seconds"] for f in out["forward"].values())
        out["forward_seconds"] = round(forward_seconds, 3)
        out["forward_images"] = int(len(images))
        log(f"forward_seconds (sum): {forward_seconds:.1f} s")
        del images
        log("")

        # 5. The seeds' way.
        if not args.skip_seeds:
            log(f"[5/5] the seeds' way: {SEEDS_MODEL}, image_dataset_from_directory + fit({SEEDS_EPOCHS} epochs) ...")
            with StepClock("seeds", host):
                seeds = seeds_way(path, SEEDS_MODEL)
            out["seeds_seconds"] = round(seeds["seconds"], 3)
            out["seeds"] = seeds
            log(
                f"seeds_seconds: {seeds['seconds']:.1f} s (fit {seeds['fit_seconds']:.1f} s), "
                f"val_accuracy {seeds['val_accuracy']:.4f} (per epoch {', '.join(f'{v:.4f}' for v in seeds['val_accuracy_per_epoch'])})"
            )
        else:
            log("[5/5] the seeds' way: skipped (--skip-seeds)")
        log("")

        out["host_load"] = host
        log("Host load per step (cpu_share = this process' CPU seconds / wall / cores; low means CPU taken by others):")
        for name, h in host.items():
            log(f"  {name:<26} wall {h['wall_seconds']:7.1f} s  cpu_share {h['cpu_share']:.2f}  load(1 min) {h['load_1min_before']:.2f} -> {h['load_1min_after']:.2f}")
        log("")

        # Ratios against the targets.
        log("Targets:")
        checks = {}
        checks["sweep_over_forward"] = check("sweep / forward", sweep_seconds / forward_seconds, sweep_seconds / forward_seconds <= TARGET_SWEEP_OVER_FORWARD, f"<= {TARGET_SWEEP_OVER_FORWARD}")
        if not args.skip_seeds:
            speedup = out["seeds_seconds"] / out["one_model_sweep_seconds"]
            checks["seeds_over_one_model_sweep"] = check(f"seeds / one-model sweep ({SEEDS_MODEL})", speedup, speedup >= TARGET_SEEDS_SPEEDUP, f">= {TARGET_SEEDS_SPEEDUP:g} (x faster)")
        ratio = repeat_seconds / sweep_seconds
        checks["repeat_over_first"] = check("repeat / first", ratio, ratio < TARGET_REPEAT_OVER_FIRST, f"< {TARGET_REPEAT_OVER_FIRST}")
        checks["peak_rss_mb"] = check("peak RSS during cold sweep (MB)", out["peak_rss_mb"], out["peak_rss_mb"] < TARGET_PEAK_RSS_MB, f"< {TARGET_PEAK_RSS_MB:g}")
        out["checks"] = checks
        out["all_pass"] = all(c["pass"] for c in checks.values())
        out["total_seconds"] = round(time.perf_counter() - total_started, 1)

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        log("")
        log(f"{'ALL PASS' if out['all_pass'] else 'SOME FAIL'}; results written to {args.out}; total {out['total_seconds']:.0f} s")
        return 0 if out["all_pass"] else 1
    finally:
        if not args.keep_temp:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
