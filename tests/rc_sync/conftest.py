"""Fixtures for engine and command-line tests: a small sandbox and settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rc_sandbox import SandboxConfig, SandboxServer


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A 300-order, 2-org sandbox on a free port."""
    with SandboxServer(SandboxConfig(orgs=2, orders=300, seed=7)) as server:
        yield server
