"""The HTTP surface: envelope, pagination, expand/only, filters, ordering, auth, faults, control."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rc_common.timefmt import parse_api_datetime
from rc_sandbox import SandboxConfig, SandboxServer

Factory = Callable[..., SandboxServer]
TOKEN = "sandbox-token"


def client_for(server: SandboxServer, **kwargs: Any) -> httpx.Client:
    """An authenticated httpx client for `server`."""
    kwargs.setdefault("timeout", 10)
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.token}"}, **kwargs
    )


def walk(
    client: httpx.Client, url: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every page of a listing, following `next` (absolute or host-relative)."""
    pages = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if not page["next"]:
            return pages
        response = client.get(page["next"])


def org_pk(server: SandboxServer, index: int = 0) -> str:
    """The pk of the org number `index`."""
    return server.store.org_pks()[index]


def orders_path(server: SandboxServer, index: int = 0) -> str:
    """The orders list path of the org number `index`."""
    return f"/api/v2/orgs/{server.store.org_pks()[index]}/orders/"


# ---------------------------------------------------------------- server lifecycle


def test_start_and_stop_on_free_ports_twice() -> None:
    seen = []
    for _ in range(2):
        server = SandboxServer(SandboxConfig(orders=10))
        with server:
            assert server.running
            seen.append(server.base_url)
            response = httpx.get(f"{server.base_url}/api/v2/orgs/", params={"bearer_token": TOKEN})
            assert response.status_code == 200
        assert not server.running
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{seen[-1]}/api/v2/orgs/", timeout=1)
    server.stop()  # idempotent
    assert all(url.startswith("http://127.0.0.1:") for url in seen)


# ---------------------------------------------------------------- envelope and pagination


def test_orgs_list_and_detail(api: httpx.Client, shared_sandbox: SandboxServer) -> None:
    page = api.get("/api/v2/orgs/").json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 2 and page["next"] is None
    urls = [org["url"] for org in page["results"]]
    assert urls == [f"/api/v2/orgs/{pk}/" for pk in shared_sandbox.store.org_pks()]
    detail = api.get(urls[0]).json()
    assert detail == page["results"][0]


@pytest.mark.parametrize("absolute", [True, False])
def test_pagination_links_clamp_and_last_page(sandbox_factory: Factory, absolute: bool) -> None:
    server = sandbox_factory(
        orders=100, orgs=1, page_cap=30, default_limit=7, absolute_next=absolute
    )
    path = orders_path(server)
    with client_for(server) as client:
        first = client.get(path, params={"expand": "boxes,items", "junk": "1"}).json()
        assert first["count"] == 100 and len(first["results"]) == 7 and first["previous"] is None
        nxt = first["next"]
        assert nxt.startswith(server.base_url if absolute else "/api/v2/")
        query = parse_qs(urlsplit(nxt).query)
        assert query == {"expand": ["boxes,items"], "junk": ["1"], "limit": ["7"], "offset": ["7"]}
        assert urlsplit(nxt).query.startswith("expand=boxes%2Citems&junk=1&limit=7&offset=7")

        pages = walk(client, path, {"limit": 1000})  # clamped to page_cap, silently
        assert [len(p["results"]) for p in pages] == [30, 30, 30, 10]
        assert all(p["count"] == 100 for p in pages)
        assert pages[-1]["next"] is None
        last_prev = parse_qs(urlsplit(pages[-1]["previous"]).query)
        assert last_prev["limit"] == ["30"] and last_prev["offset"] == ["60"]
        second_prev = parse_qs(urlsplit(pages[1]["previous"]).query)
        assert second_prev == {"limit": ["30"]}  # offset dropped, like DRF
        urls = [o["url"] for p in pages for o in p["results"]]
        assert len(set(urls)) == 100

        beyond = client.get(path, params={"offset": 500}).json()
        assert beyond["results"] == [] and beyond["count"] == 100 and beyond["next"] is None
        for bad in ("abc", "0", "-3"):
            assert len(client.get(path, params={"limit": bad}).json()["results"]) == 7
        assert client.get(path, params={"offset": "x"}).json()["previous"] is None


