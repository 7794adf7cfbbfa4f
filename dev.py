#!/usr/bin/env python3
"""Set up the project's virtual environment and run its everyday tasks.

Works on a fresh machine with nothing but Python 3.11+:

    python3 dev.py demo     # set up, then run `rc-sync demo` on the embedded SQLite default
    python3 dev.py test     # set up, then ruff, mypy and the whole pytest suite
    python3 dev.py setup    # only create/refresh .venv
    python3 dev.py bench    # set up, then run the benchmark (bench/README.md)

Any further arguments go to the underlying tool (`python3 dev.py test -k client`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".rc-sync-installed"


def _run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT)  # noqa: S603 - our own fixed commands
    if code:
        sys.exit(code)


def _fingerprint() -> str:
    """Hash of what the install depends on, so `setup` only reinstalls when it changed."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def setup() -> None:
    """Create .venv and install rc-sync (editable) with the pinned versions."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"rc-sync needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[dev]")
    STAMP.write_text(_fingerprint())


def test(args: list[str]) -> None:
    """Lint, type-check and run the whole test suite."""
    setup()
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "ruff", "format", "--check", ".")
    _run(BIN / "mypy")
    _run(BIN / "python", "-m", "pytest", *args)


def demo(args: list[str]) -> None:
    """Run the sandbox demo into the embedded SQLite warehouse."""
    setup()
    _run(BIN / "rc-sync", "demo", *args)


def bench(args: list[str]) -> None:
    """Run the benchmark suite."""
    setup()
    _run(BIN / "python", "-m", "bench", *args)


def main() -> None:
    task, *args = sys.argv[1:] or ["help"]
    if task == "setup":
        setup()
    elif task == "test":
        test(args)
    elif task == "demo":
        demo(args)
    elif task == "bench":
        bench(args)
    else:
        print(__doc__)
        sys.exit(0 if task == "help" else 2)


if __name__ == "__main__":
    main()
