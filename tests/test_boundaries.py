"""The package boundaries of docs/design.md, checked in a clean interpreter and in the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = (
    "rc_common",
    "rc_extract",
    "rc_sandbox",
    "warehouse",
    "migrations",
    "rc_sync",
    "pipelines",
)

FORBIDDEN = {
    "rc_common": ("rc_extract", "rc_sandbox", "warehouse", "rc_sync", "pipelines", "httpx"),
    "rc_extract": ("sqlalchemy", "pandas", "dagster", "warehouse", "rc_sandbox", "rc_sync"),
    "rc_sandbox": ("rc_extract", "warehouse", "rc_sync", "pipelines", "dagster"),
    "warehouse": ("httpx", "dagster", "rc_extract", "rc_sandbox", "rc_sync", "pipelines"),
    "rc_sync.engine": ("dagster",),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import(package: str) -> None:
    """A package's import graph stays inside its boundary."""
    forbidden = FORBIDDEN[package]
    code = (
        "import importlib, pkgutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(getattr(root, '__path__', []), root.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "", f"{package} pulls in {result.stdout.strip()}"


def _modules() -> dict[str, Path]:
    """Every product module by dotted name."""
    found: dict[str, Path] = {}
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    """Project modules `path` imports anywhere (top level or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        out.update(n for n in names if n in known)
    out.discard(module)
    return out


def _top_level_imports(path: Path) -> set[str]:
    """The top-level package of every absolute import in a file (anywhere in it)."""
    tops: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            tops.add((node.module or "").split(".")[0])
    return tops


def test_rc_common_imports_only_the_standard_library() -> None:
    """The shared modules import nothing from the project or any third party."""
    for path in sorted((ROOT / "rc_common").glob("*.py")):
        for top in _top_level_imports(path):
            assert top in sys.stdlib_module_names or top == "__future__", f"{path}: {top}"


def test_pipelines_import_only_dagster_and_rc_sync() -> None:
    """The Dagster layer talks to the rest of the project through rc_sync only."""
    allowed = {"dagster", "rc_sync", "pipelines", "__future__"}
    for path in sorted((ROOT / "pipelines").glob("*.py")):
        for top in _top_level_imports(path):
            # dagster_* = Dagster's own integration packages (dagster_celery for the executor)
            ok = top in allowed or top.startswith("dagster_") or top in sys.stdlib_module_names
            assert ok, f"{path}: imports {top}"


def test_readycloud_sync_reads_like_a_table_of_contents() -> None:
    """The sync asset's function stays short: the work is in rc_sync, the details in helpers."""
    source = (ROOT / "pipelines" / "assets.py").read_text()
    tree = ast.parse(source)
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "readycloud_sync"]
    assert fn.end_lineno is not None
    assert fn.end_lineno - fn.lineno + 1 <= 30


def test_no_import_cycle() -> None:
    """No product module imports, directly or through others, a module that imports it."""
    known = _modules()
    graph = {name: _imports(path, name, known) for name, path in known.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


# Modules allowed to read the process environment: the settings of each layer.
SETTINGS_MODULES = {"rc_sync/settings.py", "warehouse/settings.py"}


def test_only_settings_modules_read_the_environment() -> None:
    """No raw os.environ / os.getenv outside the settings modules (one settings object per layer)."""
    offenders = []
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in SETTINGS_MODULES:
                continue
            text = path.read_text()
            for needle in ("os.environ", "os.getenv", "getenv(", "environ.get("):
                if needle in text:
                    offenders.append(f"{relative}: {needle}")
    assert not offenders, offenders
