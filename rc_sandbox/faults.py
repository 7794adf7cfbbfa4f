"""Injected failures: throttling, gateway errors, broken bodies and slow answers."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from rc_sandbox.config import SandboxConfig

_GATEWAY_PAGES = {
    500: "<h1>Server Error (500)</h1>",
    502: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    503: "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n",
    504: "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
}
# What a `garbage` fault answers with 200 and Content-Type: application/json.
GARBAGE_BODY = (
    b"<!DOCTYPE html><html><head><title>Maintenance</title></head>"
    b"<body>We'll be back soon.</body></html>\x00\xff\xfe"
)


def gateway_page(status: int) -> str:
    """The HTML body a 5xx fault answers with (Django's 500 page, nginx's 502/503/504)."""
    return _GATEWAY_PAGES[status]


def throttle_body(retry_after_s: float | None) -> dict[str, Any]:
    """DRF's throttling body."""
    if retry_after_s is None:
        return {"detail": "Request was throttled."}
    return {"detail": f"Request was throttled. Expected available in {retry_after_s:g} seconds."}


async def drip(body: bytes, chunk: int, pause_s: float) -> AsyncIterator[bytes]:
    """`body` in chunks of `chunk` bytes with `pause_s` before each chunk after the first."""
    for start in range(0, len(body), chunk):
        if start:
            await asyncio.sleep(pause_s)
        yield body[start : start + chunk]


def truncate(body: bytes) -> bytes:
    """A body cut in half, as a proxy dropping the connection mid-transfer would leave it."""
    return body[: max(1, len(body) // 2)]


@dataclass
class SandboxStats:
    """Request counters of a running sandbox (thread-safe increments, snapshot to read)."""

    requests: int = 0  # every /api/v2 request
    orgs: int = 0
    list: int = 0  # expanded or stub order lists
    compact: int = 0  # order lists with only=
    detail: int = 0  # order/box/item detail and box/item lists
    control: int = 0
    webhooks: int = 0  # webhook CRUD requests
    throttled: int = 0  # 429s of the rate limit (rate_limit), not injected faults
    faults: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    mutations: int = 0  # done by mutate_every
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, amount: int = 1) -> None:
        """Add to one counter."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def count_fault(self, kind: str) -> None:
        """Record one injected fault."""
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_status(self, status: int) -> None:
        """Record the status of one answered request."""
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def faults_total(self) -> int:
        """How many faults were injected."""
        return sum(self.faults.values())

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of every counter."""
        with self._lock:
            return {
                "requests": self.requests,
                "orgs": self.orgs,
                "list": self.list,
                "compact": self.compact,
                "detail": self.detail,
                "control": self.control,
                "webhooks": self.webhooks,
                "throttled": self.throttled,
                "faults": dict(self.faults),
                "faults_total": sum(self.faults.values()),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "mutations": self.mutations,
            }

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.requests = self.orgs = self.list = self.compact = 0
            self.detail = self.control = self.mutations = self.webhooks = 0
            self.throttled = 0
            self.faults = {}
            self.statuses = {}


class FaultPlan:
    """Decides, per request, whether and which fault to inject (seeded, so runs repeat)."""

    def __init__(self, config: SandboxConfig) -> None:
        """Faults follow `config.fault_rate` / `config.fault_kinds`, read on every request."""
        self.config = config
        self.rng = random.Random(f"{config.seed}:faults")
        self._lock = threading.Lock()

    def pick(self) -> str | None:
        """The fault kind for the next request, or None."""
        rate = self.config.fault_rate
        kinds = self.config.fault_kinds
        if rate <= 0 or not kinds:
            return None
        with self._lock:
            if self.rng.random() >= rate:
                return None
            return kinds[self.rng.randrange(len(kinds))]
