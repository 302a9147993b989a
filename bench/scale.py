"""Scale: one sweep of a pretrained model over Fashion-MNIST at several sizes, with wall time, peak memory and disk.

    python bench/scale.py [--sizes 7000,21000,70000] [--model MobileNet:0.25] [--image-size 128]
                          [--work FOLDER] [--budget-gb 4] [--memory-budget-mb 64] [--out bench/results/scale.json]

For each size N, `bench/fashion_mnist.py` writes a seeded, stratified N images as PNG class folders
(6/7 train, 1/7 test; 70,000 is all of Fashion-MNIST), and `python -m core sweep` runs on them in a fresh
data folder (`TRANSFERBENCH_HOME`) with the disk budget `--budget-gb`. Meanwhile, every 0.2 s, the
resident memory of the sweep's process and all its children is summed, and every second the data folder's
size is measured: their peaks are reported with the wall time and the test accuracy, then the ratios
across sizes (time per image, and peak RSS, against the smallest size) and the marginal time per image
between sizes (what each added image costs, without the fixed cost of building, exporting and timing the model).
The head trains from memory when the features (as float32) fit `--memory-budget-mb`
(`TRANSFERBENCH_MEMORY_BUDGET_MB`), else from the features file on disk: the default, 64 MB, sends 70,000
images (72 MB of MobileNet:0.25 features) to disk and keeps the smaller sizes in memory. Other work on the
host takes CPU from the sweep: `cpu_share` is the sweep's CPU seconds / wall seconds / cores, `host_busy` the
share of all cores busy meanwhile (the sweep's and everything else's).

Keras' weights come from an offline cache: `KERAS_HOME` when set, else a temporary one with symlinks to
`../shared/keras/models/*` beside this checkout (as the tests do).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import storage  # noqa: E402  (storage.size: bytes under a folder, as the Storage page counts them)

SHARED_MODELS = REPO.parent / "shared" / "keras" / "models"
FULL = (60_000, 10_000)  # Fashion-MNIST's train and test images


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="7000,21000,70000", help="comma-separated image counts (at most 70,000)")
    parser.add_argument("--model", default="MobileNet:0.25")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--work", type=Path, help="folder for the datasets and data folders (default: a temporary one)")
    parser.add_argument("--budget-gb", type=float, default=4.0, help="the data folder's disk budget")
    parser.add_argument("--memory-budget-mb", type=float, default=64.0, help="features a head trains on in memory")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    return parser.parse_args()


def keras_home(work: Path) -> str:
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    models = work / "keras" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for item in SHARED_MODELS.iterdir():
        if not (models / item.name).exists():
            (models / item.name).symlink_to(item)
    return str(work / "keras")


def write_dataset(out: Path, images: int) -> None:
    if (out / "train").exists():
        return
    test = round(images * FULL[1] / sum(FULL))
    command = [sys.executable, str(REPO / "bench" / "fashion_mnist.py"), str(out), "--train", str(images - test)]
    subprocess.run([*command, "--test", str(test)], check=True, stdout=subprocess.DEVNULL)


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of `process` and all its children, in bytes."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def measure(data: Path, home: Path, args: argparse.Namespace, environment: dict[str, str]) -> dict:
    """Run one sweep; its wall time, peak RSS (process tree), peak disk of the data folder, accuracy."""
    out = home.parent / f"{home.name}-results.json"
    command = [sys.executable, "-m", "core", "sweep", str(data), "--models", args.model]
    command += ["--image-size", str(args.image_size), "--out", str(out)]
    peaks = {"rss": 0, "disk": 0}
    cpu_seconds: dict[int, float] = {}  # per process of the tree: its CPU time when last seen
    host_before = psutil.cpu_times()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched = psutil.Process(process.pid)
    done = threading.Event()

    def watch_disk() -> None:
        while not done.wait(1.0):
            peaks["disk"] = max(peaks["disk"], storage.size(home))

    watcher = threading.Thread(target=watch_disk, daemon=True)
    watcher.start()
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            peaks["rss"] = max(peaks["rss"], tree_rss(watched))
            for member in [watched, *watched.children(recursive=True)]:
                times = member.cpu_times()
                cpu_seconds[member.pid] = times.user + times.system
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    host_after = psutil.cpu_times()
    host_total = sum(host_after) - sum(host_before)
    done.set()
    watcher.join()
    peaks["disk"] = max(peaks["disk"], storage.size(home))
    stderr = process.stderr.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"the sweep failed (exit {process.returncode}): {stderr[-2000:]}")
    result = json.loads(out.read_text())["results"][0]
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peaks["rss"] / 1024**2),
        "peak_disk_mb": round(peaks["disk"] / 1024**2, 1),
        "end_disk_mb": round(storage.size(home) / 1024**2, 1),
        "test_accuracy": result["test_accuracy"],
        "test_images": result["test_images"],
        "runtime": result["runtime"],
        "device": result.get("device"),
        "feature_seconds": result["feature_seconds"],
        "head_seconds": result["head_seconds"],
        "feature_dim": result["feature_dim"],
        "cpu_share": round(sum(cpu_seconds.values()) / seconds / (os.cpu_count() or 1), 2),
        "host_busy": round(1 - (host_after.idle - host_before.idle) / host_total, 2) if host_total else None,
    }


def main() -> int:
    args = parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if not all(1000 <= size <= sum(FULL) for size in sizes):
        sys.exit(f"--sizes must be 1,000 to {sum(FULL):,} images each. Received: {args.sizes}")
    work = args.work or Path(tempfile.mkdtemp(prefix="transferbench-scale-"))
    environment = {
        **os.environ,
        "KERAS_HOME": keras_home(work),
        "TRANSFERBENCH_DISK_BUDGET_GB": str(args.budget_gb),
        "TRANSFERBENCH_MEMORY_BUDGET_MB": str(args.memory_budget_mb),
        "PYTHONPATH": str(REPO),
    }
    rows = {}
    for size in sizes:
        data, home = work / f"fashion-{size}", work / f"home-{size}"
        write_dataset(data, size)
        shutil.rmtree(home, ignore_errors=True)
        rows[size] = measure(data, home, args, {**environment, "TRANSFERBENCH_HOME": str(home)})
        on_disk = size * rows[size]["feature_dim"] * 4 > args.memory_budget_mb * 1024**2  # float32, as the sweep counts
        rows[size]["head_from"] = "disk" if on_disk else "memory"
        print(f"{size:>6,} images: {rows[size]}", flush=True)
    first = sizes[0]
    summary = {
        "model": args.model,
        "image_size": args.image_size,
        "budget_gb": args.budget_gb,
        "memory_budget_mb": args.memory_budget_mb,
        "cpus": os.cpu_count(),
        "sizes": rows,
        "time_per_image_ratio": {s: round(rows[s]["seconds"] / s / (rows[first]["seconds"] / first), 2) for s in sizes},
        "peak_rss_ratio": {s: round(rows[s]["peak_rss_mb"] / rows[first]["peak_rss_mb"], 2) for s in sizes},
    }
    summary["marginal_ms_per_image"] = {
        b: round((rows[b]["seconds"] - rows[a]["seconds"]) / (b - a) * 1000, 2) for a, b in itertools.pairwise(sizes)
    }
    header = ("images", "wall s", "ms/image", "features s", "head s", "head from", "peak RSS MB", "peak disk MB")
    print("\n" + " ".join(f"{name:>12}" for name in (*header, "accuracy", "cpu share", "host busy")))
    for size, row in rows.items():
        cells = (f"{size:,}", row["seconds"], round(row["seconds"] / size * 1000, 2), row["feature_seconds"])
        cells += (row["head_seconds"], row["head_from"], f"{row['peak_rss_mb']:,}", row["peak_disk_mb"])
        cells += (f"{row['test_accuracy']:.1%}", row["cpu_share"], row["host_busy"])
        print(" ".join(f"{cell:>12}" for cell in cells))
    print(f"marginal ms per added image: {summary['marginal_ms_per_image']}")
    print(f"time per image vs {first:,}: {summary['time_per_image_ratio']}")
    print(f"peak RSS vs {first:,}: {summary['peak_rss_ratio']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
