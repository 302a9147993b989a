"""Command line: the same work as the app, headless.

python -m core models
python -m core sweep DATA --models MobileNetV2:0.35,MobileNet:0.25 [--image-size 160] [--epochs 20]
                          [--weights imagenet|none] [--runtime auto|tf|onnx] [--screen [SHARE]]
                          [--screen-keep 2] [--holdout 0.3] [--seed 1337] [--out results.json]
                          [--executor local|ray] [--address HOST:PORT]
python -m core export --run RUN --model MODEL --format FORMAT[,FORMAT...]|all [--out FOLDER]  (core/cli_export.py)
python -m core finetune --run RUN --model MODEL [--epochs 8] [--unfreeze K] [--augment]  (core/cli_finetune.py)
python -m core storage [--delete ID ...] [--budget GB] [--evict]  (core/cli_storage.py)

A sweep prints the data report (as soon as the data is loaded), then the results and the recommendation,
on stdout; progress goes to stderr: a bar redrawn in place on a terminal, plain lines otherwise (both drawn
by `core/console.py`).
`python -m core worker RUN` (the app's background worker, `core/worker.py`) is not listed in `--help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from core import cli_export, cli_finetune, cli_storage, config
from core.console import ProgressView, print_recommendation, print_report, print_results
from core.progress import Progress, Stage
from core.records import ModelResult
from core.report import DataReport
from core.runtimes import RUNTIMES
from core.screening import DEFAULT_SCREEN_KEEP, DEFAULT_SCREEN_SHARE
from core.zoo import WEIGHTS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["worker"]:  # the app's background worker: kept out of --help
        return _worker(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "models":
        return _models()
    if args.command == "export":
        return cli_export.run(args)
    if args.command == "finetune":
        return cli_finetune.run(args)
    if args.command == "storage":
        return cli_storage.run(args)
    if args.command in ("embed", "neighbours"):
        from core import cli_embed

        return cli_embed.run(args)
    return _sweep(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Transfer Bench: compare Keras models on your images."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("models", help="list the model zoo with weights cache status")
    cli_export.add_parser(commands)
    cli_finetune.add_parser(commands)
    cli_storage.add_parser(commands)
    from core import cli_embed

    cli_embed.add_parser(commands)

    sweep = commands.add_parser(
        "sweep",
        help="train a head on each model's frozen features and compare them",
        description="Print the data report, train a head on each model's frozen features, compare and recommend.",
    )
    sweep.add_argument("data", help="dataset folder (train/ + validation/ + test/, or one folder per class) or .zip")
    sweep.add_argument("--models", required=True, help="comma-separated ids, e.g. MobileNetV2:0.35,ResNet50")
    sweep.add_argument(
        "--image-size", type=_image_size, help="input size for every model in px (default: each model's own)"
    )
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
        "--holdout",
        type=float,
        default=config.DEFAULT_HOLDOUT,
        help="share of plain class folders held out from training: half validation, half test",
    )
    sweep.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    sweep.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: models in turn in this process; ray: each model as a Ray task (pip install -r requirements-ray.txt)",
    )
    sweep.add_argument(
        "--address",
        help="with --executor ray: a Ray cluster's address, e.g. 10.0.0.5:6379 (default: Ray on this machine)",
    )
    sweep.add_argument(
        "--out", type=Path, help="write the data report, results and recommendation as JSON (folders are created)"
    )
    return parser


def _image_size(text: str) -> int:
    """`--image-size`: whole pixels within the bounds of this mode (`config.IMAGE_SIZE_RANGE`)."""
    low, high = config.limit(config.IMAGE_SIZE_RANGE)
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"expected whole pixels from {low} to {high}. Received: {text}")
    return int(text)


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m core worker", description="Run a run the app has queued.")
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    from core.worker import run_worker

    return run_worker(args.run_id)


def _models() -> int:
    from core.zoo import SUMMARY_COLUMNS, zoo

    table = pd.DataFrame([spec.describe() for spec in zoo().values()])
    table["params"] = (table["params"] / 1e6).round(2)
    table["weights_cached"] = table["weights_cached"].map({True: "cached", False: "download"})
    print(table[list(SUMMARY_COLUMNS)].rename(columns={"params": "params_M"}).to_string(index=False))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    view = ProgressView(sys.stderr)
    if args.out and (problem := _prepare_out(args.out)):
        view.error(problem)
        return 2
    from core import scheduler
    from core.errors import DatasetError
    from core.store import Store, StoreError
    from core.sweep import SweepSettings, run_sweep

    store = Store()
    shown: list[DataReport] = []

    def on_progress(progress: Progress) -> None:
        if not shown and progress.stage != Stage.LOADING:  # the data is loaded: its report is stored
            run = store.run(progress.run_id)
            if run and run.report:
                shown.append(run.report)
                view.clear()
                print_report(run.report)
                sys.stdout.flush()  # before the next progress line, where both go to one log
        view(progress)

    try:
        settings = SweepSettings(
            models=[m for m in args.models.split(",") if m.strip()],
            image_size=args.image_size,
            epochs=args.epochs,
            weights=args.weights,
            holdout=args.holdout,
            seed=args.seed,
            runtime=args.runtime,
            screen=args.screen,
            screen_keep=args.screen_keep,
            executor=args.executor,
            address=args.address,
        )
        outcome = run_sweep(args.data, settings, store=store, on_progress=on_progress)
    except (ValueError, DatasetError, StoreError, OSError) as error:
        view.error(str(error))
        return 2
    finally:
        scheduler.dispatch(store)  # runs the app queued meanwhile start now
    view.close()
    if not shown:
        print_report(outcome.report)
    print_results(outcome.results)
    if outcome.recommendation:
        print_recommendation(outcome.recommendation, outcome.results)
    if args.out:
        try:
            args.out.write_text(json.dumps(outcome.to_dict(), indent=2))
        except OSError as error:
            view.error(f"cannot write {args.out}: {error.strerror or error}")
            return 2
        print(f"Report and results written to {args.out}")
    return 0 if any(isinstance(r, ModelResult) for r in outcome.results) else 1


def _prepare_out(path: Path) -> str | None:
    """Create the folder `path` goes in, before the sweep; what stands in the way, if anything."""
    if path.is_dir():
        return f"--out {path} is a folder: give a file name, e.g. {path / 'results.json'}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"--out {path}: cannot create its folder {path.parent}: {error.strerror or error}"
    existed = path.exists()
    try:
        with path.open("a"):  # the real test of writability (permissions, read-only disks), before the sweep
            pass
    except OSError as error:
        return f"--out {path}: not writable: {error.strerror or error}"
    if not existed:
        path.unlink()
    return None
