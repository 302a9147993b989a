"""Issue 15's figures: peak server memory for a zip bomb and for giant-canvas JPEGs, and Cancel latency at each stage.

    python bench/faults.py                     # this tree and the last commit (before the fix), about 10 minutes
    python bench/faults.py --trees after       # this tree only
    python bench/faults.py --out /tmp/faults.json

Each case runs in a fresh Python process (its peak RSS is its own) with its own `TRANSFERBENCH_HOME`, and the
app's pages are driven by Streamlit's AppTest, in process: the figures are the server's memory.

- `zip_bomb`: the Data page receives a 2 MB zip holding one class folder with a 1.9 GB file of zeros (plus a
  small PNG in another class). Reported: the process's peak RSS (`ru_maxrss`) during the upload, its RSS
  after, the bytes written under the data folder, and what the page said.
- `giant_jpeg`: the Predict page receives six 88-megapixel (11000x8000) JPEGs of about 1.4 MB each, for
  a model trained beforehand in the same home. Same figures.
- `small_jpeg`: the same with six 1000x750 JPEGs: what the Predict page costs anyway (TensorFlow, the model).
- `cancel`: a 3,000-image sweep of two models (`MobileNet:0.25@128` with ImageNet weights and untrained,
  runtime auto),
  cancelled through the store (what the Cancel button does) once a stage is under way: `decoding` (the
  first model, its images still being decoded, 160 images in), `extracting` (the second model's forward
  pass, images decoded, 160 images in), `training` (the first model's head, at its first epoch report).
  Reported: seconds from the cancel to `run_sweep` returning, the run's status and each model's.

"Before" is the last commit (`git archive HEAD`, nothing in the working tree is touched).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("MobileNet:0.25@128", "MobileNet:0.25@128/none")  # one input size: the second reuses the decoding
BOMB_MB = 1900
CANCEL_IMAGES = 3000
PRESS_AT = 160  # images into a forward pass when Cancel is pressed


# --------------------------------------------------------------------------------------------------
# The cases, each run in its own process with `sys.path[0]` set to the tree under test


def case_zip_bomb(tree: Path, inputs: Path) -> dict:
    at = _app(tree, "data")
    at.radio[0].set_value("Upload a .zip").run()
    before = _rss_and_peak_mb()
    started = time.perf_counter()
    at.file_uploader[0].set_value(("pets.zip", (inputs / "bomb.zip").read_bytes(), "application/zip")).run()
    return _memory(before, started) | _page(at) | {"written_mb": round(_bytes_under(_home()) / 2**20, 1)}


def case_giant_jpeg(tree: Path, inputs: Path, pattern: str = "giant-*.jpg") -> dict:
    from core.store import Store

    run_id = Store().runs()[0].id
    at = _app(tree, "predict", run_id=run_id)
    files = [(path.name, path.read_bytes(), "image/jpeg") for path in sorted(inputs.glob(pattern))]
    before = _rss_and_peak_mb()
    started = time.perf_counter()
    at.file_uploader[0].set_value(files).run()
    return _memory(before, started) | _page(at) | {"images_shown": len(at.get("image"))}


def case_small_jpeg(tree: Path, inputs: Path) -> dict:
    return case_giant_jpeg(tree, inputs, "small-*.jpg")


def case_train(tree: Path, inputs: Path) -> dict:
    """A small finished run for the Predict page (not measured)."""
    from core.sweep import SweepSettings, run_sweep

    outcome = run_sweep(inputs / "small", SweepSettings(models=[MODELS[0]], epochs=5, runtime="tf"))
    return {"run_id": outcome.run_id}


def case_cancel(tree: Path, inputs: Path, stage: str) -> dict:
    from core.progress import Stage
    from core.store import Store
    from core.sweep import SweepSettings, run_sweep

    store, pressed = Store(), {}
    target = {"decoding": (0, Stage.DECODING), "extracting": (1, Stage.EXTRACTING), "training": (0, Stage.TRAINING)}

    def on_progress(progress) -> None:
        index, wanted = target[stage]
        in_pass = wanted == Stage.TRAINING or progress.done >= PRESS_AT
        if not pressed and progress.index == index and progress.stage == wanted and in_pass:
            store.request_cancel(progress.run_id)  # what the Cancel button does
            pressed.update(at=time.perf_counter(), done=progress.done, epoch=progress.epoch)

    started = time.perf_counter()
    outcome = run_sweep(inputs / "cancel", SweepSettings(models=list(MODELS), epochs=100), on_progress=on_progress)
    ended = time.perf_counter()
    return {
        "stage": stage,
        "pressed_after_s": round(pressed["at"] - started, 1) if pressed else None,
        "cancel_latency_s": round(ended - pressed["at"], 2) if pressed else None,
        "images_done_at_press": pressed.get("done"),
        "run_status": str(store.run(outcome.run_id).status),
        "models": {result.model: str(result.status) for result in outcome.results},
    }


def _app(tree: Path, page: str, **state):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(tree / "streamlit_app.py"), default_timeout=900)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    return at


def _memory(before_mb: tuple[float, float], started: float) -> dict:
    import gc
    import resource

    seconds = time.perf_counter() - started
    gc.collect()
    return {
        "rss_before_mb": round(before_mb[0]),
        "peak_before_mb": round(before_mb[1]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_mb": round(_rss_mb()),
        "seconds": round(seconds, 1),
    }


def _page(at) -> dict:
    return {
        "exception": bool(at.exception),
        "errors": [str(e.value)[:300] for e in at.error],
        "traceback_shown": any("Traceback" in str(e.value) for e in [*at.error, *at.exception]),
    }


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _rss_and_peak_mb() -> tuple[float, float]:
    """The RSS now, and the process's peak so far (what the measured step must exceed to show)."""
    import resource

    return _rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _home() -> Path:
    return Path(os.environ["TRANSFERBENCH_HOME"])


