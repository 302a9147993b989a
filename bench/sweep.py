"""Benchmark of issue #4's targets: real sweeps against the seed-004 notebook method, all in one run, offline.

Run from the repository root:

    python bench/sweep.py [--shared ../shared] [--out bench/results/sweep.json]
                          [--models MobileNetV2:0.35 MobileNet:0.75 MobileNet:0.25]
                          [--untrained ResNet50/none EfficientNetB0/none]
                          [--skip-seeds] [--skip-screening] [--keep-temp]

The dataset is cats-and-dogs (3,000 JPEGs). Every measured sweep runs cold in its own fresh
TRANSFERBENCH_HOME unless said otherwise. Steps, in this order so that one measurement does not warm up
the next:

1. cold sweeps of the shared models with `runtime="auto"` (first, with the process' peak resident
   memory sampled during it) and `runtime="tf"`; then one cold sweep per model (auto), the cost to
   compare with step 2 (the per-model sweeps are skipped with --skip-seeds);
2. the seed-004 method per model (skipped with --skip-seeds): `image_dataset_from_directory` at 224,
   batch 32, Rescaling(1/255), frozen ImageNet base, GlobalAveragePooling2D + Dense softmax, compiled
   with Keras' default optimizer, `fit(epochs=3)`;
3. bare forward passes per model over images already decoded in memory, in the engine's batches:
   TensorFlow (`core.runtimes.FrozenBase`) and ONNX Runtime (`core.runtimes.make_runtime`); export and
   warm-up untimed. Then a "warm host" sweep: a fresh home holding only the per-host caches (exported
   graphs, latency.json) of step 1's auto sweep, and one such sweep per model (a reported figure against
   step 2: what the next dataset costs on this host);
4. screening (skipped with --skip-screening): the 8-model sweep in full, then screened with the
   default share (`core.screening.DEFAULT_SCREEN_SHARE`);
5. warm repeat: step 1's auto sweep again in its now warm home.

Then the ratios against the targets, each marked PASS or FAIL; exit code 0 only when all pass.
Results are also written as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
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
SCREEN_MODELS = (
    "MobileNet:0.25@128",
    "MobileNet:0.25@160",
    "MobileNet:0.25@192",
    "MobileNet:0.25@224",
    "MobileNet:0.75",
    "MobileNetV2:0.35",
)
DEFAULT_UNTRAINED = ("ResNet50/none", "EfficientNetB0/none")
SIZE = 224
SEED_BATCH = 32
SEED_EPOCHS = 3

TARGET_SEED_OVER_SWEEP = 5.0  # seed-004 seconds / our one-model cold sweep seconds >= 5, per model
TARGET_SWEEP_OVER_FORWARD = 1.1  # cold auto sweep / fastest runtime's bare forward passes <= 1.1
TARGET_SCREENED_OVER_FULL = 0.30  # screened sweep / full sweep <= 0.30 (and the same winner)
TARGET_REPEAT_OVER_FIRST = 0.10  # warm repeat / cold sweep < 0.10
TARGET_PEAK_RSS_MB = 2500.0  # peak RSS during the first cold sweep < 2500 MB

SWEEP_KEYS = (
    "status",
    "error",
    "subset_accuracy",
    "subset_images",
    "val_accuracy",
    "runtime",
    "runtime_note",
    "feature_seconds",
    "features_cached",
    "head_seconds",
    "epochs_run",
    "latency_ms_tf",
    "latency_ms_onnx",
)  # what the JSON results keep of each model's record


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared", type=Path, default=REPO.parent / "shared", help="the shared folder (default: <repo>/../shared)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sweep.json", help="JSON results file")
    parser.add_argument(
        "--models", nargs="+", default=list(DEFAULT_MODELS), help="shared models of steps 1, 2, 3 and 5"
    )
    parser.add_argument(
        "--untrained", nargs="+", default=list(DEFAULT_UNTRAINED), help="the 2 extra models of the screening sweep"
    )
    parser.add_argument("--skip-seeds", action="store_true", help="skip the seed-004 method and the per-model sweeps")
    parser.add_argument("--skip-screening", action="store_true", help="skip the full and screened 8-model sweeps")
    parser.add_argument(
        "--keep-temp", action="store_true", help="keep the temporary folder and every home (for debugging)"
    )
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


def log(message: str = "") -> None:
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

    def __enter__(self) -> PeakRSS:
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

    def __enter__(self) -> StepClock:
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


class Bench:
    """What the steps share: the dataset, the temporary folder of homes, and the host load per step."""

    def __init__(self, path: Path, temp: Path, keep_temp: bool):
        self.path, self.temp, self.keep_temp = path, temp, keep_temp
        self.host: dict = {}  # per step: wall time, this process' CPU share, host load

    def home(self, name: str) -> Path:
        return self.temp / f"home-{name}"

    def sweep(self, step: str, home: Path, **settings) -> dict:
        """`run_sweep` over the dataset in `home` (`core.paths.home()` reads it on every call), timed and printed."""
        from core.sweep import SweepSettings, run_sweep

        os.environ["TRANSFERBENCH_HOME"] = str(home)
        sweep_settings = SweepSettings(**settings)  # built untimed (first use imports the zoo)
        with StepClock(step, self.host):
            started = time.perf_counter()
            outcome = run_sweep(self.path, sweep_settings)
            seconds = time.perf_counter() - started
        print_sweep(step, seconds, outcome.results)
        recommendation = outcome.to_dict()["recommendation"]
        return {"seconds": round(seconds, 3), "recommendation": recommendation, "models": per_model(outcome.results)}

    def discard(self, home: Path) -> None:
        """Free the disk of a home no later step reads (decoded images are hundreds of MB)."""
        if not self.keep_temp:
            shutil.rmtree(home, ignore_errors=True)


def per_model(results: list) -> dict[str, dict]:
    """The JSON results' figures of each model (`core.records` results)."""
    from dataclasses import asdict

    from core.records import ModelResult

    rows = {r.model: r.row() if isinstance(r, ModelResult) else asdict(r) for r in results}
    return {model: {k: row[k] for k in SWEEP_KEYS if k in row} for model, row in rows.items()}