def test_bearer_token_query_param_is_echoed_in_next(shared_sandbox: SandboxServer) -> None:
    page = httpx.get(
        shared_sandbox.base_url + orders_path(shared_sandbox),
        params={"bearer_token": TOKEN, "limit": 5},
    ).json()
    assert parse_qs(urlsplit(page["next"]).query)["bearer_token"] == [TOKEN]
    assert httpx.get(page["next"]).status_code == 200


# ---------------------------------------------------------------- representations


def test_expand_only_and_stubs(api: httpx.Client, shared_sandbox: SandboxServer) -> None:
    path = orders_path(shared_sandbox)
    params = {"limit": 50}
    full = api.get(path, params={**params, "expand": "boxes,items"}).json()["results"]
    boxes_only = api.get(path, params={**params, "expand": "boxes"}).json()["results"]
    stubs = api.get(path, params=params).json()["results"]
    items_only = api.get(path, params={**params, "expand": "items"}).json()["results"]
    compact = api.get(path, params={**params, "only": "url,nested_updated_at"}).json()["results"]
    only_url = api.get(path, params={**params, "only": "url,bogus"}).json()["results"]
    ignored = api.get(path, params={**params, "only": "bogus"}).json()["results"]
    assert stubs == items_only == ignored
    assert [o["url"] for o in full] == [o["url"] for o in stubs] == [o["url"] for o in compact]
    for f, b, s, c, u in zip(full, boxes_only, stubs, compact, only_url, strict=True):
        assert c == {"url": f["url"], "nested_updated_at": f["nested_updated_at"]}
        assert u == {"url": f["url"]}
        assert s["boxes"] == [{"url": box["url"]} for box in f["boxes"]]
        for fb, bb in zip(f["boxes"], b["boxes"], strict=True):
            assert bb["items"] == [{"url": item["url"]} for item in fb["items"]]
            assert {k: v for k, v in bb.items() if k != "items"} == {
                k: v for k, v in fb.items() if k != "items"
            }


def test_detail_endpoints(api: httpx.Client, shared_sandbox: SandboxServer) -> None:
    path = orders_path(shared_sandbox)
    order = next(
        o
        for o in api.get(path, params={"expand": "boxes,items", "limit": 50}).json()["results"]
        if o["boxes"] and o["boxes"][0]["items"]
    )
    assert api.get(order["url"], params={"expand": "boxes,items"}).json() == order
    stub = api.get(order["url"]).json()
    assert stub["boxes"] == [{"url": b["url"]} for b in order["boxes"]]
    box = order["boxes"][0]
    plain_box = api.get(box["url"]).json()
    assert plain_box["items"] == [{"url": i["url"]} for i in box["items"]]
    assert api.get(box["url"], params={"expand": "items"}).json() == box
    item = box["items"][0]
    assert api.get(item["url"]).json() == item
    boxes = api.get(order["url"] + "boxes/").json()
    assert boxes["count"] == len(order["boxes"]) and boxes["results"][0] == plain_box
    items = api.get(box["url"] + "items/").json()
    assert items["results"] == box["items"]
    for missing in (order["url"] + "boxes/nope/", box["url"] + "items/nope/", path + "nope/"):
        response = api.get(missing)
        assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    assert api.get("/api/v2/nothing-here/").json() == {"detail": "Not found."}
    assert api.post(path).status_code == 405


def test_unicode_is_sent_as_utf8(api: httpx.Client, shared_sandbox: SandboxServer) -> None:
    response = api.get(orders_path(shared_sandbox), params={"expand": "boxes,items", "limit": 100})
    assert response.headers["content-type"].startswith("application/json")
    assert "\\u" not in response.text  # not escaped: raw UTF-8 like DRF's UNICODE_JSON
    assert any(ord(ch) > 0xFFFF for ch in response.text)


# ---------------------------------------------------------------- filters and ordering


def _all(client: httpx.Client, path: str, **params: str) -> list[dict]:
    return [o for page in walk(client, path, {"limit": 100, **params}) for o in page["results"]]


