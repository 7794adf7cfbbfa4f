"""Fixtures of the Dagster tests: a clean environment and a running sandbox."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipelines_support import ENV_VARS, sandbox_config


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No rc-sync variables and no stray .env: every test states what it needs."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    """A running sandbox shared by the session (tests only read from it)."""
    from rc_sandbox import SandboxServer

    with SandboxServer(sandbox_config()) as server:
        yield server
