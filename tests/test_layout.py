"""The house rules, checked on the source: small rooms, no import circle, one place per fact, clean style."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from core.progress import Stage
from core.records import RunStatus, Status

REPO = Path(__file__).resolve().parents[1]
CORE_MAX_LINES = 400
PAGE_MAX_LINES = 110
ENGINE_INTERNALS = {
    "Extractor",
    "FrozenBase",
    "make_runtime",
    "model_latency",
    "extract_features",
    "train_head",
    "run_sweep",
}


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).glob("*.py"))


def imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `from X import names` and `import X` in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def core_imports(path: Path) -> set[str]:
    """The `core` modules a core module imports (`from core import paths` counts as core.paths)."""
    modules = set()
    for module, names in imported_modules(path):
        if module == "core":
            modules |= {name for name in names if (REPO / "core" / f"{name}.py").exists()}
        elif module.startswith("core."):
            modules.add(module.split(".")[1])
    return modules - {path.stem}


def test_core_has_no_import_circle():
    graph = {path.stem: core_imports(path) for path in sources("core")}

    def visit(module: str, trail: list[str]) -> None:
        for imported in sorted(graph.get(module, ())):
            assert imported not in trail, f"import circle: {' -> '.join([*trail[trail.index(imported) :], imported])}"
            visit(imported, [*trail, imported])

    for module in graph:
        visit(module, [module])


def test_rooms_are_small():
    long_core = {p.name: n for p in sources("core") if (n := len(p.read_text().splitlines())) > CORE_MAX_LINES}
    assert not long_core, f"core modules over {CORE_MAX_LINES} lines: {long_core}"
    long_pages = {p.name: n for p in sources("app_pages") if (n := len(p.read_text().splitlines())) > PAGE_MAX_LINES}
    assert not long_pages, f"pages over {PAGE_MAX_LINES} lines: {long_pages}"


def test_core_imports_no_streamlit_and_pages_build_no_engine_objects():
    for path in sources("core"):
        assert not any(m.split(".")[0] == "streamlit" for m, _ in imported_modules(path)), path.name
    for path in [*sources("app_pages"), REPO / "streamlit_app.py"]:
        used = {name for _, names in imported_modules(path) for name in names} & ENGINE_INTERNALS
        assert not used, f"{path.name} builds engine objects itself: {sorted(used)}"


def test_status_and_stage_names_are_written_once():
    """The stored names of statuses and stages appear as string literals only where they are defined."""
    names = {str(member) for enum in (Status, RunStatus, Stage) for member in enum}
    offenders = []
    for path in [*sources("core"), *sources("app_pages"), *sources("ui")]:
        if path.name in ("records.py", "progress.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not offenders, offenders


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    completed = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-1000:]
