"""Command line: the same work as the app, headless.

python -m core models
python -m core sweep DATA --models MobileNetV2:0.35,MobileNet:0.25 [--image-size 160] [--epochs 20]
                          [--weights imagenet|none] [--runtime auto|tf|onnx] [--screen [SHARE]]
                          [--screen-keep 2] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from core import config
from core.records import Failed, ModelResult, Progress, Recommendation, Result, ScreenedOut, latency_column
from core.runtimes import ENGINES, RUNTIMES
from core.screening import DEFAULT_SCREEN_KEEP, DEFAULT_SCREEN_SHARE
from core.zoo import WEIGHTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Transfer Bench: compare Keras models on your images."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("models", help="list the model zoo with weights cache status")

    sweep = commands.add_parser("sweep", help="train a head on each model's frozen features and compare them")
    sweep.add_argument("data", help="dataset folder (train/ + validation/, or one folder per class) or .zip")
    sweep.add_argument("--models", required=True, help="comma-separated ids, e.g. MobileNetV2:0.35,ResNet50")
    sweep.add_argument("--image-size", type=int, help="input size for every model (default: each model's own)")
    sweep.add_argument(
        "--epochs", type=int, default=config.DEFAULT_EPOCHS, help="maximum head epochs (early stopping on val loss)"
    )
    sweep.add_argument("--weights", choices=WEIGHTS, default="imagenet")
    sweep.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="inference runtime of the frozen base (auto: ONNX Runtime where it matches TensorFlow)",
    )
    sweep.add_argument(
        "--screen",
        type=float,
        nargs="?",
        const=DEFAULT_SCREEN_SHARE,
        metavar="SHARE",
        help=f"screen every model on this share of the images first (default {DEFAULT_SCREEN_SHARE}) "
        "and finish only the finalists",
    )
    sweep.add_argument(
        "--screen-keep",
        type=int,
        default=DEFAULT_SCREEN_KEEP,
        help="with --screen: keep at least this many of the most accurate models",
    )
    sweep.add_argument(
        "--val-split", type=float, default=config.DEFAULT_VAL_SPLIT, help="validation share for class-folder datasets"
    )
    sweep.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    sweep.add_argument("--out", type=Path, help="write results and the recommendation as JSON")

    worker = commands.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("run_id", type=int)

    args = parser.parse_args(argv)
    if args.command == "models":
        return _models()
    if args.command == "worker":
        from core.worker import run_worker

        return run_worker(args.run_id)
    return _sweep(args)


def _models() -> int:
    from core.zoo import SUMMARY_COLUMNS, zoo

    table = pd.DataFrame([spec.describe() for spec in zoo().values()])
    table["params"] = (table["params"] / 1e6).round(2)
    table["weights_cached"] = table["weights_cached"].map({True: "cached", False: "download"})
    print(table[list(SUMMARY_COLUMNS)].rename(columns={"params": "params_M"}).to_string(index=False))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from core.errors import DatasetError
    from core.sweep import SweepSettings, run_sweep

    try:
        settings = SweepSettings(
            models=[m for m in args.models.split(",") if m.strip()],
            image_size=args.image_size,
            epochs=args.epochs,
            weights=args.weights,
            val_split=args.val_split,
            seed=args.seed,
            runtime=args.runtime,
            screen=args.screen,
            screen_keep=args.screen_keep,
        )
        outcome = run_sweep(args.data, settings, on_progress=_progress_bar)
    except (ValueError, DatasetError) as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    _print_table(outcome.results)
    if outcome.recommendation:
        _print_recommendation(outcome.recommendation)
    if args.out:
        data = outcome.to_dict()
        args.out.write_text(json.dumps({key: data[key] for key in ("run_id", "results", "recommendation")}, indent=2))
        print(f"Results written to {args.out}")
    return 0 if any(isinstance(r, ModelResult) for r in outcome.results) else 1


def _progress_bar(progress: Progress) -> None:
    width = 30
    filled = int(progress.fraction * width)
    step = progress.step
    line = (
        f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.fraction:4.0%} "
        f"{progress.phase + ': ' if progress.phase else ''}model {min(progress.index + 1, len(progress.models))}/{len(progress.models)} "
        f"{progress.model or ''} {progress.stage} {step}"
    )
    print(f"{line:<110}", end="", file=sys.stderr, flush=True)


def _print_table(results: list[Result]) -> None:
    ok = [r for r in results if isinstance(r, ModelResult)]
    if ok:
        table = pd.DataFrame([r.row() for r in ok]).sort_values("val_accuracy", ascending=False)
        table["val_accuracy"] = (table["val_accuracy"] * 100).round(1)
        table["params_M"] = (table["params"] / 1e6).round(2)
        latencies = [latency_column(engine) for engine in ENGINES]
        table[latencies] = table[latencies].astype(float).round(2)
        columns = [
            "model",
            "val_accuracy",
            "params_M",
            "size_mb",
            "input_size",
            "runtime",
            *latencies,
            "feature_seconds",
            "head_seconds",
        ]
        print(table[columns].dropna(axis="columns", how="all").to_string(index=False))
    for note in (r for r in ok if r.runtime_note):
        print(f"{note.model} ran in TensorFlow: {note.runtime_note}")
    for out in (r for r in results if isinstance(r, ScreenedOut)):
        print(
            f"screened out {out.model}: {out.subset_accuracy:.1%} on a screening subset of {out.subset_images} images"
        )
    for failed in (r for r in results if isinstance(r, Failed)):
        print(f"FAILED {failed.model}: {failed.error}")


def _print_recommendation(recommendation: Recommendation) -> None:
    print(f"\nRecommendation: {recommendation.model}\n{recommendation.reason}")
    screening = recommendation.screening
    if screening is None:
        return
    for number, round_ in enumerate(screening.rounds, start=1):
        print(
            f"Screening round {number}: {len(round_.finalists)} of {len(round_.models)} kept on {round_.images} "
            f"images (margin {round_.margin:.1%}): {', '.join(round_.finalists)}"
        )
    if screening.winner_changed:
        print(
            f"Note: on the screening subset {screening.screened_winner} ranked first; on all images, {recommendation.model} wins."
        )
