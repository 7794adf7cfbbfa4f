"""The receiver refuses what it must and stores verbatim what it accepts; never a 5xx, never a token in a log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from webhook_support import event_rows

from rc_sync.webhooks.receiver import build_receiver_app
from warehouse import migrate
from warehouse import webhooks as wh
from warehouse.db import make_engine

ORG, OTHER = "org1", "org2"
TOKEN, OTHER_TOKEN = "a" * 32, "b" * 32
PATH = f"/readycloud/{ORG}/orders"


def order_doc(pk: str = "o1", **fields: Any) -> dict[str, Any]:
    return {
        "url": f"/api/v2/orgs/{ORG}/orders/{pk}/",
        "nested_updated_at": "2026-11-29T10:00:00.000000Z",
        "boxes": [],
        **fields,
    }


@pytest.fixture
def engine(target: Any) -> Iterator[Any]:
    eng = make_engine(target.url, target.schema)
    migrate.upgrade(eng)
    wh.save_registration(
        eng, org_pk=ORG, webhook_url="/w/1/", entity="orders", remote_url="x", token=TOKEN
    )
    wh.save_registration(
        eng, org_pk=OTHER, webhook_url="/w/2/", entity="orders", remote_url="x", token=OTHER_TOKEN
    )
    yield eng
    eng.dispose()


@pytest.fixture
def client(engine: Any) -> Iterator[TestClient]:
    with TestClient(build_receiver_app(engine), raise_server_exceptions=False) as c:
        yield c


def test_auth_is_required_and_checked(client: TestClient, target: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps(order_doc())
    assert client.put(f"{PATH}/o1", content=body).status_code == 401
    assert client.put(f"{PATH}/o1", content=body, headers={"Auth": "wrong"}).status_code == 401
    assert client.put(f"{PATH}/o1", content=body, headers={"Auth": OTHER_TOKEN}).status_code == 401
    assert client.put(f"{PATH}/o1", content=body, headers={"Auth": ""}).status_code == 401
    assert event_rows(target) == []
    ok = client.put(f"{PATH}/o1", content=body, headers={"Auth": TOKEN})
    assert ok.status_code == 200
    assert len(event_rows(target)) == 1
    text = caplog.text
    assert TOKEN not in text and OTHER_TOKEN not in text
    assert "method=PUT order=o1 status=401" in text and "status=200" in text


def test_stored_tokens_are_hashes(engine: Any) -> None:
    import sqlalchemy as sa

    from warehouse import models

    with engine.connect() as conn:
        dumped = json.dumps(
            [list(r) for r in conn.execute(sa.select(models.webhook_registrations_table))],
            default=str,
        )
    assert TOKEN not in dumped and wh.token_digest(TOKEN) in dumped


def test_unknown_org_invalid_json_and_foreign_bodies_are_4xx(
    client: TestClient, target: Any
) -> None:
    auth = {"Auth": TOKEN}
    cases = [
        client.put("/readycloud/nope/orders/o1", content="{}", headers=auth),
        client.put(f"{PATH}/o1", content="{not json", headers=auth),
        client.put(f"{PATH}/o1", content="[1, 2]", headers=auth),
        client.put(f"{PATH}/o1", content='{"a": NaN}', headers=auth),
        client.put(f"{PATH}/o1", content=b"\xff\xfe", headers=auth),
        client.put(f"{PATH}/o1", content=json.dumps(order_doc(message="a\u0000b")), headers=auth),
        # a body about another org's order, or another order than the URL says
        client.put(
            f"{PATH}/o1",
            content=json.dumps({**order_doc(), "url": f"/api/v2/orgs/{OTHER}/orders/o1/"}),
            headers=auth,
        ),
        client.put(f"{PATH}/o1", content=json.dumps(order_doc("o2")), headers=auth),
        client.post(PATH, content=json.dumps({"message": "no url"}), headers=auth),
    ]
    statuses = [r.status_code for r in cases]
    assert statuses[0] == 404
    assert all(400 <= s < 500 for s in statuses), statuses
    assert all("detail" in r.json() for r in cases)
    assert event_rows(target) == []


def test_hostile_strings_are_stored_verbatim_and_loaded(client: TestClient, target: Any) -> None:
    nasty = "Robert'); DROP TABLE orders;-- ∑ 𝄞 ‮ \\u0000 \" ` $1 %s ?"
    doc = order_doc("o'; --", message=nasty, po_number="漢字 and emoji 🚚")
    doc["url"] = "/api/v2/orgs/org1/orders/o%27%3B%20--/"
    response = client.put(f"{PATH}/o'; --", content=json.dumps(doc), headers={"Auth": TOKEN})
    assert response.status_code == 200, response.text
    [row] = event_rows(target)
    assert row["body"] == doc and row["order_pk"] == "o'; --"
    post = client.post(
        PATH, content=json.dumps(order_doc("o3", message=nasty)), headers={"Auth": TOKEN}
    )
    assert post.status_code == 200
    from support import fetch_rows

    from rc_sync.webhooks.applier import WebhookApplier

    applier = WebhookApplier(make_engine(target.url, target.schema))
    applier.drain()
    orders = {r["order_pk"]: r for r in fetch_rows(target, "orders")}
    assert orders["o'; --"]["message"] == nasty
    assert orders["o3"]["message"] == nasty


def test_delete_needs_no_body(client: TestClient, target: Any) -> None:
    assert client.delete(f"{PATH}/o1", headers={"Auth": TOKEN}).status_code == 200
    r = client.request("DELETE", f"{PATH}/o2", content="garbage", headers={"Auth": TOKEN})
    assert r.status_code == 200
    assert sorted(e["order_pk"] for e in event_rows(target)) == ["o1", "o2"]


def _asgi_put(app: Any, chunks: int, chunk_size: int, declared: int | None) -> tuple[int, int]:
    """PUT a streamed body straight through ASGI; returns (status, chunks the app pulled)."""
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        more = pulled < chunks
        return {"type": "http.request", "body": b"x" * chunk_size, "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    headers = [(b"auth", TOKEN.encode())]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": f"{PATH}/o1",
        "raw_path": f"{PATH}/o1".encode(),
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(app(scope, receive, send))
    return status, pulled


def test_a_50_mb_body_is_refused_without_being_read(engine: Any, target: Any) -> None:
    app = build_receiver_app(engine)
    mb = 1024 * 1024
    # streamed without a length: refused as soon as it passes 5 MB
    status, pulled = _asgi_put(app, chunks=50, chunk_size=mb, declared=None)
    assert status == 413 and pulled <= 6
    # announced length: refused before a byte of it is read
    status, pulled = _asgi_put(app, chunks=50, chunk_size=mb, declared=50 * mb)
    assert status == 413 and pulled == 0
    assert event_rows(target) == []


def test_storage_failure_is_503_not_500(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(wh, "insert_event", broken)
    with TestClient(build_receiver_app(engine), raise_server_exceptions=False) as c:
        r = c.put(f"{PATH}/o1", content=json.dumps(order_doc()), headers={"Auth": TOKEN})
    assert r.status_code == 503
