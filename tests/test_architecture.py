"""The layers of docs/architecture.md, read from the code's own imports: every import statement,
at module level, inside functions and under TYPE_CHECKING alike."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import napari_sansa

PACKAGE = "napari_sansa"
ROOT = Path(napari_sansa.__file__).parent
FRONT_ENDS = ("cli", "distributed", "plugin")
NOT_IN_ENGINE = ("qtpy", "PyQt5", "PyQt6", "magicgui", "napari", "dask", "distributed", "argparse")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a ``from`` import names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if MODULES[module].name != "__init__.py":
        parts = parts[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def _resolve(name: str) -> str:
    """The package module an imported name lives in (a name inside a module: that module)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports() -> dict[str, tuple[set[str], set[str]]]:
    """For each module: (package modules it imports, third-party top-level names it imports)."""
    out = {}
    for module, path in MODULES.items():
        inner, outer = set(), set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, node)
                names = (
                    [f"{base}.{alias.name}" for alias in node.names] if base.startswith(PACKAGE) else [base]
                )
            else:
                continue
            for name in names:
                if name.split(".")[0] != PACKAGE:
                    outer.add(name.split(".")[0])
                elif _resolve(name) != module:
                    inner.add(_resolve(name))
        out[module] = (inner, outer)
    return out


IMPORTS = _imports()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in IMPORTS[v][0]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in IMPORTS:
        if module not in index:
            visit(module)
    return found


def _violations(rule) -> list[str]:
    return sorted(f"{m} -> {t}" for m, (inner, _) in IMPORTS.items() for t in inner if rule(m, t))


def test_the_graph_is_read():
    assert len(MODULES) > 50
    assert "napari_sansa.engine.runtime.runtime" in IMPORTS["napari_sansa.engine.model"][0]
    assert "torch" in IMPORTS["napari_sansa.engine.model"][1]


def test_no_import_cycles():
    assert _cycles() == []


def test_the_engine_is_compute_only():
    third_party = sorted(
        f"{m} -> {name}"
        for m, (_, outer) in IMPORTS.items()
        if _layer(m) == "engine"
        for name in outer
        if name in NOT_IN_ENGINE
    )
    assert third_party == []
    below = ("files", "pipeline", *FRONT_ENDS)
    assert _violations(lambda m, t: _layer(m) == "engine" and _layer(t) in below) == []


def test_nothing_outside_the_cli_imports_it():
    assert _violations(lambda m, t: _layer(m) != "cli" and _layer(t) == "cli") == []


def test_file_formats_import_only_the_engine():
    assert _violations(lambda m, t: _layer(m) == "files" and _layer(t) in ("pipeline", *FRONT_ENDS)) == []


def test_the_pipeline_sits_between_the_files_and_the_front_ends():
    assert "napari_sansa.pipeline.run" in MODULES
    assert _violations(lambda m, t: _layer(m) == "pipeline" and _layer(t) in FRONT_ENDS) == []
    outside = _violations(
        lambda m, t: _layer(m) == "pipeline" and _layer(t) not in ("engine", "files", "pipeline")
    )
    assert outside == []


def test_the_pipeline_loads_without_torch():
    """A model that runs elsewhere (a Dask server) satisfies the pipeline's protocol on a
    machine without torch: importing the pipeline loads none."""
    import subprocess
    import sys

    code = "import sys, napari_sansa.pipeline, napari_sansa.pipeline.run; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_front_ends_run_files_through_the_pipeline():
    for front_end in (
        "napari_sansa.cli.segment",
        "napari_sansa.distributed.worker",
        "napari_sansa.plugin.core.jobs",
    ):
        assert any(_layer(t) == "pipeline" for t in IMPORTS[front_end][0]), front_end


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_ends_use_no_other_front_end_internals(front_end):
    def internal(m: str, t: str) -> bool:  # another front end's package API is allowed
        return (
            _layer(m) == front_end and _layer(t) in FRONT_ENDS and _layer(t) != front_end and t.count(".") > 1
        )

    assert _violations(internal) == []


def test_the_top_level_holds_few_modules():
    top = [p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "_version")]
    assert len(top) <= 4, top


def test_inside_the_engine_each_part_imports_only_those_below_it():
    order = [
        *("errors", "config", "callbacks", "inputs", "metrics", "network", "runtime", "objects", "runs"),
        "adaptation",  # trains the network on episodes, scored with the metrics
        "model",
        "evaluation",  # leave-one-out runs a model
    ]

    def rank(module: str) -> int:
        part = module.split(".")[2] if module.count(".") > 1 else "model"  # the package: its top
        return order.index(part.removesuffix(".py"))

    upward = _violations(lambda m, t: _layer(m) == _layer(t) == "engine" and rank(t) > rank(m))
    assert upward == []
