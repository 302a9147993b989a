"""`python -m core finetune`: fine-tune finished models of a run, with the sweep's progress and results.

python -m core finetune --run RUN --model MODEL [--model MODEL2 ...] [--epochs 8] [--unfreeze K]
                        [--learning-rate 3e-4] [--augment [--no-flip]]
"""

from __future__ import annotations

import argparse
import sys

from core.console import ProgressView, print_results
from core.finetune import AUGMENT, MAX_MODELS_PER_JOB, FineTuneSettings

DEFAULTS = FineTuneSettings()


def add_parser(commands: argparse._SubParsersAction) -> None:
    finetune = commands.add_parser(
        "finetune",
        help="fine-tune finished models of a run (base unfrozen, BatchNormalization kept frozen)",
        description="Fine-tune finished models of a run: the top layers of the base train with the head, at a "
        "low learning rate (cosine decay); the epoch is chosen on the validation images (the "
        "frozen model wins when no epoch beats it) and scored on the run's test images.",
    )
    finetune.add_argument("--run", type=int, required=True, help="the run id (see the app's Compare page)")
    finetune.add_argument("--model", action="append", required=True, help="a model of the run (repeat for up to 3)")
    finetune.add_argument(
        "--epochs", type=int, default=DEFAULTS.epochs, help=f"at most this many epochs (default {DEFAULTS.epochs})"
    )
    finetune.add_argument(
        "--unfreeze", type=int, default=None, help="train only the base's top K convolution layers (default: all)"
    )
    finetune.add_argument(
        "--learning-rate",
        type=float,
        default=DEFAULTS.learning_rate,
        help=f"Adam's starting learning rate, decayed to 0 (default {DEFAULTS.learning_rate:g})",
    )
    finetune.add_argument(
        "--augment", action="store_true", help="augment the training images: flips, small rotations, zoom, contrast"
    )
    finetune.add_argument(
        "--no-flip", action="store_true", help="with --augment, no flips (where a flip changes the class: digits, text)"
    )


def run(args: argparse.Namespace) -> int:
    from core.finetune import fine_tune
    from core.records import Failed
    from core.store import Store

    view = ProgressView(sys.stderr)
    store = Store()
    if len(args.model) > MAX_MODELS_PER_JOB:
        view.error(f"fine-tune 1 to {MAX_MODELS_PER_JOB} models at a time. Received: {len(args.model)} models")
        return 2
    try:
        augment = {**AUGMENT, "flip": not args.no_flip} if args.augment else {}
        settings = FineTuneSettings(
            epochs=args.epochs, unfreeze=args.unfreeze, learning_rate=args.learning_rate, **augment
        )
    except ValueError as error:
        view.error(str(error))
        return 2
    results = []
    for model in args.model:
        try:
            result = fine_tune(args.run, model, settings, store=store, on_progress=view)
        except ValueError as error:
            view.error(str(error))
            return 2
        except Exception as error:  # one model's failure is reported, the others still run
            result = Failed(f"{model} fine-tuned", f"{type(error).__name__}: {error}")
        view.close()
        if result is None:
            print("Cancelled: nothing kept.")
            return 1
        results.append(result)
        if tuning := getattr(result, "fine_tuning", None):
            low, high = tuning.lift_ci
            kept = " (no epoch beat the frozen model on validation: its weights are kept)" if tuning.kept_frozen else ""
            print(
                f"{model}: {tuning.frozen_accuracy:.1%} frozen -> {result.test_accuracy:.1%} fine-tuned, "
                f"lift {tuning.lift * 100:+.1f} points (95% CI {low * 100:+.1f} to {high * 100:+.1f}, McNemar "
                f"p={tuning.p_value:.2g}); {tuning.seconds_per_epoch:.1f} s per epoch{kept}"
            )
    print_results(results)
    return 0 if not any(isinstance(r, Failed) for r in results) else 1
