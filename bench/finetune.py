"""Fine-tuning measured through the product: a sweep, then `core.finetune.fine_tune` on its model.

    python bench/finetune.py fashion [--train 6000 --test 1000] [--epochs 6] [--unfreeze K] [--learning-rate 1e-4]
    python bench/finetune.py cats_and_dogs

`fashion` writes a Fashion-MNIST subset with `bench/fashion_mnist.py` (needs Debian's
`dataset-fashion-mnist`) into a temporary folder; a third of `--train` is held out, half of it for
validation (with the defaults: 5,000 training and 1,000 validation images) and `--test` images are the test
set. `cats_and_dogs` is the TF tutorial's sample dataset from the Keras cache. Prints the frozen and
fine-tuned test accuracy with 95% intervals, the lift with its interval and McNemar p, and the seconds per
epoch on this host. Uses a temporary TRANSFERBENCH_HOME; KERAS_HOME as set (point it at a copy of the
shared cache).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HOME = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
os.environ["TRANSFERBENCH_HOME"] = str(HOME / "home")

from core.archives import sample_dataset  # noqa: E402
from core.finetune import FineTuneSettings, fine_tune  # noqa: E402
from core.store import Store  # noqa: E402
from core.sweep import SweepSettings, run_sweep  # noqa: E402

MODEL = "MobileNet:0.25@128"


def fashion(train: int, test: int) -> Path:
    out = HOME / "fashion"
    script = Path(__file__).with_name("fashion_mnist.py")
    subprocess.run([sys.executable, str(script), str(out), "--train", str(train), "--test", str(test)], check=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", choices=("fashion", "cats_and_dogs"))
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=FineTuneSettings.epochs)
    parser.add_argument("--unfreeze", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=FineTuneSettings.learning_rate)
    args = parser.parse_args()

    source = fashion(args.train, args.test) if args.data == "fashion" else sample_dataset("cats_and_dogs")
    holdout = 1 / 3 if args.data == "fashion" else 0.3
    started = time.perf_counter()
    sweep = run_sweep(source, SweepSettings(models=(MODEL,), holdout=holdout))
    frozen = sweep.results[0]
    print(f"sweep: {time.perf_counter() - started:.1f} s; {frozen.model} {frozen.score_text()}", flush=True)
    print(f"images: {dict(sweep.report.counts)}", flush=True)

    settings = FineTuneSettings(epochs=args.epochs, unfreeze=args.unfreeze, learning_rate=args.learning_rate)
    started = time.perf_counter()

    tuned = fine_tune(sweep.run_id, MODEL, settings)
    tuning = tuned.fine_tuning
    for row in Store().history(sweep.run_id, tuned.model):
        metrics = {key: value for key, value in row.items() if key not in ("model", "epoch")}
        print(f"  epoch {row['epoch']}: " + ", ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
    low, high = tuning.lift_ci
    print(f"settings: {settings}")
    print(f"frozen:     {frozen.score_text()} on {frozen.test_images} test images")
    print(f"fine-tuned: {tuned.score_text()} (best epoch {tuned.best_epoch} of {tuned.epochs_run} run)")
    print(
        f"lift: {tuning.lift * 100:+.1f} points (95% CI {low * 100:+.1f} to {high * 100:+.1f}), McNemar p={tuning.p_value:.3g}; "
        f"{tuning.seconds_per_epoch:.1f} s per epoch on {len(sweep.report.classes)} classes, "
        f"{time.perf_counter() - started:.0f} s in all; kept frozen: {tuning.kept_frozen}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
