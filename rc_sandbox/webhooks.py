"""Sandbox webhooks: the CRUD resource of API.md §10 and deliveries with fault knobs.

Every change the store makes (control API, mutation knobs) is announced to each active
`orders` webhook of the order's org: `PUT <remote_url>/<order_pk>` with the order as
`GET ...?expand=boxes,items` would return it, or `DELETE <remote_url>/<order_pk>`, with the
webhook's token in the `Auth` header. Knobs (SandboxConfig.webhook_*): drop, duplicate,
reorder, delay, retry with exponential back-off, suspend after N consecutive failures.
`log` records the fate of every delivery for tests.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from rc_common.paths import webhooks_path
from rc_common.timefmt import format_api_datetime, utc_now
from rc_sandbox.config import SandboxConfig

log = logging.getLogger(__name__)

ENTITIES = (
    "orders",
    "order-delivered",
    "packaging",
    "contact",
    "contact-address",
    "acceptance-scan",
    "webhook",
)
MAX_BACKOFF_S = 30.0


def _loopback(host: str) -> bool:
    import ipaddress

    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_remote_url(value: Any) -> str | None:
    """Why `value` is not an acceptable remote_url (https, or http to loopback), else None."""
    if not isinstance(value, str) or not value:
        return "This field is required."
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return None  # the sandbox allows plain http to loopback (ReadyCloud does not)
    return "Enter a valid HTTPS URL."


@dataclass
class Hook:
    """One registered webhook."""

    pk: str
    org_pk: str
    entity: str
    remote_url: str
    token: str
    created_at: datetime
    updated_at: datetime
    suspended_at: datetime | None = None
    failures: int = 0  # consecutive failed attempts

    @property
    def url(self) -> str:
        """The webhook's own (host-relative) url."""
        return f"{webhooks_path(self.org_pk)}{self.pk}/"

    def to_json(self) -> dict[str, Any]:
        """The API representation (token included: it is read-only, not secret to its owner)."""
        return {
            "url": self.url,
            "entity": self.entity,
            "remote_url": self.remote_url,
            "token": self.token,
            "created_at": format_api_datetime(self.created_at),
            "updated_at": format_api_datetime(self.updated_at),
            "suspended_at": (format_api_datetime(self.suspended_at) if self.suspended_at else None),
        }


@dataclass
class DeliveryRecord:
    """What happened to one announced change (for tests)."""

    seq: int
    org_pk: str
    order_pk: str
    method: str
    nested_updated_at: str | None
    hook_pk: str
    fate: str = "queued"  # queued, delivered, dropped, failed, suspended
    attempts: int = 0
    copies: int = 1
    created: float = field(default_factory=time.monotonic)
    acked: float | None = None  # monotonic time of the first 2xx


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    record: DeliveryRecord = field(compare=False)
    hook: Hook = field(compare=False)
    body: bytes | None = field(compare=False)
    copy: bool = field(compare=False, default=False)