def print_sweep(name: str, seconds: float, results: list) -> None:
    from core.records import Failed, ScreenedOut

    log(f"{name}: {seconds:.1f} s")
    for r in results:
        if isinstance(r, Failed):
            log(f"  {r.model:<24} FAILED {r.error}")
        elif isinstance(r, ScreenedOut):
            log(f"  {r.model:<24} screened out (subset accuracy {r.subset_accuracy:.4f} on {r.subset_images} images)")
        else:
            latency = "  ".join(f"{engine} {timed.ms:.1f} ms" for engine, timed in r.latency.items() if timed)
            log(
                f"  {r.model:<24} val_accuracy {r.val_accuracy:.4f}  runtime {r.runtime:<4}  features {r.feature_seconds:.1f} s"
                f"{' (cached)' if r.features_cached else ''}  head {r.head_seconds:.1f} s ({r.epochs_run} epochs)  latency {latency}"
            )
            if r.runtime_note:
                log(f"  {'':<24} ONNX not used: {r.runtime_note}")


def step_cold_sweeps(bench: Bench, models: list[str], per_model_sweeps: bool) -> dict:
    """Step 1: the auto sweep (first, with peak RSS; its home is kept for steps 3 and 5), the tf sweep, per-model sweeps."""
    section: dict = {}
    maxrss_before = ru_maxrss_mb()
    with PeakRSS() as rss:
        section["auto"] = bench.sweep("cold sweep auto", bench.home("auto"), models=models, runtime="auto")
    maxrss_after = ru_maxrss_mb()
    # The 0.1 s samples can miss a short spike; ru_maxrss (the lifetime peak) catches it, and before this
    # sweep it was well below (printed), so the larger of the two is the sweep's peak.
    section["peak_rss_mb"] = round(max(rss.peak / 2**20, maxrss_after), 1)
    section["rss_before_sweep_mb"] = round(rss.start / 2**20, 1)
    section["ru_maxrss_mb"] = {"before_sweep": round(maxrss_before, 1), "after_sweep": round(maxrss_after, 1)}
    log(
        f"  peak RSS {section['peak_rss_mb']:.0f} MB (RSS before {section['rss_before_sweep_mb']:.0f} MB; ru_maxrss before {maxrss_before:.0f} MB, after {maxrss_after:.0f} MB)"
    )

    section["tf"] = bench.sweep("cold sweep tf", bench.home("tf"), models=models, runtime="tf")
    bench.discard(bench.home("tf"))
    if per_model_sweeps:
        section["per_model"] = {}
        for index, model in enumerate(models):
            home = bench.home(f"one-{index}")
            section["per_model"][model] = bench.sweep(f"one-model sweep {model}", home, models=[model], runtime="auto")
            bench.discard(home)
    return section


