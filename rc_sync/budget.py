"""The request budget shared through the warehouse, and the budget a run should draw from.

`rc_extract` defines the interface and the policy (rc_extract.budget); `warehouse.budget`
keeps the ledger; this module joins them: `LedgerBudget` is the RequestBudget every rc-sync
process of one App and warehouse shares, and `budget_for` picks it (or an in-process one when
the limit is off).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import time
from collections.abc import Callable

import sqlalchemy as sa

from rc_extract.budget import (
    THROTTLE_RESET_S,
    LocalBudget,
    PollingBudget,
    Priority,
    Rate,
    throttle_pause,
)
from warehouse import budget as ledger

log = logging.getLogger(__name__)

PRUNE_EVERY = 256  # grants between two deletions of ledger rows older than two days


def budget_key(base_url: str, app: str) -> str:
    """The ledger key of one App on one host: a hash of both (never of the token)."""
    text = f"{base_url.strip().rstrip('/').lower()}\n{app.strip()}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LedgerBudget(PollingBudget):
    """A RequestBudget whose window and pauses live in the warehouse (shared by processes)."""

    def __init__(
        self,
        db: sa.Engine,
        key: str,
        rate: Rate,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(rate, sleep=sleep, clock=clock, rand=rand)
        self.db = db
        self.key = key
        self._window = ledger.Window(
            rate.limit, rate.guarded_period_s, rate.cap("bulk", refresh_waiting=True)
        )
        self._rate_text = str(rate)
        self._counter = itertools.count(1)

    def _try(self, purpose: str, priority: Priority) -> tuple[float, str]:
        prune = next(self._counter) % PRUNE_EVERY == 1
        return ledger.try_grant(
            self.db,
            self.key,
            self._window,
            purpose=purpose,
            priority=priority,
            rate_text=self._rate_text,
            prune=prune,
        )

    def _throttle(self, retry_after: float | None) -> float:
        return ledger.record_throttle(
            self.db,
            self.key,
            lambda level: throttle_pause(level, retry_after, self._rand),
            THROTTLE_RESET_S,
        )


def budget_for(rate: Rate | None, db: Callable[[], sa.Engine], key: str) -> PollingBudget:
    """The budget a run draws from: the warehouse ledger, or (limit off) this process only.

    With the limit off nothing is written per request (benchmarks, an unthrottled sandbox);
    429s still pause every thread of the process.
    """
    if rate is None:
        return LocalBudget(None)
    return LedgerBudget(db(), key, rate)