class WebhookHub:
    """Registered webhooks and their delivery workers."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.hooks: dict[str, Hook] = {}
        self.log: list[DeliveryRecord] = []
        self.rng = random.Random(f"{config.seed}:webhooks")
        self._seq = itertools.count(1)
        self._pk = itertools.count(1)
        self._queue: list[_Job] = []
        self._ready = threading.Condition(self.lock)
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self._http: httpx.Client | None = None
        self._busy = 0

    # -- CRUD ----------------------------------------------------------------------------

    def create(self, org_pk: str, entity: str, remote_url: str) -> Hook:
        """Register a webhook; starts the delivery workers on first use."""
        now = utc_now()
        with self.lock:
            hook = Hook(
                pk=str(next(self._pk)),
                org_pk=org_pk,
                entity=entity,
                remote_url=remote_url,
                token=secrets.token_hex(16),
                created_at=now,
                updated_at=now,
            )
            self.hooks[hook.pk] = hook
        self._start()
        return hook

    def of_org(self, org_pk: str) -> list[Hook]:
        """The org's webhooks in creation order."""
        with self.lock:
            return [h for h in self.hooks.values() if h.org_pk == org_pk]

    def get(self, org_pk: str, pk: str) -> Hook | None:
        """One webhook of the org, or None."""
        with self.lock:
            hook = self.hooks.get(pk)
            return hook if hook is not None and hook.org_pk == org_pk else None

    def delete(self, org_pk: str, pk: str) -> bool:
        """Remove a webhook (its queued deliveries are dropped)."""
        with self.lock:
            hook = self.hooks.get(pk)
            if hook is None or hook.org_pk != org_pk:
                return False
            del self.hooks[pk]
            return True

    def update(self, hook: Hook, remote_url: str | None) -> Hook:
        """PATCH: change remote_url; saving a webhook also lifts a suspension."""
        with self.lock:
            if remote_url is not None:
                hook.remote_url = remote_url
            hook.suspended_at = None
            hook.failures = 0
            hook.updated_at = utc_now()
        return hook

    # -- announcing changes ----------------------------------------------------------------

    def announce(self, org_pk: str, order_pk: str, method: str, body: bytes | None) -> None:
        """Queue deliveries of one change to every active `orders` webhook of the org."""
        cfg = self.config
        nested = None
        if body is not None:
            import json

            nested = json.loads(body).get("nested_updated_at")
        now = time.monotonic()
        with self.lock:
            hooks = [
                h
                for h in self.hooks.values()
                if h.org_pk == org_pk and h.entity == "orders" and h.suspended_at is None
            ]
            for hook in hooks:
                record = DeliveryRecord(next(self._seq), org_pk, order_pk, method, nested, hook.pk)
                self.log.append(record)
                if self.rng.random() < cfg.webhook_drop_rate:
                    record.fate = "dropped"
                    continue
                due = now + cfg.webhook_delay_ms / 1000
                if self.rng.random() < cfg.webhook_reorder_rate:
                    due += cfg.webhook_reorder_s
                heapq.heappush(self._queue, _Job(due, record.seq, record, hook, body))
                if self.rng.random() < cfg.webhook_duplicate_rate:
                    record.copies = 2
                    heapq.heappush(
                        self._queue, _Job(due + 0.01, record.seq, record, hook, body, copy=True)
                    )
            self._ready.notify_all()

    # -- delivering ------------------------------------------------------------------------

    def _start(self) -> None:
        with self.lock:
            if self._workers:
                return
            self._stopping = False
            self._http = httpx.Client(timeout=self.config.webhook_timeout_s)
            for n in range(max(1, self.config.webhook_workers)):
                worker = threading.Thread(
                    target=self._work, name=f"rc-sandbox-webhooks-{n}", daemon=True
                )
                self._workers.append(worker)
                worker.start()

    def stop(self) -> None:
        """Stop the delivery workers (queued deliveries are abandoned)."""
        with self.lock:
            self._stopping = True
            self._ready.notify_all()
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.join(5)
        if self._http is not None:
            self._http.close()
            self._http = None

    def pending(self) -> int:
        """Deliveries queued or waiting for a retry."""
        with self.lock:
            return len(self._queue)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is queued (True) or the timeout passes (False)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if not self._queue and not self._busy:
                    return True
            time.sleep(0.02)
        return False

    def _next_job(self) -> _Job | None:
        with self.lock:
            while not self._stopping:
                if self._queue:
                    wait = self._queue[0].due - time.monotonic()
                    if wait <= 0:
                        job = heapq.heappop(self._queue)
                        self._busy += 1
                        return job
                    self._ready.wait(min(wait, 0.5))
                else:
                    self._ready.wait(0.5)
            return None

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                self._deliver(job)
            finally:
                with self.lock:
                    self._busy -= 1

    def _deliver(self, job: _Job) -> None:
        hook, record, cfg = job.hook, job.record, self.config
        with self.lock:
            if hook.pk not in self.hooks or hook.suspended_at is not None:
                if record.fate == "queued":
                    record.fate = "suspended" if hook.suspended_at else "dropped"
                return
        url = f"{hook.remote_url.rstrip('/')}/{quote(record.order_pk, safe='')}"
        headers = {"Auth": hook.token}
        if job.body is not None:
            headers["Content-Type"] = "application/json"
        ok = False
        http = self._http
        try:
            if http is not None:
                response = http.request(record.method, url, content=job.body, headers=headers)
                ok = 200 <= response.status_code < 300
        except httpx.HTTPError:
            ok = False
        with self.lock:
            record.attempts += 1
            if ok:
                hook.failures = 0
                if record.acked is None:
                    record.acked = time.monotonic()
                record.fate = "delivered"
                return
            hook.failures += 1
            if hook.failures >= cfg.webhook_suspend_after:
                hook.suspended_at = utc_now()
                record.fate = "suspended"
                log.warning(
                    "sandbox webhook %s suspended after %d failures", hook.pk, hook.failures
                )
                return
            if record.attempts >= cfg.webhook_max_attempts and not job.copy:
                record.fate = "failed"
                return
            if job.copy:
                return  # the extra copy of a duplicated delivery is not retried
            wait = min(MAX_BACKOFF_S, cfg.webhook_backoff_s * 2 ** (record.attempts - 1))
            job.due = time.monotonic() + wait
            heapq.heappush(self._queue, job)
            self._ready.notify_all()
