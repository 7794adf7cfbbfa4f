"""Helpers of the webhook tests: a sandbox, a synced warehouse, a running receiver, registered hooks."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from support import make_settings

from rc_sandbox import SandboxConfig, SandboxServer
from rc_sync.engine import SyncEngine
from rc_sync.settings import Settings
from rc_sync.webhooks import service


@dataclass
class Hooked:
    """A sandbox whose changes are delivered to a running receiver over a synced warehouse."""

    server: SandboxServer
    settings: Settings
    target: Any
    base: str
    stop: threading.Event
    thread: threading.Thread

    def shutdown(self) -> None:
        """Stop the receiver (and its applier)."""
        self.stop.set()
        self.thread.join(30)


def start_receiver(
    settings: Settings, *, apply: bool = True
) -> tuple[str, threading.Event, threading.Thread]:
    """Run `webhooks serve` on a free port in a thread; returns (base url, stop event, thread)."""
    stop = threading.Event()
    ready = threading.Event()
    found: list[str] = []

    def on_ready(base: str) -> None:
        found.append(base)
        ready.set()

    thread = threading.Thread(
        target=service.serve,
        args=(settings,),
        kwargs={"host": "127.0.0.1", "port": 0, "apply": apply, "on_ready": on_ready, "stop": stop},
        daemon=True,
    )
    thread.start()
    assert ready.wait(30), "the receiver did not start"
    return found[0], stop, thread


def hooked_setup(target: Any, **knobs: Any) -> Hooked:
    """Sandbox + first sync + receiver + `register` for every org."""
    config = SandboxConfig(orgs=2, orders=knobs.pop("orders", 400), seed=11, control=True, **knobs)
    server = SandboxServer(config).start()
    settings = make_settings(server, target)
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
    base, stop, thread = start_receiver(settings)
    service.register(settings, base)
    return Hooked(server, settings, target, base, stop, thread)


def mutate_updates(server: SandboxServer, n: int, seed: int = 5) -> None:
    """`n` changes that keep every order alive (updates, addresses, quantities, new items)."""
    store = server.store
    rng = random.Random(seed)
    orgs = store.org_pks()
    for i in range(n):
        org = orgs[rng.randrange(len(orgs))]
        pks = store.order_pks(org)
        pk = pks[rng.randrange(len(pks))]
        order = store.get_order(org, pk)
        assert order is not None
        kind = i % 4
        if kind == 0:
            store.update_order(org, pk, message=f"change {i} ✓ '; DROP TABLE orders; --")
        elif kind == 1:
            store.change_address(org, pk, "ship_to", city=f"Zürich {i}")
        elif kind == 2 and order.boxes and order.boxes[0].items:
            item = order.boxes[0].items[0]
            store.set_item_quantity(org, pk, order.boxes[0].pk, item.pk, item.quantity + 1)
        elif order.boxes:
            store.add_item(org, pk, order.boxes[0].pk)
        else:
            store.add_box(org, pk)


def wait_applied(hooked: Hooked, timeout: float = 120.0) -> None:
    """Wait until the sandbox has nothing left to deliver and the receiver nothing to apply."""
    import time

    from warehouse import webhooks as wh
    from warehouse.db import make_engine

    assert hooked.server.hub.wait_idle(timeout), "sandbox deliveries did not finish"
    engine = make_engine(hooked.target.url, hooked.target.schema)
    try:
        end = time.monotonic() + timeout
        while wh.pending_events(engine, 1):
            assert time.monotonic() < end, "stored webhook events were not applied in time"
            time.sleep(0.05)
    finally:
        engine.dispose()


def percentile(values: list[float], share: float) -> float:
    """The `share` quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def event_rows(target: Any) -> list[dict[str, Any]]:
    """Every webhook_events row."""
    import sqlalchemy as sa

    from warehouse import models
    from warehouse.db import make_engine

    engine = make_engine(target.url, target.schema)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(models.webhook_events_table))]
    finally:
        engine.dispose()
