"""Fixtures for the sandbox tests: a shared read-only server and a factory for private ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rc_sandbox import SandboxConfig, SandboxServer

TOKEN = "sandbox-token"


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[SandboxServer]:
    """One 400-order sandbox for tests that only read (never change its config or data)."""
    with SandboxServer(SandboxConfig(orders=400, seed=7, poison_rate=0.05)) as server:
        yield server


@pytest.fixture
def api(shared_sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An authenticated httpx client for the shared sandbox."""
    with httpx.Client(
        base_url=shared_sandbox.base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start private sandboxes with given knobs; all are stopped at teardown."""
    started: list[SandboxServer] = []

    def make(**knobs: Any) -> SandboxServer:
        knobs.setdefault("orders", 120)
        server = SandboxServer(SandboxConfig(**knobs)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
