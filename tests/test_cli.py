"""The command line, `python -m core`: run for real in a subprocess (PYTHONPATH=repo, cwd=tmp), and its printing
helpers in-process."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from images import class_folders, png_declaring_size, truncated_jpeg

from core.console import SKIPPED_SHOWN, ProgressView, print_report
from core.progress import Progress, Stage
from core.report import DataReport, DuplicateGroup, Skipped

REPO = Path(__file__).resolve().parents[1]
SMALL_MODEL = "MobileNet:0.25@32/none"  # untrained and tiny: a sweep of a few seconds
PROGRESS_LINE = re.compile(r"^\[\s*\d+%\] \S")
TENSORFLOW_NOISE = re.compile(r"oneDNN|absl|cpu_feature_guard|TF_ENABLE_ONEDNN_OPTS|^[IW]\d{4} ", re.MULTILINE)


def run_cli(*args: str, cwd: Path, home: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m core ARGS` as a user runs it: TensorFlow's log level is the CLI's own default."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if home is not None:
        env["TRANSFERBENCH_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def broken_dataset(root: Path) -> Path:
    """Two classes of 12 good images each, and four files that cannot be used."""
    class_folders(root, {"cats": 12, "dogs": 12})
    truncated_jpeg(root / "cats" / "truncated.jpg")
    png_declaring_size(root / "dogs" / "bomb.png", 40_000, 40_000)
    (root / "cats" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "readme.txt").write_text("not a picture\n")
    return root


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """One CLI sweep of the small untrained model on `broken_dataset`, `--out` into folders not there yet."""
    tmp = tmp_path_factory.mktemp("cli")
    data = broken_dataset(tmp / "data")
    out = tmp / "missing" / "folder" / "results.json"
    completed = run_cli(
        "sweep", str(data), "--models", SMALL_MODEL, "--epochs", "2", "--out", str(out), cwd=tmp, home=tmp / "home"
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed, json.loads(out.read_text())


def test_sweep_prints_each_skipped_file_with_its_reason_and_out_has_them(small_sweep):
    completed, written = small_sweep
    skipped = {item["path"]: item["reason"] for item in written["report"]["skipped"]}
    assert set(skipped) == {"cats/truncated.jpg", "cats/empty.jpg", "dogs/bomb.png", "dogs/readme.txt"}
    assert "truncated" in skipped["cats/truncated.jpg"]
    assert "0 bytes" in skipped["cats/empty.jpg"]
    assert "decompression bomb" in skipped["dogs/bomb.png"]
    assert "not an image" in skipped["dogs/readme.txt"]
    lines = completed.stdout.splitlines()
    assert "Skipped 4 file(s):" in lines
    for path, reason in skipped.items():
        assert f"  {path}: {reason}" in lines


def test_sweep_prints_the_report_before_the_results(small_sweep):
    completed, written = small_sweep
    report = written["report"]
    assert set(written) >= {"run_id", "results", "recommendation", "report"}
    assert written["recommendation"]["model"] == SMALL_MODEL
    stdout = completed.stdout
    header = next(line for line in stdout.splitlines() if line.split()[-1:] == ["total"])
    assert header.split() == [*report["counts"], "total"]  # a column per split, whatever splits there are
    for name in report["classes"]:
        counts = [report["counts"][split][name] for split in report["counts"]]
        assert f"{name} {' '.join(map(str, counts))} {sum(counts)}" in " ".join(stdout.split())
    assert "Imbalance: 1.00x" in stdout
    for warning in report["warnings"]:
        assert f"Warning: {warning}" in stdout
    assert stdout.index("Skipped 4 file(s):") < stdout.index(SMALL_MODEL) < stdout.index("Recommendation:")


def test_progress_off_a_terminal_is_plain_lines_and_tensorflow_says_nothing(small_sweep):
    completed, _ = small_sweep
    stderr = completed.stderr
    assert "\r" not in stderr
    assert not TENSORFLOW_NOISE.search(stderr), stderr[:2000]
    lines = stderr.splitlines()
    assert lines and all(PROGRESS_LINE.match(line) for line in lines), stderr[:2000]
    assert len(lines) == len(set(lines)) < 15  # a line per stage, not per batch
    assert f"model 1/1 {SMALL_MODEL}: {Stage.TRAINING} epoch 0/2" in stderr
    assert lines[-1] == f"[100%] {Stage.DONE}"


def test_help_hides_the_worker_command(tmp_path):
    for args in (["--help"], ["sweep", "--help"]):
        completed = run_cli(*args, cwd=tmp_path, timeout=120)
        assert completed.returncode == 0, completed.stderr
        assert "worker" not in completed.stdout and "SUPPRESS" not in completed.stdout
    assert "models" in completed.stdout or "--models" in completed.stdout


def test_worker_command_still_runs_for_the_app(tmp_path):
    completed = run_cli("worker", "424242", cwd=tmp_path, home=tmp_path / "home", timeout=120)
    assert completed.returncode == 2
    assert "no run 424242" in completed.stderr and "invalid choice" not in completed.stderr


def test_out_that_is_a_folder_fails_before_the_sweep(tmp_path):
    data = class_folders(tmp_path / "data", {"a": 6, "b": 6})
    completed = run_cli(
        "sweep", str(data), "--models", SMALL_MODEL, "--out", str(tmp_path), cwd=tmp_path, home=tmp_path / "home"
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"error: --out {tmp_path} is a folder")
    assert "Traceback" not in completed.stderr and not PROGRESS_LINE.search(completed.stderr)


def test_quiet_import_drops_tensorflow_notices_and_passes_errors_even_on_abort(tmp_path):
    """The stderr filter around TensorFlow's import, with the lines TensorFlow 2.21 writes, then a crash."""
    script = textwrap.dedent(
        """
        import os, sys
        from core.__main__ import _filtered_stderr
        with _filtered_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
            os.write(2, b"I0000 00:00:1795435014.842571   28026 port.cc:153] oneDNN custom operations are on.\\n")
            os.write(2, b"E0000 00:00:1795435014.9   28026 cuda.cc:10] a real error\\n")
            print("a Python warning", file=sys.stderr)
        print("after the import", file=sys.stderr)
        sys.stderr.flush()
        with _filtered_stderr():
            os.write(2, b"F0000 00:00:1795435015.0   28026 port.cc:99] Check failed: the last words\\n")
            os.abort()
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert completed.stderr.splitlines() == [
        "E0000 00:00:1795435014.9   28026 cuda.cc:10] a real error",
        "a Python warning",
        "after the import",
        "F0000 00:00:1795435015.0   28026 port.cc:99] Check failed: the last words",
    ]


def report_with(skipped: int, counts: dict[str, dict[str, int]]) -> DataReport:
    return DataReport(
        classes=["ants", "bees"],
        counts=counts,
        skipped=[
            Skipped(f"ants/bad_{index:02d}.jpg", "not an image (cannot identify image file)")
            for index in range(skipped)
        ],
        duplicates=[
            DuplicateGroup("d1", ("ants/a.jpg", "ants/b.jpg"), leakage=False),
            DuplicateGroup("d2", ("bees/c.jpg", "bees/d.jpg"), leakage=True),
        ],
        layout="train/ and validation/ folders",
        imbalance=2.0,
        warnings=["Classes are imbalanced."],
    )


def test_report_shows_the_first_skipped_files_and_counts_the_rest(capsys):
    print_report(report_with(25, {"train": {"ants": 20, "bees": 10}, "validation": {"ants": 5, "bees": 5}}))
    lines = capsys.readouterr().out.splitlines()
    listed = [line for line in lines if line.startswith("  ants/bad_")]
    assert len(listed) == SKIPPED_SHOWN and listed[0] == "  ants/bad_00.jpg: not an image (cannot identify image file)"
    assert "  ... and 5 more (--out lists them all)" in lines
    assert "Skipped 25 file(s):" in lines and "Imbalance: 2.00x (largest / smallest class in train)" in lines
    assert "  LEAKAGE bees/c.jpg, bees/d.jpg" in lines and "  ants/a.jpg, ants/b.jpg" in lines
    assert "Warning: Classes are imbalanced." in lines


@pytest.mark.parametrize("splits", [("train", "validation"), ("train", "validation", "test")])
def test_report_counts_a_column_per_split(capsys, splits):
    counts = {split: {"ants": 10 + index, "bees": 4} for index, split in enumerate(splits)}
    print_report(report_with(0, counts))
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["class"] == [] and "Skipped" not in rows
    assert rows["ants"] == [str(counts[split]["ants"]) for split in splits] + [
        str(sum(10 + i for i in range(len(splits))))
    ]
    assert rows["total"][-1] == str(sum(sum(c.values()) for c in counts.values()))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def epochs(view: ProgressView, count: int) -> Progress:
    progress = Progress(run_id=1, models=["A", "B"], index=1, model="B", stage=Stage.TRAINING, epochs=count)
    for epoch in range(count + 1):
        progress.epoch = epoch
        view(progress)
    return progress


def test_progress_in_a_log_is_a_line_per_stage():
    log = io.StringIO()
    view = ProgressView(log)
    progress = epochs(view, 20)
    progress.stage = Stage.TIMING
    view(progress)
    view.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and all(PROGRESS_LINE.match(line) for line in lines)
    assert lines[0].endswith(f"] model 2/2 B: {Stage.TRAINING} epoch 0/20 (0:00 elapsed)")
    assert lines[1].endswith(f"] model 2/2 B: {Stage.TIMING} (0:00 elapsed)")  # the time taken so far, too


def test_progress_on_a_terminal_is_one_bar_redrawn_in_place():
    screen = Terminal()
    view = ProgressView(screen)
    epochs(view, 3)
    view.clear()
    drawn = screen.getvalue()
    assert re.match(rf"\r\[[#.]{{30}}\] +\d+% model 2/2 B: {Stage.TRAINING} epoch 0/3", drawn)
    assert "\n" not in drawn and drawn.endswith("\r")


def test_cli_sweep_writes_json_and_isolates_a_model_without_weights(cats_and_dogs, tmp_path):
    out = tmp_path / "results.json"
    completed = run_cli(
        "sweep",
        str(cats_and_dogs),
        "--models",
        "MobileNet:0.5,MobileNet:0.25",
        "--epochs",
        "5",
        "--out",
        str(out),
        cwd=tmp_path,
        home=tmp_path / "home",
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    written = json.loads(out.read_text())
    results = {r["model"]: r for r in written["results"]}
    assert results["MobileNet:0.5"]["status"] == "failed"
    assert "ImageNet weights for MobileNet:0.5 are not in the Keras cache" in results["MobileNet:0.5"]["error"]
    assert "weights='none'" in results["MobileNet:0.5"]["error"]
    ok = results["MobileNet:0.25"]
    for key in (
        "model",
        "params",
        "size_mb",
        "input_size",
        "val_accuracy",
        "feature_seconds",
        "head_seconds",
        "latency_ms",
    ):
        assert key in ok
    assert written["recommendation"]["model"] == "MobileNet:0.25"
    assert written["report"]["classes"] == ["cats", "dogs"] and written["report"]["skipped"] == []
    assert "FAILED MobileNet:0.5" in completed.stdout and "Recommendation: MobileNet:0.25" in completed.stdout


def test_cli_models_lists_the_zoo_with_cache_status():
    completed = run_cli("models", cwd=REPO, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = {line.split()[0]: line for line in completed.stdout.splitlines()[1:]}
    assert len(lines) == 52
    assert lines["MobileNet:0.75"].endswith("cached") and lines["ResNet50"].endswith("download")