def _bytes_under(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


# --------------------------------------------------------------------------------------------------
# The driver: inputs, trees, one process per case


def make_inputs(folder: Path) -> None:
    """The bomb zip, six giant JPEGs, a 3,000-image dataset to cancel and a small one to train for Predict."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        small = folder / "ok.png"
        Image.fromarray(np.zeros((32, 32, 3), np.uint8) + 90).save(small)
        archive.write(small, "dogs/ok.png")
        with archive.open("cats/bomb.jpg", "w", force_zip64=True) as out:
            zeros = bytes(2**20)
            for _ in range(BOMB_MB):
                out.write(zeros)
    for index in range(6):
        image = Image.new("RGB", (11000, 8000), (40 * index, 120, 200 - 30 * index))
        image.paste((200, 40 + 20 * index, 60), (0, 0, 3600, 2600))
        image.save(folder / f"giant-{index}.jpg", quality=60)
        image.resize((1000, 750)).save(folder / f"small-{index}.jpg", quality=60)
        del image
    rng = np.random.default_rng(0)
    for root, count, side in ((folder / "cancel", CANCEL_IMAGES, 160), (folder / "small", 40, 48)):
        for label, channel in (("red", 0), ("blue", 2)):
            (root / label).mkdir(parents=True, exist_ok=True)
            for index in range(count // 2):
                pixels = rng.integers(0, 90, (side, side, 3), dtype=np.uint8)
                pixels[..., channel] = rng.integers(150, 256, (side, side), dtype=np.uint8)
                Image.fromarray(pixels).save(root / label / f"{index:04d}.jpg", quality=90)


def run_case(tree: Path, inputs: Path, case: str, home: Path, keras_home: Path, *extra: str) -> dict:
    env = {**os.environ, "TRANSFERBENCH_HOME": str(home), "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TRANSFERBENCH_HOSTED", None)
    command = [sys.executable, __file__, "--child", case, "--tree", str(tree), "--inputs", str(inputs), *extra]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"failed": done.returncode, "stderr": done.stderr[-2000:]}
    return json.loads(lines[-1])


def keras_cache(folder: Path, shared: Path) -> Path:
    """A writable KERAS_HOME of symlinks to the shared offline cache (as the tests build it)."""
    home = folder / "keras"
    for sub in ("models", "datasets"):
        (home / sub).mkdir(parents=True, exist_ok=True)
        if (shared / "keras" / sub).is_dir():
            for item in (shared / "keras" / sub).iterdir():
                (home / sub / item.name).symlink_to(item)
    return home


def export_head(folder: Path) -> Path:
    """The last commit's tree, exported read-only from git (the working tree is not touched)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", choices=("before", "after"), default=["before", "after"])
    parser.add_argument("--cases", nargs="+", default=["zip_bomb", "giant_jpeg", "small_jpeg", "cancel"])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "faults.json")
    parser.add_argument("--child"), parser.add_argument("--tree", type=Path), parser.add_argument("--inputs", type=Path)
    parser.add_argument("--stage")
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(args.tree))
        cases = {
            "zip_bomb": case_zip_bomb,
            "giant_jpeg": case_giant_jpeg,
            "small_jpeg": case_small_jpeg,
            "train": case_train,
        }
        result = case_cancel(args.tree, args.inputs, args.stage) if args.child == "cancel" else None
        print(json.dumps(result or cases[args.child](args.tree, args.inputs)))
        return

    with tempfile.TemporaryDirectory(prefix="tb-faults-") as temp:
        temp = Path(temp)
        keras_home = keras_cache(temp, args.shared.resolve())
        print("generating inputs...", file=sys.stderr)
        make_inputs(temp / "inputs")
        trees = {"after": REPO} | ({"before": export_head(temp / "before")} if "before" in args.trees else {})
        figures: dict = {}
        for name in args.trees:
            tree, figures[name] = trees[name], {}
            for case in args.cases:
                home = temp / "homes" / f"{name}-{case}"
                print(f"{name}: {case}...", file=sys.stderr)
                if case in ("giant_jpeg", "small_jpeg"):
                    run_case(tree, temp / "inputs", "train", home, keras_home)
                if case == "cancel":
                    figures[name][case] = [
                        run_case(
                            tree,
                            temp / "inputs",
                            case,
                            home.with_name(f"{home.name}-{stage}"),
                            keras_home,
                            "--stage",
                            stage,
                        )
                        for stage in ("decoding", "extracting", "training")
                    ]
                else:
                    figures[name][case] = run_case(tree, temp / "inputs", case, home, keras_home)
                print(json.dumps(figures[name][case], indent=1), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(summary(figures))


def summary(figures: dict) -> str:
    lines = []
    for tree, cases in figures.items():
        for case in ("zip_bomb", "giant_jpeg", "small_jpeg"):
            if figure := cases.get(case):
                lines.append(
                    f"{tree:6} {case:10} peak RSS {figure.get('peak_rss_mb')} MB (RSS {figure.get('rss_before_mb')} MB and "
                    f"peak {figure.get('peak_before_mb')} MB before, "
                    f"{figure.get('rss_after_mb')} MB after), {figure.get('seconds')} s, written {figure.get('written_mb', 0)} MB, "
                    f"errors: {figure.get('errors')}"
                )
        for figure in cases.get("cancel", []):
            lines.append(
                f"{tree:6} cancel {figure.get('stage', '?'):10} latency {figure.get('cancel_latency_s')} s "
                f"(pressed at {figure.get('images_done_at_press')} images), run {figure.get('run_status')}, "
                f"models {figure.get('models')}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