def seed_004(path: Path, model_id: str) -> dict:
    """The seed-004 notebook method: datasets from folders, pixels / 255, frozen base + pooled softmax head, fit 3 epochs."""
    import keras

    from core.config import DEFAULT_SEED
    from core.zoo import ModelRef

    spec = ModelRef.parse(model_id).spec
    keras.utils.set_random_seed(DEFAULT_SEED)
    started = time.perf_counter()
    train = keras.utils.image_dataset_from_directory(
        path / "train", image_size=(SIZE, SIZE), batch_size=SEED_BATCH, verbose=False
    )
    validation = keras.utils.image_dataset_from_directory(
        path / "validation", image_size=(SIZE, SIZE), batch_size=SEED_BATCH, verbose=False
    )

    base = getattr(keras.applications, spec.constructor)(
        include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3), **spec.kwargs
    )
    base.trainable = False
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)  # the seed notebooks' scaling, not the model's preprocess_input
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(train.class_names), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # Keras' default optimizer (rmsprop)

    fit_started = time.perf_counter()
    # shuffle=False only silences Keras' warning: `fit` never reshuffles a tf.data dataset, which shuffles itself.
    history = model.fit(train, validation_data=validation, epochs=SEED_EPOCHS, shuffle=False, verbose=0)
    ended = time.perf_counter()
    return {
        "seconds": round(ended - started, 3),  # datasets + build + fit
        "fit_seconds": round(ended - fit_started, 3),
        "epochs": SEED_EPOCHS,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "val_accuracy_per_epoch": [float(v) for v in history.history["val_accuracy"]],
    }


def step_seeds(bench: Bench, models: list[str]) -> dict:
    """Step 2: the seed-004 method for each model."""
    section = {}
    for model in models:
        with StepClock(f"seed-004 {model}", bench.host):
            seed = seed_004(bench.path, model)
        section[model] = seed
        per_epoch = ", ".join(f"{v:.4f}" for v in seed["val_accuracy_per_epoch"])
        log(
            f"seed-004 {model}: {seed['seconds']:.1f} s (fit {seed['fit_seconds']:.1f} s), val_accuracy {seed['val_accuracy']:.4f} (per epoch {per_epoch})"
        )
    return section


def decode_all(path: Path):
    """Every image of the dataset (train, then validation) as one uint8 array at SIZE, decoded with core's loader."""
    import numpy as np

    from core.data import load_dataset
    from core.images import load_image

    dataset = load_dataset(path)
    paths = [r.path for r in dataset.train + dataset.validation]
    images = np.empty((len(paths), SIZE, SIZE, 3), np.uint8)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for index, image in enumerate(pool.map(lambda p: load_image(p, SIZE), paths)):
            images[index] = image
    return images


def timed_batches(forward, images) -> dict:
    """Seconds and images/s of `forward` over `images` in the engine's batches, after one untimed warm-up batch."""
    from core.features import BATCH_SIZE

    forward(images[:BATCH_SIZE])
    started = time.perf_counter()
    for start in range(0, len(images), BATCH_SIZE):
        forward(images[start : start + BATCH_SIZE])
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "images_per_second": round(len(images) / seconds, 1)}


