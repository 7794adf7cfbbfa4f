"""`python -m crash_runner ARGS` = `rc-sync ARGS`, SIGKILLed at a chosen point (scenario 5).

RC_SYNC_TEST_CRASH="<point>:<n>" picks the n-th occurrence (1-based) of one point:

* page          right after the n-th API page arrived (between pages)
* in_tx         inside the n-th load transaction, after its rows were written, before commit
* in_watermark  inside the n-th watermark update, before its transaction commits
* after_commit  right after the n-th batch transaction committed
* rebuild_in_tx inside the n-th `rc-sync rebuild` batch transaction, before commit
* rebuild_commit right after the n-th `rc-sync rebuild` batch committed

Hooks wrap the production functions from the outside; the production code has no test hook.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

_lock = threading.Lock()
_counts: dict[str, int] = {}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _tick(point: str, wanted: str, target: int) -> None:
    if point != wanted:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] == target:
            _die()


def install(spec: str) -> None:
    """Wrap the functions that mark each crash point."""
    from rc_extract.client import ReadyCloudClient
    from warehouse import load, rebuild

    wanted, _, n = spec.partition(":")
    target = int(n or "1")

    fetch_page = ReadyCloudClient._fetch_page

    def _fetch_page(self: Any, *args: Any, **kwargs: Any) -> Any:
        page = fetch_page(self, *args, **kwargs)
        _tick("page", wanted, target)
        return page

    inner_load = load.Loader._load

    def _load(self: Any, *args: Any, **kwargs: Any) -> Any:
        stats = inner_load(self, *args, **kwargs)
        _tick("in_tx", wanted, target)
        return stats

    load_batch = load.Loader.load_batch

    def _load_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
        stats = load_batch(self, *args, **kwargs)
        _tick("after_commit", wanted, target)
        return stats

    advance = load.advance_watermark

    def _advance(*args: Any, **kwargs: Any) -> Any:
        result = advance(*args, **kwargs)
        _tick("in_watermark", wanted, target)
        return result

    rederive = rebuild.rederive_batch
    mark_current = rebuild._mark_current

    def _rederive(*args: Any, **kwargs: Any) -> Any:
        stats = rederive(*args, **kwargs)
        _tick("rebuild_commit", wanted, target)
        return stats

    def _mark(*args: Any, **kwargs: Any) -> Any:
        mark_current(*args, **kwargs)
        _tick("rebuild_in_tx", wanted, target)

    rebuild.rederive_batch = _rederive
    rebuild._mark_current = _mark
    ReadyCloudClient._fetch_page = _fetch_page  # type: ignore[method-assign]
    load.Loader._load = _load  # type: ignore[method-assign]
    load.Loader.load_batch = _load_batch  # type: ignore[method-assign]
    load.advance_watermark = _advance


def main() -> None:
    spec = os.environ.get("RC_SYNC_TEST_CRASH", "")
    if spec:
        install(spec)
    from rc_sync.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
