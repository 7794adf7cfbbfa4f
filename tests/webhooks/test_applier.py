"""The applier is idempotent and order-safe; stubs cost one counted detail GET; retention prunes."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import fetch_rows
from webhook_support import event_rows

from rc_extract.client import ReadyCloudClient
from rc_sandbox import SandboxConfig, SandboxServer
from rc_sync.webhooks.applier import WebhookApplier, needs_detail
from warehouse import migrate
from warehouse import webhooks as wh
from warehouse.db import make_engine


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(orgs=1, orders=20, seed=4)) as server:
        yield server


@pytest.fixture
def engine(target: Any) -> Iterator[Any]:
    eng = make_engine(target.url, target.schema)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def put(
    engine: Any, doc: dict[str, Any], *, at: datetime | None = None, method: str = "PUT"
) -> int:
    """Store a delivery as the receiver would."""
    org = doc["url"].split("/")[4]
    pk = doc["url"].split("/")[6]
    raw = json.dumps(doc).encode()
    return wh.insert_event(
        engine,
        {
            "org_pk": org,
            "entity": "orders",
            "method": method,
            "object_url": doc["url"],
            "order_pk": pk,
            "body": doc if method != "DELETE" else None,
            "content_hash": hashlib.sha256(raw).hexdigest(),
            "received_at": at or datetime.now(UTC),
            "nested_updated_at": None,
        },
    )


def version(doc: dict[str, Any], minutes: int, message: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["nested_updated_at"] = f"2030-01-01T00:{minutes:02d}:00.000000Z"
    out["message"] = message
    return out


def orders_by_pk(target: Any) -> dict[str, dict[str, Any]]:
    return {r["order_pk"]: r for r in fetch_rows(target, "orders", live_only=False)}


def test_older_versions_and_duplicates_never_overwrite(
    sandbox: SandboxServer, engine: Any, target: Any
) -> None:
    doc = sandbox.store.orders_json(sandbox.store.org_pks()[0])[0]
    pk = doc["url"].split("/")[6]
    v1, v2 = version(doc, 1, "first"), version(doc, 2, "second")
    applier = WebhookApplier(engine)
    # reordered within one batch
    put(engine, v2)
    put(engine, v1)
    put(engine, v2)
    applier.drain()
    assert orders_by_pk(target)[pk]["message"] == "second"
    # reordered across batches, and duplicates later
    put(engine, v1)
    put(engine, v2)
    applier.drain()
    assert orders_by_pk(target)[pk]["message"] == "second"
    assert applier.report.orders_new == 1 and applier.report.orders_updated == 0
    assert all(e["applied_at"] is not None for e in event_rows(target))


def test_delete_then_reordered_older_put_stays_deleted_until_a_newer_put(
    sandbox: SandboxServer, engine: Any, target: Any
) -> None:
    doc = sandbox.store.orders_json(sandbox.store.org_pks()[0])[0]
    pk = doc["url"].split("/")[6]
    v1 = version(doc, 1, "before delete")
    applier = WebhookApplier(engine)
    put(engine, v1, at=datetime(2030, 1, 1, 0, 1, 30, tzinfo=UTC))
    applier.drain()
    put(engine, v1, method="DELETE", at=datetime(2030, 1, 1, 0, 2, tzinfo=UTC))
    applier.drain()
    assert orders_by_pk(target)[pk]["deleted_at"] == datetime(2030, 1, 1, 0, 2, tzinfo=UTC)
    put(engine, v1)  # a late duplicate of the version before the deletion
    applier.drain()
    assert orders_by_pk(target)[pk]["deleted_at"] is not None
    put(engine, version(doc, 5, "back again"))  # newer than the deletion
    applier.drain()
    row = orders_by_pk(target)[pk]
    assert row["deleted_at"] is None and row["message"] == "back again"


def test_delete_before_the_first_put_wins_over_an_older_put(
    sandbox: SandboxServer, engine: Any, target: Any
) -> None:
    doc = sandbox.store.orders_json(sandbox.store.org_pks()[0])[1]
    pk = doc["url"].split("/")[6]
    put(engine, doc, method="DELETE", at=datetime(2030, 1, 1, 0, 2, tzinfo=UTC))
    put(engine, version(doc, 1, "older than the delete"))
    WebhookApplier(engine).drain()
    assert pk not in orders_by_pk(target)


def test_stub_bodies_cost_one_counted_detail_get(
    sandbox: SandboxServer, engine: Any, target: Any
) -> None:
    org = sandbox.store.org_pks()[0]
    docs = sandbox.store.orders_json(org)
    stub = {"url": docs[2]["url"]}
    unexpanded = {**docs[3], "boxes": [{"url": b["url"]} for b in docs[3]["boxes"]]}
    assert needs_detail(stub) and needs_detail(unexpanded) and not needs_detail(docs[4])

    def client() -> ReadyCloudClient:
        return ReadyCloudClient(sandbox.base_url, sandbox.token)

    before = sandbox.stats.snapshot()["detail"]
    applier = WebhookApplier(engine, client_factory=client)
    put(engine, stub)
    put(engine, unexpanded)
    put(engine, docs[4])
    applier.drain()
    applier.close()
    assert sandbox.stats.snapshot()["detail"] - before == 2
    assert applier.report.detail_requests == 2
    spent = sorted(e["requests"] for e in event_rows(target))
    assert spent == [0, 1, 1]
    rows = orders_by_pk(target)
    for doc in docs[2:5]:
        pk = doc["url"].split("/")[6]
        assert rows[pk]["nested_updated_at"] is not None
    boxes = {(r["order_pk"], r["box_pk"]) for r in fetch_rows(target, "boxes")}
    assert len(boxes) == sum(len(d["boxes"]) for d in docs[2:5])


def test_applying_the_same_events_twice_changes_nothing(
    sandbox: SandboxServer, engine: Any, target: Any
) -> None:
    docs = sandbox.store.orders_json(sandbox.store.org_pks()[0])[:5]
    for doc in docs:
        put(engine, doc)
    first = WebhookApplier(engine)
    first.drain()
    snapshot = {t: fetch_rows(target, t) for t in ("orders", "boxes", "items")}
    # a crash after loading but before marking applied: the events are applied again
    import sqlalchemy as sa

    with engine.begin() as conn:
        conn.execute(sa.update(wh.EVENTS).values(applied_at=None, outcome=None))
    again = WebhookApplier(engine)
    again.drain()
    assert again.report.orders_unchanged == 5 and again.report.orders_updated == 0
    for table, rows in snapshot.items():
        key = lambda r: tuple(str(v) for k, v in sorted(r.items()) if k != "synced_at")  # noqa: E731
        assert sorted(map(key, fetch_rows(target, table))) == sorted(map(key, rows))


def test_retention_prunes_applied_events_only(
    sandbox: SandboxServer, engine: Any, target: Any
) -> None:
    docs = sandbox.store.orders_json(sandbox.store.org_pks()[0])[:3]
    old = datetime.now(UTC) - timedelta(days=8)
    put(engine, docs[0], at=old)
    put(engine, docs[1], at=old)
    WebhookApplier(engine).drain()
    put(engine, docs[2], at=old)  # pending: kept whatever its age
    applier = WebhookApplier(engine, retention=timedelta(days=7))
    assert applier.prune_if_due() == 2
    [left] = event_rows(target)
    assert left["applied_at"] is None


def test_stubs_without_a_token_or_api_are_left_to_the_next_poll(
    sandbox: SandboxServer, engine: Any, target: Any
) -> None:
    docs = sandbox.store.orders_json(sandbox.store.org_pks()[0])
    put(engine, {"url": docs[5]["url"]})  # no token: nothing to fetch with
    put(engine, docs[6])  # a full body behind it is not held up
    applier = WebhookApplier(engine)
    applier.drain()
    outcomes = sorted(e["outcome"] for e in event_rows(target))
    assert outcomes == ["applied", "unfetched"]
    assert set(orders_by_pk(target)) == {docs[6]["url"].split("/")[6]}

    def unreachable() -> ReadyCloudClient:
        return ReadyCloudClient("http://127.0.0.1:9", "t", deadline=0.5, timeout=0.2)

    put(engine, {"url": docs[7]["url"]})
    failing = WebhookApplier(engine, client_factory=unreachable)
    failing.drain()
    failing.close()
    assert sorted(e["outcome"] for e in event_rows(target)) == ["applied", "unfetched", "unfetched"]


def _history_counts(target: Any) -> dict[str, int]:
    return {
        t: len(fetch_rows(target, t, live_only=False))
        for t in ("order_history", "box_history", "item_history")
    }


@pytest.mark.parametrize("history", [False, True])
def test_rc_sync_history_setting_governs_webhook_versions_and_deletions(
    sandbox: SandboxServer, engine: Any, target: Any, history: bool
) -> None:
    """`rc-sync webhooks apply` with RC_SYNC_HISTORY=off writes no history rows (on: it does)."""
    from support import make_settings

    from rc_sync.webhooks.service import apply_once

    docs = sandbox.store.orders_json(sandbox.store.org_pks()[0])[:3]
    for doc in docs:
        put(engine, doc)
    settings = make_settings(sandbox, target, history=history)
    assert apply_once(settings).orders_loaded == 3
    put(engine, docs[0], method="DELETE", at=datetime(2031, 1, 1, tzinfo=UTC))
    assert apply_once(settings).orders_deleted == 1
    counts = _history_counts(target)
    if history:
        assert counts["order_history"] == 3 and counts["box_history"] > 0
    else:
        assert counts == {"order_history": 0, "box_history": 0, "item_history": 0}
