"""The code's structure, read from the source (ast, nothing imported): obd's import layers, no Streamlit in obd/,
views that reach each other only through ui.services, and no source file over MAX_LINES lines.

obd's layers, lowest first: core < runtime < methods < training < figures, teach < work < cli. A module imports
from its own layer and the ones `ALLOWED` names, never from a later one, not even lazily inside a function:
a backward import, however late, makes the lower layer need the higher one to run. obd/__init__.py (the public
API, re-exported) and obd/__main__.py (`python -m obd`) sit above every layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600
SOURCES = ("obd", "ui", "app.py", "tests", "benchmarks")  # what the line limit covers

LAYERS = ("core", "runtime", "methods", "training", "figures", "teach", "work", "cli")
# {layer: the layers its modules may import from}; figures draws networks (core) and timings in runtime's words
# (obd.runtime.speedups), never methods or models
ALLOWED = {
    "core": {"core"},
    "runtime": {"core", "runtime"},
    "methods": {"core", "runtime", "methods"},
    "training": {"core", "runtime", "methods", "training"},
    "figures": {"core", "runtime", "figures"},
    "teach": {"core", "runtime", "methods", "training", "figures", "teach"},
    "work": {"core", "runtime", "methods", "training", "figures", "teach", "work"},
    "cli": set(LAYERS),
}
ABOVE_LAYERS = {"obd/__init__.py", "obd/__main__.py"}
FIRST_PARTY = {"obd", "ui", "app", "benchmarks", "tests", "apptest", "cached_default", "conftest"}


def python_files(*tops: str) -> list[Path]:
    """The .py files under (or at) each of `tops`, relative to the repository root, caches left out."""
    out: list[Path] = []
    for top in tops:
        path = ROOT / top
        found = [path] if path.is_file() else sorted(path.rglob("*.py"))
        out += [p.relative_to(ROOT) for p in found if "__pycache__" not in p.parts and ".venv" not in p.parts]
    return out


def module_name(path: Path) -> str:
    """obd/core/files.py -> obd.core.files; obd/core/__init__.py -> obd.core."""
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import anywhere in the file, inside functions too: `import a.b`, `from a.b import
    c` (as a.b and a.b.c: c may be a module), relative imports resolved, and `importlib.import_module("a.b")`
    with a literal name."""
    tree = ast.parse((ROOT / path).read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, one level up per dot after the first
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def layer_of(module: str) -> str | None:
    """The layer of an obd module name (obd.cli -> cli, obd.work.jobs -> work); None outside the layers."""
    parts = module.split(".")
    if parts[0] != "obd" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


OBD_FILES = [p for p in python_files("obd") if p.as_posix() not in ABOVE_LAYERS]
VIEW_FILES = [p for p in python_files("ui/views") if p.name != "__init__.py"]


def test_every_obd_module_belongs_to_a_layer():
    assert OBD_FILES, "no obd/ source found"
    assert [p.as_posix() for p in OBD_FILES if layer_of(module_name(p)) is None] == []


@pytest.mark.parametrize("path", OBD_FILES, ids=lambda p: p.as_posix())
def test_no_module_imports_from_a_later_layer(path: Path):
    own = layer_of(module_name(path))
    assert own is not None
    wrong = sorted(
        f"line {line}: {module} ({layer_of(module) or 'the obd package itself'})"
        for line, module in imports(path)
        if module.split(".")[0] == "obd" and layer_of(module) not in ALLOWED[own]
    )
    assert wrong == [], f"{path} ({own} may import from {sorted(ALLOWED[own])}) imports"


@pytest.mark.parametrize("path", python_files("obd"), ids=lambda p: p.as_posix())
def test_obd_never_imports_streamlit(path: Path):
    assert [line for line, module in imports(path) if module.split(".")[0] == "streamlit"] == []


@pytest.mark.parametrize("path", VIEW_FILES, ids=lambda p: p.as_posix())
def test_a_view_imports_obd_and_ui_services_but_never_another_view(path: Path):
    def first_party_but_not_allowed(module: str) -> bool:
        root = module.split(".")[0]
        if root == "ui":  # `from ui import services` reads as ui and ui.services
            return module != "ui" and module != "ui.services" and not module.startswith("ui.services.")
        return root in FIRST_PARTY - {"obd"}

    wrong = sorted(f"line {line}: {module}" for line, module in imports(path) if first_party_but_not_allowed(module))
    assert wrong == [], f"{path} imports first-party code other than obd and ui.services (views meet there)"


@pytest.mark.parametrize("path", python_files("ui/services"), ids=lambda p: p.as_posix())
def test_ui_services_never_import_a_view(path: Path):
    assert [f"line {line}: {m}" for line, m in imports(path) if m.startswith("ui.views")] == []


def test_no_source_file_is_over_the_line_limit():
    sizes = {p.as_posix(): len((ROOT / p).read_text().splitlines()) for p in python_files(*SOURCES)}
    assert len(sizes) > 50, "the sources were not found"
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
