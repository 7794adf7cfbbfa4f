"""The package boundaries of docs/design.md, checked in a clean interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "rc_extract": ("sqlalchemy", "pandas", "dagster"),
    "warehouse": ("httpx", "dagster"),
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