def bare_forward(images, model_id: str, graphs: Path) -> dict:
    """One model's forward passes in TensorFlow and in ONNX Runtime (graph exported or reused from `graphs`, untimed)."""
    from core.features import CALIBRATION_IMAGES
    from core.runtimes import FrozenBase, make_runtime
    from core.zoo import ModelRef

    base = FrozenBase(ModelRef.parse(model_id, SIZE))
    onnx = make_runtime(base, "onnx", images[:CALIBRATION_IMAGES], graphs / f"{base.ref.stem}.onnx")
    return {
        "tf": timed_batches(base, images),
        "onnx": {
            **timed_batches(onnx, images),
            "runtime": onnx.name,
            "fallback_reason": onnx.fallback_reason,
            "parity": onnx.parity,
        },
    }


def per_host_caches(home: Path) -> tuple[Path, Path]:
    """The exported-graphs folder and the latency file that `core.paths` puts in the data folder `home`."""
    from core import paths

    current = paths.home()
    return tuple(home / path.relative_to(current) for path in (paths.graphs_dir(), paths.latency_cache()))


def warm_host_home(cold: Path, home: Path) -> None:
    """A fresh home holding only the per-host caches of `cold`: its exported graphs and measured latencies."""
    (graphs, latency), (new_graphs, new_latency) = per_host_caches(cold), per_host_caches(home)
    new_latency.parent.mkdir(parents=True)
    if graphs.is_dir():
        shutil.copytree(graphs, new_graphs)
    if latency.exists():
        shutil.copy2(latency, new_latency)


def step_forward(bench: Bench, models: list[str]) -> dict:
    """Step 3: bare forward passes of each runtime over images in memory, then the warm-host sweep."""
    started = time.perf_counter()
    images = decode_all(bench.path)
    log(f"decoded {len(images)} images at {SIZE} in memory in {time.perf_counter() - started:.1f} s (untimed)")
    section: dict = {"images": int(len(images)), "models": {}}
    for model in models:
        with StepClock(f"forward {model}", bench.host):
            found = section["models"][model] = bare_forward(images, model, per_host_caches(bench.home("auto"))[0])
        onnx = found["onnx"]
        log(
            f"  {model:<24} tf {found['tf']['seconds']:6.1f} s {found['tf']['images_per_second']:7.1f} images/s   "
            f"onnx {onnx['seconds']:6.1f} s {onnx['images_per_second']:7.1f} images/s (ran in {onnx['runtime']})"
        )
        if onnx["fallback_reason"]:
            log(f"  {'':<24} ONNX not used: {onnx['fallback_reason']}")
    del images
    section["sum_seconds"] = {
        name: round(sum(m[name]["seconds"] for m in section["models"].values()), 3) for name in ("tf", "onnx")
    }
    section["fastest"] = min(section["sum_seconds"], key=section["sum_seconds"].get)
    log(
        f"forward seconds (sum): tf {section['sum_seconds']['tf']:.1f} s, onnx {section['sum_seconds']['onnx']:.1f} s; fastest {section['fastest']}"
    )

    warm_host_home(bench.home("auto"), bench.home("warm-host"))
    section["warm_host_sweep"] = bench.sweep(
        "warm-host sweep auto", bench.home("warm-host"), models=models, runtime="auto"
    )
    bench.discard(bench.home("warm-host"))
    section["warm_host_per_model"] = {}
    for index, model in enumerate(models):  # what a second dataset costs: graphs and latencies known
        home = bench.home(f"warm-one-{index}")
        warm_host_home(bench.home("auto"), home)
        section["warm_host_per_model"][model] = bench.sweep(
            f"warm-host one-model sweep {model}", home, models=[model], runtime="auto"
        )
        bench.discard(home)
    return section


