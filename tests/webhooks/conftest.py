"""Fixtures for webhook tests: a hooked sandbox on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_support import Hooked, hooked_setup


@pytest.fixture
def hooked(target: Any) -> Iterator[Hooked]:
    """A hooked sandbox on SQLite and PostgreSQL."""
    setup = hooked_setup(target)
    try:
        yield setup
    finally:
        setup.shutdown()
        setup.server.stop()
