"""Fixtures of the reliability suite: sandboxes, engines and the secret scan run after each test."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_support import ENV_PREFIXES, Harness

SLOW_ENV = "RC_SYNC_SLOW_TESTS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long variants (`slow`) run only when asked: `-m slow` or RC_SYNC_SLOW_TESTS=1."""
    import os

    if os.environ.get(SLOW_ENV) == "1" or "slow" in (config.getoption("markexpr") or ""):
        return
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason=f"long variant: run with -m slow or {SLOW_ENV}=1")
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No rc-sync variables and no stray .env: every test states what it needs."""
    import os

    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def harness(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Iterator[Harness]:
    """Sandboxes and engines for one scenario; afterwards the token must appear nowhere.

    Scenario 10 (secrets) runs here, after every scenario: the captured output (stdout and
    stderr, including any subprocess output the test recorded), every log record down to
    DEBUG, and every text column of every table of every warehouse the test used.
    """
    caplog.set_level(logging.DEBUG)
    for noisy in ("httpx", "httpcore", "uvicorn", "alembic", "hpack", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()
    out, err = capfd.readouterr()
    h.assert_token_absent(out + err + caplog.text)