def step_screening(bench: Bench, models: list[str]) -> dict:
    """Step 4: the 8-model sweep in full, then screened on a share of the images, each cold."""
    from core.screening import DEFAULT_SCREEN_SHARE

    section = {}
    for name, settings in (("full", {}), ("screened", {"screen": DEFAULT_SCREEN_SHARE})):
        record = section[name] = bench.sweep(f"{name} 8-model sweep", bench.home(name), models=models, **settings)
        bench.discard(bench.home(name))
        recommendation = record["recommendation"] or {}
        record["winner"] = recommendation.get("model")
        log(f"  winner: {record['winner']}")
    screening = section["screened"]["recommendation"]["screening"] if section["screened"]["recommendation"] else {}
    section["screening"] = {
        key: screening.get(key)
        for key in ("finalists", "screened_out", "subset_accuracy", "margin", "winner_changed", "rounds")
    }
    log(f"  screening: {json.dumps(section['screening'])}")
    return section


def check(name: str, value: float | str, ok: bool, target: str) -> dict:
    shown = f"{value:>9.3f}" if isinstance(value, float) else f"{value:>9}"
    log(f"  {'PASS' if ok else 'FAIL'}  {name:<56} {shown}   target {target}")
    return {"value": rounded(value) if isinstance(value, float) else value, "target": target, "pass": bool(ok)}


def figure(name: str, value: float) -> float | None:
    log(f"  ----  {name:<56} {value:>9.3f}   (reported, no target)")
    return rounded(value)


def rounded(value: float) -> float | None:
    """For the JSON: 4 decimals, None for a ratio that could not be computed (NaN)."""
    return None if math.isnan(value) else round(value, 4)


def ratio(numerator: float | None, denominator: float | None) -> float:
    return numerator / denominator if numerator is not None and denominator else math.nan


def evaluate(out: dict) -> tuple[dict, dict]:
    """The checks against the targets (and the extra figures), printed and returned for the JSON."""
    checks, figures = {}, {}
    cold, forward = out["cold_sweeps"], out["forward"]
    for model, seed in out.get("seeds", {}).items():
        ours = cold["per_model"][model]
        speedup = ratio(seed["seconds"], ours["seconds"])
        checks[f"seed_over_sweep {model}"] = check(
            f"seed-004 / one-model cold sweep ({model})",
            speedup,
            speedup >= TARGET_SEED_OVER_SWEEP,
            f">= {TARGET_SEED_OVER_SWEEP:g}",
        )
        accuracy = ours["models"][model].get("val_accuracy")
        gain = accuracy - seed["val_accuracy"] if accuracy is not None else math.nan
        checks[f"accuracy_over_seed {model}"] = check(
            f"our val_accuracy - seed-004's ({model})", gain, gain >= 0, ">= 0"
        )
    for model, seed in out.get("seeds", {}).items():
        warm = forward["warm_host_per_model"][model]["seconds"]
        figures[f"seed_over_warm_host_sweep {model}"] = figure(
            f"seed-004 / one-model warm-host sweep ({model})", ratio(seed["seconds"], warm)
        )
    fastest = forward["sum_seconds"][forward["fastest"]]
    value = ratio(cold["auto"]["seconds"], fastest)
    checks["sweep_over_forward"] = check(
        f"cold auto sweep / bare forward ({forward['fastest']})",
        value,
        value <= TARGET_SWEEP_OVER_FORWARD,
        f"<= {TARGET_SWEEP_OVER_FORWARD}",
    )
    figures["warm_host_sweep_over_forward"] = figure(
        f"warm-host auto sweep / bare forward ({forward['fastest']})",
        ratio(forward["warm_host_sweep"]["seconds"], fastest),
    )
    if "screening" in out:
        full, screened = out["screening"]["full"], out["screening"]["screened"]
        same = full["winner"] is not None and full["winner"] == screened["winner"]
        checks["screened_same_winner"] = check("screened winner == full winner", "yes" if same else "no", same, "same")
        value = ratio(screened["seconds"], full["seconds"])
        checks["screened_over_full"] = check(
            "screened 8-model sweep / full",
            value,
            value <= TARGET_SCREENED_OVER_FULL,
            f"<= {TARGET_SCREENED_OVER_FULL}",
        )
    value = ratio(out["repeat"]["seconds"], cold["auto"]["seconds"])
    checks["repeat_over_first"] = check(
        "warm repeat / cold auto sweep", value, value < TARGET_REPEAT_OVER_FIRST, f"< {TARGET_REPEAT_OVER_FIRST}"
    )
    checks["peak_rss_mb"] = check(
        "peak RSS during the first cold sweep (MB)",
        cold["peak_rss_mb"],
        cold["peak_rss_mb"] < TARGET_PEAK_RSS_MB,
        f"< {TARGET_PEAK_RSS_MB:g}",
    )
    return checks, figures


