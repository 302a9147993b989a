"""Scale: one sweep of a pretrained model over Fashion-MNIST at several sizes, with wall time, peak memory and disk.

    python bench/scale.py [--sizes 7000,21000,70000] [--model MobileNet:0.25] [--image-size 128]
                          [--work FOLDER] [--budget-gb 4] [--out bench/results/scale.json]

For each size N, `bench/fashion_mnist.py` writes a seeded, stratified N images as PNG class folders
(6/7 train, 1/7 test; 70,000 is all of Fashion-MNIST), and `python -m core sweep` runs on them in a fresh
data folder (`TRANSFERBENCH_HOME`) with the disk budget `--budget-gb`. Meanwhile, every 0.2 s, the
resident memory of the sweep's process and all its children is summed, and every second the data folder's
size is measured: their peaks are reported with the wall time and the test accuracy, then the ratios
across sizes (time per image, and peak RSS, against the smallest size).

Keras' weights come from an offline cache: `KERAS_HOME` when set, else a temporary one with symlinks to
`../shared/keras/models/*` beside this checkout (as the tests do).
"""

from __future__ import annotations

import argparse
import contextlib
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
SHARED_MODELS = REPO.parent / "shared" / "keras" / "models"
FULL = (60_000, 10_000)  # Fashion-MNIST's train and test images


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="7000,21000,70000", help="comma-separated image counts (at most 70,000)")
    parser.add_argument("--model", default="MobileNet:0.25")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--work", type=Path, help="folder for the datasets and data folders (default: a temporary one)")
    parser.add_argument("--budget-gb", type=float, default=4.0, help="the data folder's disk budget")
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


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


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
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched = psutil.Process(process.pid)
    done = threading.Event()

    def watch_disk() -> None:
        while not done.wait(1.0):
            peaks["disk"] = max(peaks["disk"], folder_bytes(home))

    watcher = threading.Thread(target=watch_disk, daemon=True)
    watcher.start()
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            peaks["rss"] = max(peaks["rss"], tree_rss(watched))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    peaks["disk"] = max(peaks["disk"], folder_bytes(home))
    stderr = process.stderr.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"the sweep failed (exit {process.returncode}): {stderr[-2000:]}")
    result = json.loads(out.read_text())["results"][0]
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peaks["rss"] / 1024**2),
        "peak_disk_mb": round(peaks["disk"] / 1024**2, 1),
        "end_disk_mb": round(folder_bytes(home) / 1024**2, 1),
        "test_accuracy": result["test_accuracy"],
        "test_images": result["test_images"],
        "runtime": result["runtime"],
        "device": result.get("device"),
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
        "PYTHONPATH": str(REPO),
    }
    rows = {}
    for size in sizes:
        data, home = work / f"fashion-{size}", work / f"home-{size}"
        write_dataset(data, size)
        shutil.rmtree(home, ignore_errors=True)
        rows[size] = measure(data, home, args, {**environment, "TRANSFERBENCH_HOME": str(home)})
        print(f"{size:>6,} images: {rows[size]}", flush=True)
    first = sizes[0]
    summary = {
        "model": args.model,
        "image_size": args.image_size,
        "budget_gb": args.budget_gb,
        "cpus": os.cpu_count(),
        "sizes": rows,
        "time_per_image_ratio": {s: round(rows[s]["seconds"] / s / (rows[first]["seconds"] / first), 2) for s in sizes},
        "peak_rss_ratio": {s: round(rows[s]["peak_rss_mb"] / rows[first]["peak_rss_mb"], 2) for s in sizes},
    }
    print(f"\n{'images':>7} {'wall s':>7} {'ms/image':>8} {'peak RSS MB':>11} {'peak disk MB':>12} {'accuracy':>8}")
    for size, row in rows.items():
        print(
            f"{size:>7,} {row['seconds']:>7.1f} {row['seconds'] / size * 1000:>8.2f} {row['peak_rss_mb']:>11,} "
            f"{row['peak_disk_mb']:>12,.1f} {row['test_accuracy']:>8.1%}"
        )
    print(f"time per image vs {first:,}: {summary['time_per_image_ratio']}")
    print(f"peak RSS vs {first:,}: {summary['peak_rss_ratio']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
