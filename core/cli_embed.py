"""`python -m core embed` and `python -m core neighbours`: a dataset's embeddings, exported or searched.

python -m core embed DATA --model MODEL [--out FILE.parquet|FILE.npy] [--holdout 0.3] [--seed 1337]
python -m core neighbours DATA --model MODEL --image IMG [-k 10] [--holdout 0.3] [--seed 1337]

`embed` without `--out` only computes and caches the features (the app's background job runs it so, with
`--job FILE` for its progress). The vectors are the cached features of the sweep when present.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import psutil

from core import config, paths, scheduler
from core.progress import Stage

JOB_WRITE_SECONDS = 0.5  # a background job's progress file is rewritten at most this often
_STARTING = 30  # seconds a job without a pid yet counts as starting


def add_parser(commands: argparse._SubParsersAction) -> None:
    embed = commands.add_parser(
        "embed",
        help="compute a model's embeddings of every image and export them (Parquet or NumPy)",
        description="Embed every usable image with a model's frozen base (the cached features when a sweep "
        "computed them) and write file, split, class and vector per image.",
    )
    _dataset_arguments(embed)
    embed.add_argument(
        "--out", type=Path, help="FILE.parquet (file, split, class, vector) or FILE.npy (with FILE.csv naming rows)"
    )
    embed.add_argument("--job", type=Path, help=argparse.SUPPRESS)  # the app's progress file
    neighbours = commands.add_parser(
        "neighbours",
        help="the dataset images most similar to an image (cosine on the embeddings)",
        description="Embed IMG with the model and print the k most similar dataset images with their cosine similarity.",
    )
    _dataset_arguments(neighbours)
    neighbours.add_argument("--image", type=Path, required=True, help="the query image")
    neighbours.add_argument("-k", type=int, default=10, help="how many neighbours (default 10)")


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="dataset folder (train/ + validation/ + test/, or one folder per class) or .zip")
    parser.add_argument("--model", required=True, help="a model id, e.g. MobileNetV2:0.35 or MobileNet:0.25@160")
    parser.add_argument("--holdout", type=float, default=config.DEFAULT_HOLDOUT, help="as for `sweep`")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="as for `sweep`")


def run(args: argparse.Namespace) -> int:
    from core.console import ProgressView
    from core.errors import DatasetError, ImageProblem, WeightsUnavailable

    view = ProgressView(sys.stderr)
    job = JobFile(args.job) if getattr(args, "job", None) else None
    if args.command == "embed" and args.out and args.out.suffix.lower() not in (".parquet", ".npy"):
        view.error(f"--out must end in .parquet or .npy. Received: --out {args.out}")
        return 2
    if args.command == "neighbours" and args.k < 1:
        view.error(f"-k must be at least 1. Received: -k {args.k}")
        return 2
    try:
        embeddings = _embeddings(args, view, job)
        return _export(embeddings, args.out) if args.command == "embed" else _neighbours(embeddings, args)
    except (ValueError, DatasetError, ImageProblem, WeightsUnavailable, OSError) as error:
        view.error(str(getattr(error, "reason", error)))
        if job:
            job.write(error=str(error))
        return 2


def _embeddings(args: argparse.Namespace, view, job: JobFile | None):
    from core.data import load_dataset
    from core.embeddings import load_embeddings
    from core.progress import Progress

    dataset = load_dataset(args.data, holdout=args.holdout, seed=args.seed)
    progress = Progress(run_id=0, models=[args.model], model=args.model)

    def on_progress(stage: Stage, done: int, total: int) -> None:
        progress.stage, progress.done, progress.total = stage, done, total
        view(progress)
        if job:
            job.write(stage=str(stage), processed=done, total=total)

    embeddings = load_embeddings(dataset, args.model, on_progress)
    view.close()
    if job:
        job.write(stage=str(Stage.DONE), processed=len(embeddings), total=len(embeddings), force=True)
    return embeddings


def _export(embeddings, out: Path | None) -> int:
    from core.embeddings import write_export

    print(f"{len(embeddings):,} images x {embeddings.dim} dimensions by {embeddings.model} (from {embeddings.source})")
    if out:
        for written in write_export(embeddings, out):
            print(f"Written: {written} ({written.stat().st_size / 1024**2:.1f} MB)")
    return 0


def _neighbours(embeddings, args: argparse.Namespace) -> int:
    from core.embeddings import embed_files, neighbours_table

    query = embed_files(args.model, [args.image])[0]
    found = neighbours_table(embeddings, query, args.k).drop(columns="index")
    print(f"The {len(found)} images most similar to {args.image} by {embeddings.model} (cosine similarity):")
    print(found.to_string(index=False, formatters={"similarity": "{:.4f}".format}))
    return 0


class JobFile:
    """The progress of a background `embed` as JSON (pid, stage, processed, total, error), written atomically."""

    def __init__(self, path: Path):
        self.path, self.last = path, 0.0

    def write(self, force: bool = False, **fields) -> None:
        if not force and "error" not in fields and time.monotonic() - self.last < JOB_WRITE_SECONDS:
            return
        self.last = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        me = {"pid": os.getpid(), "started": psutil.Process().create_time(), "time": time.time()}
        partial.write_text(json.dumps({**me, **fields}))
        partial.replace(self.path)


def job_path(fingerprint: str, model: str) -> Path:
    """The progress file of a background embedding of `model` on the dataset with `fingerprint`."""
    return paths.dataset_cache(fingerprint) / "embeddings" / f"{paths.file_stem(model)}.json"


def start_job(source: str, model: str, fingerprint: str, holdout: float, seed: int) -> Path:
    """Compute `model`'s embeddings of the dataset in a detached `python -m core embed`; its progress file."""
    job = job_path(fingerprint, model)
    job.parent.mkdir(parents=True, exist_ok=True)
    JobFile(job).write(pid=None, stage=str(Stage.LOADING), processed=0, total=0, force=True)  # the child writes its pid
    command = ["embed", str(source), "--model", model, "--job", str(job)]
    scheduler.spawn([*command, "--holdout", str(holdout), "--seed", str(seed)], job.with_suffix(".log"))
    return job


def job_status(fingerprint: str, model: str) -> dict | None:
    """A background embedding's last progress ({pid, time, stage, processed, total, error, active}), or None when
    none ran. It is active until it is done or failed, while its process lives (or is still starting)."""
    job = job_path(fingerprint, model)
    with contextlib.suppress(OSError, ValueError, KeyError):
        status = json.loads(job.read_text())
        pid, finished = status["pid"], status["stage"] == str(Stage.DONE) or "error" in status
        alive = scheduler.process_alive(pid, status.get("started")) if pid else time.time() - status["time"] < _STARTING
        return {**status, "active": not finished and alive}
    return None


def job_log_tail(fingerprint: str, model: str) -> str:
    """The last line of a background embedding's log (why it stopped, when it did)."""
    log = job_path(fingerprint, model).with_suffix(".log")
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1] if lines else ""