def print_host_load(host: dict) -> None:
    log("Host load per step (cpu_share = this process' CPU seconds / wall / cores; low means CPU taken by others):")
    for name, h in host.items():
        log(
            f"  {name:<34} wall {h['wall_seconds']:7.1f} s  cpu_share {h['cpu_share']:.2f}  load(1 min) {h['load_1min_before']:.2f} -> {h['load_1min_after']:.2f}"
        )


def run(args: argparse.Namespace, bench: Bench) -> dict:
    """Every step in order, then the checks: the JSON results."""
    import keras
    import tensorflow as tf

    from core.screening import DEFAULT_SCREEN_SHARE

    screen_models = [*SCREEN_MODELS, *args.untrained]
    out: dict = {"models": list(args.models), "screen_models": screen_models, "size": SIZE}
    out["environment"] = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    log(f"Dataset: {bench.path}")
    log(
        f"Models:  {', '.join(args.models)}   (Python {platform.python_version()}, TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs)"
    )

    log("\n[1/5] cold sweeps (auto, tf), then one cold sweep per model ...")
    out["cold_sweeps"] = step_cold_sweeps(bench, args.models, per_model_sweeps=not args.skip_seeds)
    log(f"\n[2/5] seed-004 method: image_dataset_from_directory, /255, fit({SEED_EPOCHS} epochs) ...")
    if args.skip_seeds:
        log("skipped (--skip-seeds)")
    else:
        out["seeds"] = step_seeds(bench, args.models)
    log("\n[3/5] bare forward passes (TensorFlow, ONNX Runtime), then the warm-host sweep ...")
    out["forward"] = step_forward(bench, args.models)
    log(f"\n[4/5] screening: {len(screen_models)} models in full, then screen={DEFAULT_SCREEN_SHARE} ...")
    if args.skip_screening:
        log("skipped (--skip-screening)")
    else:
        out["screening"] = step_screening(bench, screen_models)
    log("\n[5/5] warm repeat of the cold auto sweep ...")
    out["repeat"] = bench.sweep("warm repeat auto", bench.home("auto"), models=args.models, runtime="auto")

    out["host_load"] = bench.host
    log()
    print_host_load(bench.host)
    log("\nTargets:")
    out["checks"], out["figures"] = evaluate(out)
    out["all_pass"] = all(c["pass"] for c in out["checks"].values())
    return out


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    temp = Path(tempfile.mkdtemp(prefix="transferbench-bench-"))
    setup_environment(args.shared, temp)
    sys.path.insert(0, str(REPO))
    try:
        from core.archives import sample_dataset

        path = sample_dataset("cats_and_dogs")  # extracted once into the data home, untimed
        out = run(args, Bench(path, temp, args.keep_temp))
        out["total_seconds"] = round(time.perf_counter() - started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        log(
            f"\n{'ALL PASS' if out['all_pass'] else 'SOME FAIL'}; results written to {args.out}; total {out['total_seconds']:.0f} s"
        )
        return 0 if out["all_pass"] else 1
    finally:
        if not args.keep_temp:
            shutil.rmtree(temp, ignore_errors=True)
        else:
            log(f"temporary folder kept: {temp}")


if __name__ == "__main__":
    sys.exit(main())