@pytest.mark.parametrize(
    "field", ["created_at", "updated_at", "nested_updated_at", "ordered_at", "printed_at"]
)
def test_datetime_filters(api: httpx.Client, shared_sandbox: SandboxServer, field: str) -> None:
    path = orders_path(shared_sandbox)
    everything = _all(api, path, expand="boxes")
    # poisoned values (junk in the JSON, a real value in the "database") are left out
    stamps = {o["url"]: _maybe_dt(o[field]) for o in everything if o[field]}
    known = {url for url, value in stamps.items() if value is not None}
    values = sorted(value for value in stamps.values() if value is not None)
    pivot = values[len(values) // 2]
    text = pivot.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def expect(test: Callable[[datetime], bool]) -> set[str]:
        return {url for url, value in stamps.items() if value is not None and test(value)}

    for lookup, test in (
        ("gte", lambda v: v >= pivot),
        ("gt", lambda v: v > pivot),
        ("lte", lambda v: v <= pivot),
        ("lt", lambda v: v < pivot),
    ):
        got = _all(api, path, **{f"{field}__{lookup}": text})
        assert {o["url"] for o in got} & known == expect(test), lookup
        assert all(o[field] is not None for o in got)
    both = _all(api, path, **{f"{field}__gte": text, f"{field}__lt": "2099-01-01"})
    assert {o["url"] for o in both} & known == expect(lambda v: v >= pivot)


def _maybe_dt(text: str) -> datetime | None:
    try:
        return parse_api_datetime(text)
    except ValueError:
        return None


def test_filter_value_formats_and_errors(api: httpx.Client, shared_sandbox: SandboxServer) -> None:
    path = orders_path(shared_sandbox)
    day = api.get(path, params={"created_at__gte": "2024-01-01"}).json()["count"]
    same = api.get(path, params={"created_at__gte": "2024-01-01T00:00:00"}).json()["count"]
    offset = api.get(path, params={"created_at__gte": "2024-01-01T02:00:00+02:00"}).json()["count"]
    assert day == same == offset > 0
    future = api.get(path, params={"nested_updated_at__gte": "2999-01-01T00:00:00Z"}).json()
    assert future["count"] == 0 and future["results"] == []
    response = api.get(path, params={"nested_updated_at__gte": "yesterday", "updated_at__lt": "x"})
    assert response.status_code == 400
    assert response.json() == {
        "nested_updated_at__gte": ["Enter a valid date/time."],
        "updated_at__lt": ["Enter a valid date/time."],
    }
    assert api.get(path, params={"nested_updated_at__gte": ""}).status_code == 200
    total = api.get(path).json()["count"]
    assert (
        api.get(path, params={"nested_updated_at__since": "x", "q": "abc"}).json()["count"] == total
    )


def test_primary_id_and_status_filters(api: httpx.Client, shared_sandbox: SandboxServer) -> None:
    path = orders_path(shared_sandbox)
    everything = _all(api, path)
    target = everything[17]
    got = api.get(path, params={"primary_id": target["primary_id"]}).json()["results"]
    assert [o["url"] for o in got] == [
        o["url"] for o in everything if o["primary_id"] == target["primary_id"]
    ]
    for value in ("pending,refunded", "pending|refunded", " pending | refunded "):
        got = _all(api, path, billing_status__in=value)
        want = [o["url"] for o in everything if o["billing"]["status"] in ("pending", "refunded")]
        assert [o["url"] for o in got] == want
    shipped = _all(api, path, shipping_status__in="shipped")
    assert shipped and all(o["shipping"]["status"] == "shipped" for o in shipped)


@pytest.mark.parametrize(
    "ordering",
    ["nested_updated_at", "-nested_updated_at", "created_at", "-updated_at", "ordered_at"],
)
def test_ordering_is_total_and_stable(
    api: httpx.Client, shared_sandbox: SandboxServer, ordering: str
) -> None:
    path = orders_path(shared_sandbox)
    got = _all(api, path, ordering=ordering)
    field = ordering.lstrip("-")
    null = datetime.min.replace(tzinfo=UTC)
    # poisoned values (junk in the JSON) are left out of the order check
    keys = [
        (_maybe_dt(o[field]) if o[field] else null, o["url"].split("/")[-2])
        for o in got
        if not o[field] or _maybe_dt(o[field])
    ]
    assert keys == sorted(keys, reverse=ordering.startswith("-"))  # type: ignore[type-var]
    assert (
        len({o["url"] for o in got})
        == len(got)
        == shared_sandbox.store.order_count(org_pk(shared_sandbox))
    )
    again = _all(api, path, ordering=ordering)
    assert [o["url"] for o in again] == [o["url"] for o in got]


def test_default_ordering_and_invalid_ordering(
    api: httpx.Client, shared_sandbox: SandboxServer
) -> None:
    path = orders_path(shared_sandbox)
    default = [o["url"] for o in _all(api, path)]
    assert [o["url"] for o in _all(api, path, ordering="bogus")] == default
    pks = shared_sandbox.store.order_pks(shared_sandbox.store.org_pks()[0])
    assert default == [f"{path}{pk}/" for pk in pks]


def test_filters_and_ordering_switched_off(sandbox_factory: Factory) -> None:
    server = sandbox_factory(filters=False, ordering=False)
    path = orders_path(server)
    with client_for(server) as client:
        total = client.get(path).json()["count"]
        ignored = client.get(
            path, params={"nested_updated_at__gte": "2999-01-01", "created_at__lt": "garbage"}
        )
        assert ignored.status_code == 200 and ignored.json()["count"] == total
        default = [o["url"] for o in _all(client, path)]
        assert [o["url"] for o in _all(client, path, ordering="-nested_updated_at")] == default
        server.config.filters = True  # knobs apply on the next request
        assert (
            client.get(path, params={"nested_updated_at__gte": "2999-01-01"}).json()["count"] == 0
        )


# ---------------------------------------------------------------- auth


def test_auth_errors(shared_sandbox: SandboxServer) -> None:
    base = shared_sandbox.base_url
    org = shared_sandbox.store.org_pks()[0]
    url = f"{base}/api/v2/orgs/{org}/orders/"
    none = httpx.get(url)
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == 'Bearer realm=""'
    assert none.json()["error"] == "invalid_token" and none.json()["error_description"]
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid_token", "error_description": "Token doesn't exist"}
    assert wrong.headers["www-authenticate"].startswith('Bearer realm=""')
    for header in (f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer   {TOKEN}"):
        assert httpx.get(url, headers={"Authorization": header}).status_code == 200
    assert httpx.get(url, params={"bearer_token": TOKEN}).status_code == 200
    header_wins = httpx.get(
        url, params={"bearer_token": TOKEN}, headers={"Authorization": "Bearer bad"}
    )
    assert header_wins.status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Token {TOKEN}"}).status_code == 401
    forbidden = httpx.get(
        f"{base}/api/v2/orgs/someone-else/orders/", params={"bearer_token": TOKEN}
    )
    assert forbidden.status_code == 403 and set(forbidden.json()) == {"detail"}
    missing = httpx.get(url + "zzzzzzz/", params={"bearer_token": TOKEN})
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_token_expires_after_n_requests(sandbox_factory: Factory) -> None:
    server = sandbox_factory(fail_auth_after=3)
    with client_for(server) as client:
        statuses = [client.get("/api/v2/orgs/").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 401, 401]
        body = client.get("/api/v2/orgs/").json()
        # the same body as examples/error_401_expired_token.json
        assert body == {"error": "invalid_token", "error_description": "Token is expired"}


# ---------------------------------------------------------------- faults and latency


@pytest.mark.parametrize(
    "kind", ["429", "500", "502", "503", "504", "truncated", "garbage", "timeout"]
)
def test_each_fault_kind(sandbox_factory: Factory, kind: str) -> None:
    server = sandbox_factory(fault_rate=1.0, fault_kinds=(kind,), retry_after_s=3, timeout_s=0.6)
    path = orders_path(server)
    with client_for(server, timeout=0.3) as client:
        if kind == "timeout":
            with pytest.raises(httpx.ReadTimeout):
                client.get(path)
            with client_for(server, timeout=5) as patient:
                started = time.perf_counter()
                assert patient.get(path).status_code == 200
                assert time.perf_counter() - started >= 0.5
        else:
            response = client.get(path)
            if kind == "429":
                assert response.status_code == 429 and response.headers["retry-after"] == "3"
                assert "throttled" in response.json()["detail"]
            elif kind.isdigit():
                assert response.status_code == int(kind)
                assert response.headers["content-type"].startswith("text/html")
            else:
                assert response.status_code == 200
                with pytest.raises(ValueError):  # JSONDecodeError or UnicodeDecodeError
                    json.loads(response.content)
    assert server.stats.faults[kind] >= 1
    server.config.fault_rate = 0.0
    with client_for(server) as client:
        assert client.get(path).status_code == 200


def test_fault_rate_is_roughly_honoured(sandbox_factory: Factory) -> None:
    server = sandbox_factory(fault_rate=0.3, fault_kinds=("500", "503"))
    with client_for(server) as client:
        statuses = [client.get("/api/v2/orgs/").status_code for _ in range(200)]
    faults = sum(s >= 500 for s in statuses)
    assert 30 <= faults <= 90
    assert server.stats.faults_total == faults
    assert server.stats.snapshot()["statuses"]["200"] == 200 - faults


def test_latency(sandbox_factory: Factory) -> None:
    server = sandbox_factory(latency_ms=150)
    with client_for(server) as client:
        started = time.perf_counter()
        client.get("/api/v2/orgs/")
        assert time.perf_counter() - started >= 0.14
        server.config.latency_ms = 0
        started = time.perf_counter()
        client.get("/api/v2/orgs/")
        assert time.perf_counter() - started < 0.14


def test_stats_count_request_kinds(sandbox_factory: Factory) -> None:
    server = sandbox_factory()
    path = orders_path(server)
    with client_for(server) as client:
        client.get("/api/v2/orgs/")
        first = client.get(path, params={"expand": "boxes,items"}).json()["results"][0]
        client.get(path, params={"only": "url,nested_updated_at"})
        client.get(first["url"])
        client.get(first["boxes"][0]["url"] if first["boxes"] else first["url"])
    snap = server.stats.snapshot()
    assert (snap["orgs"], snap["list"], snap["compact"], snap["detail"]) == (1, 1, 1, 2)
    assert snap["requests"] == 5


# ---------------------------------------------------------------- mutations over HTTP


def test_mutate_every_shifts_pages(sandbox_factory: Factory) -> None:
    server = sandbox_factory(orders=200, orgs=1, mutate_every=2)
    path = orders_path(server)
    with client_for(server) as client:
        for _ in range(6):
            client.get(path, params={"only": "url,nested_updated_at", "limit": 10})
    assert server.stats.mutations == 3
    assert server.store.mutations == 3


def test_mutations_change_what_lists_return(sandbox_factory: Factory) -> None:
    server = sandbox_factory(orders=50, orgs=1)
    path = orders_path(server)
    org = server.store.org_pks()[0]
    with client_for(server) as client:
        newest = client.get(path, params={"ordering": "-nested_updated_at", "limit": 1}).json()
        before = newest["results"][0]["nested_updated_at"]
        victim = server.store.order_pks(org)[10]
        server.store.update_order(org, victim, message="edited")
        after = client.get(
            path, params={"ordering": "-nested_updated_at", "limit": 1, "expand": "boxes"}
        ).json()
        top = after["results"][0]
        assert top["url"].endswith(f"/{victim}/") and top["message"] == "edited"
        assert parse_api_datetime(top["nested_updated_at"]) > parse_api_datetime(before)
        since = client.get(path, params={"nested_updated_at__gt": before}).json()
        assert since["count"] == 1
        server.store.delete_order(org, victim)
        assert client.get(f"{path}{victim}/").status_code == 404
        assert client.get(path).json()["count"] == 49


def test_control_endpoints(sandbox_factory: Factory) -> None:
    off = sandbox_factory(control=False)
    with client_for(off) as client:
        assert client.get("/_sandbox/stats").status_code == 404
        assert client.post("/_sandbox/mutate", json={}).status_code == 404
    server = sandbox_factory(orders=30, orgs=1, control=True)
    org = server.store.org_pks()[0]
    path = orders_path(server)
    with client_for(server) as client:
        created = client.post("/_sandbox/orders/create", json={"org": org}).json()["order"]
        assert client.get(f"{path}{created}/").status_code == 200
        ok = client.post(
            "/_sandbox/orders/update",
            json={
                "org": org,
                "order": created,
                "fields": {"message": "via control", "billing_total": "1.00 USD"},
            },
        )
        assert ok.status_code == 200, ok.text
        doc = client.get(f"{path}{created}/").json()
        assert doc["message"] == "via control" and doc["billing"]["total"] == "1.00 USD"
        box = client.post(
            "/_sandbox/boxes/add", json={"org": org, "order": created, "items": 2}
        ).json()["box"]
        item = client.post(
            "/_sandbox/items/add", json={"org": org, "order": created, "box": box}
        ).json()["item"]
        client.post(
            "/_sandbox/items/update",
            json={
                "org": org,
                "order": created,
                "box": box,
                "item": item,
                "fields": {"quantity": 9},
            },
        )
        client.post(
            "/_sandbox/boxes/update",
            json={"org": org, "order": created, "box": box, "fields": {"weight": "3 lb"}},
        )
        client.post(
            "/_sandbox/addresses/update",
            json={"org": org, "order": created, "role": "ship_from", "fields": {"city": "Oslo"}},
        )
        doc = client.get(f"{path}{created}/", params={"expand": "boxes,items"}).json()
        new_box = next(b for b in doc["boxes"] if b["url"].endswith(f"/{box}/"))
        assert new_box["weight"] == "3 lb" and len(new_box["items"]) == 3
        assert [i["quantity"] for i in new_box["items"] if i["url"].endswith(f"/{item}/")] == [9]
        assert doc["shipping"]["ship_from"]["city"] == "Oslo"
        client.post(
            "/_sandbox/items/remove", json={"org": org, "order": created, "box": box, "item": item}
        )
        client.post("/_sandbox/boxes/remove", json={"org": org, "order": created, "box": box})
        assert client.get(f"{path}{created}/boxes/{box}/").status_code == 404
        assert len(client.post("/_sandbox/mutate", json={"count": 4}).json()["mutations"]) == 4
        assert (
            client.post("/_sandbox/orders/delete", json={"org": org, "order": created}).status_code
            == 200
        )
        assert client.get(f"{path}{created}/").status_code == 404
        assert (
            client.post("/_sandbox/orders/delete", json={"org": org, "order": created}).status_code
            == 404
        )
        assert client.post("/_sandbox/orders/update", json={"org": org}).status_code == 400
        bad = client.post(
            "/_sandbox/orders/update",
            json={"org": org, "order": server.store.order_pks(org)[0], "fields": {"pk": "x"}},
        )
        assert bad.status_code == 400
        knobs = client.post("/_sandbox/config", json={"page_cap": 5}).json()
        assert knobs["page_cap"] == 5 and "token" not in knobs
        assert len(client.get(path, params={"limit": 50}).json()["results"]) == 5
        assert client.post("/_sandbox/config", json={"orders": 5}).status_code == 400
        stats = client.get("/_sandbox/stats").json()
        assert stats["orders"] == server.store.order_count() and stats["store_mutations"] >= 10


def test_serve_forever_reports_its_url_and_stops_on_request() -> None:
    import threading

    from rc_sandbox import serve_forever

    ready: list[str] = []
    listening = threading.Event()
    stop = threading.Event()

    def on_ready(url: str) -> None:
        ready.append(url)
        listening.set()

    thread = threading.Thread(
        target=serve_forever,
        args=(SandboxConfig(orders=5, token="t0k"),),
        kwargs={"on_ready": on_ready, "stop": stop},
        daemon=True,
    )
    thread.start()
    assert listening.wait(10)
    response = httpx.get(f"{ready[0]}/api/v2/orgs/", headers={"Authorization": "Bearer t0k"})
    assert response.status_code == 200 and response.json()["count"] == 2
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
