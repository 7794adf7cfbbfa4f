"""ReadyCloudClient: transport security, auth, pagination (links, clamps, concurrency), operations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rc_extract.client import ReadyCloudClient, strip_token, with_query
from rc_extract.errors import InsecureTransportError, InvalidResponseError, NotFoundError

MakeClient = Callable[..., ReadyCloudClient]
TOKEN = "0123456789abcdef0123456789abcdef"  # the conftest kit's token
BASE_URL = "https://api.readycloud.test"


# -- transport security and auth -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://www.readycloud.com",
        "http://10.0.0.5:8000",
        "http://readycloud.com/",
        "http://128.0.0.1",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(InsecureTransportError, match="use an https:// URL"):
        ReadyCloudClient(url, TOKEN)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://127.9.8.7",
        "http://localhost:8765/",
        "http://[::1]:8765",
        "https://www.readycloud.com",
    ],
)
def test_loopback_http_and_https_are_allowed(url: str) -> None:
    with ReadyCloudClient(url, TOKEN) as client:
        assert client.base_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["ftp://www.readycloud.com", "www.readycloud.com", ""])
def test_a_base_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(InsecureTransportError, match="https://"):
        ReadyCloudClient(url, TOKEN)


def test_base_url_given_with_api_prefix_is_tolerated() -> None:
    with ReadyCloudClient("https://www.readycloud.com/api/v2/", TOKEN) as client:
        assert client.base_url == "https://www.readycloud.com"


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="READYCLOUD_API_TOKEN"):
        ReadyCloudClient(BASE_URL, "  ")


def test_token_goes_in_the_bearer_header_only(make_client: MakeClient, kit: Any) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=kit.load("orgs_list.json"))

    client = make_client(handler)
    orgs = client.list_orgs()
    assert [o["name"] for o in orgs] == ["Tidewater Outfitters", "Bayside Supply"]
    (request,) = seen
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(request.url)
    assert "bearer_token" not in str(request.url)
    assert request.url.path == "/api/v2/orgs/"
    assert request.headers["user-agent"].startswith("rc-sync/")


def test_repr_shows_only_the_base_url(make_client: MakeClient) -> None:
    client = make_client(lambda r: httpx.Response(200, json={}))
    assert repr(client) == f"ReadyCloudClient(base_url='{BASE_URL}')"
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(vars(client))


def test_bearer_token_echoed_in_next_is_stripped_and_never_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, kit: Any
) -> None:
    server = kit.Fake.with_orders(5, echo_token=True, absolute_next=False)
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 2:  # one retry so a WARNING line is written for the follow-up page
            return httpx.Response(503, text=f"upstream said token={TOKEN}")
        return server.handle(request)

    client = make_client(flaky, page_size=2, concurrency=1)
    with caplog.at_level(logging.DEBUG):
        pages = list(client.iter_orders("7"))
    assert sum(len(p.results) for p in pages) == 5
    for page in pages:
        assert "bearer_token" not in (page.next or "")
        assert "bearer_token" not in page.request_url
    for request in server.requests:
        assert "bearer_token" not in str(request.url)
    assert caplog.records, "expected a retry warning"
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()


def test_strip_token_keeps_other_parameters() -> None:
    url = "https://h/api/v2/orgs/7/orders/?bearer_token=abc&limit=2&BEARER_TOKEN=x&offset=4"
    assert strip_token(url) == "https://h/api/v2/orgs/7/orders/?limit=2&offset=4"
    assert strip_token("/a/?limit=1") == "/a/?limit=1"
    assert with_query("/a/?limit=1&offset=2", offset=9) == "/a/?limit=1&offset=9"


# -- pagination ---------------------------------------------------------------------------


def _fixture_pages_handler(
    seen: list[httpx.Request], kit: Any
) -> Callable[[httpx.Request], httpx.Response]:
    pages = {
        None: "orders_list_expand_boxes_items.json",
        "2": "orders_list_page2_relative_next.json",
        "4": "orders_list_page3_last.json",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=kit.load(pages[request.url.params.get("offset")]))

    return handler


@pytest.mark.parametrize("concurrency", [1, 4])
def test_fixture_pages_with_absolute_then_relative_next(
    make_client: MakeClient, concurrency: int, kit: Any
) -> None:
    seen: list[httpx.Request] = []
    client = make_client(_fixture_pages_handler(seen, kit), page_size=2, concurrency=concurrency)
    pages = list(client.iter_orders("7"))
    urls = [o["url"] for p in pages for o in p.results]
    assert urls == [f"/api/v2/orgs/7/orders/{pk}/" for pk in range(5120, 5125)]
    assert [p.offset for p in pages] == [0, 2, 4]
    # absolute next links to www.readycloud.com are followed on the configured host
    assert {r.url.host for r in seen} == {"api.readycloud.test"}
    assert all(r.url.params["expand"] == "boxes,items" for r in seen)
    assert all("bearer_token" not in str(r.url) for r in seen)


@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("concurrency", [1, 3])
def test_both_link_styles_list_everything_once(
    make_client: MakeClient, absolute: bool, concurrency: int, kit: Any
) -> None:
    server = kit.Fake.with_orders(23, absolute_next=absolute)
    client = make_client(server, page_size=5, concurrency=concurrency)
    pages = list(client.iter_compact("7"))
    urls = [o["url"] for p in pages for o in p.results]
    assert len(urls) == len(set(urls)) == 23
    assert all(p.count == 23 for p in pages)
    assert [p.offset for p in pages] == [0, 5, 10, 15, 20]
    assert all(r.url.params["limit"] == "5" for r in server.list_requests())


@pytest.mark.parametrize("bad_next_limit", [False, True])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_silently_clamped_page_size_is_followed_by_real_length(
    make_client: MakeClient, bad_next_limit: bool, concurrency: int, kit: Any
) -> None:
    server = kit.Fake.with_orders(40, max_limit=7, bad_next_limit=bad_next_limit)
    client = make_client(server, page_size=100, concurrency=concurrency)
    pages = list(client.iter_compact("7"))
    urls = [o["url"] for p in pages for o in p.results]
    assert len(urls) == len(set(urls)) == 40
    assert [len(p.results) for p in pages] == [7, 7, 7, 7, 7, 5]


def test_page_number_pagination_falls_back_to_following_next(
    make_client: MakeClient, kit: Any
) -> None:
    server = kit.Fake.with_orders(12, page_numbers=True)
    client = make_client(server, page_size=5, concurrency=4)
    pages = list(client.iter_compact("7"))
    assert [len(p.results) for p in pages] == [5, 5, 2]
    assert [r.url.params.get("page") for r in server.list_requests()] == [None, "2", "3"]


def test_concurrent_pages_come_back_in_order_with_bounded_read_ahead(
    make_client: MakeClient, kit: Any
) -> None:
    server = kit.Fake.with_orders(60)
    in_flight = {"now": 0, "max": 0}
    gauge = threading.Lock()

    def slow(request: httpx.Request) -> httpx.Response:
        with gauge:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        # later offsets answer faster, so completion order is the reverse of page order
        time.sleep(0.002 * (60 - int(request.url.params.get("offset", 0))) / 5)
        with gauge:
            in_flight["now"] -= 1
        return server.handle(request)

    client = make_client(slow, page_size=5, concurrency=3)
    offsets: list[int | None] = []
    for page in client.iter_orders("7", {"ordering": "nested_updated_at"}):
        offsets.append(page.offset)
        # read-ahead is bounded: never more than `concurrency` pages beyond the one yielded
        assert len(server.list_requests()) <= len(offsets) + 3
    assert offsets == list(range(0, 60, 5))
    assert in_flight["max"] > 1
    assert in_flight["max"] <= 3


def test_concurrency_one_is_plain_next_following(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(11)
    client = make_client(server, page_size=4, concurrency=1)
    list(client.iter_compact("7"))
    assert [r.url.params.get("offset") for r in server.list_requests()] == [None, "4", "8"]


def test_listing_that_grows_during_a_concurrent_walk_is_followed_to_its_end(
    make_client: MakeClient, kit: Any
) -> None:
    server = kit.Fake.with_orders(10)
    extra = kit.Fake.with_orders(14).orders

    def grow(fake: Any, request: httpx.Request) -> None:
        if request.url.params.get("offset") is not None:
            fake.orders.update(extra)

    server.before_list = grow
    client = make_client(server, page_size=5, concurrency=2)
    urls = [o["url"] for p in client.iter_compact("7") for o in p.results]
    assert len(set(urls)) == 14


def test_stopping_early_does_not_fetch_everything(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(200)
    client = make_client(server, page_size=5, concurrency=2)
    pages = client.iter_compact("7")
    first = next(iter(pages))
    assert first.count == 200
    pages.close()  # type: ignore[attr-defined]
    assert len(server.list_requests()) <= 4


def test_next_link_pointing_at_itself_is_an_error(make_client: MakeClient) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"count": 3, "next": "/api/v2/orgs/?page=2", "results": []})

    client = make_client(handler, deadline=5)
    with pytest.raises(InvalidResponseError, match="points at itself"):
        list(client.iter_pages("/api/v2/orgs/"))


# -- operations ---------------------------------------------------------------------------


def test_get_order_is_expanded_and_none_on_404(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(3)
    client = make_client(server)
    order = client.get_order("7", "2")
    assert order is not None and order["url"] == "/api/v2/orgs/7/orders/2/"
    assert server.requests[-1].url.params["expand"] == "boxes,items"
    assert client.get_order("7", "999") is None


def test_get_json_raises_not_found(make_client: MakeClient, kit: Any) -> None:
    client = make_client(kit.Fake())
    with pytest.raises(NotFoundError) as info:
        client.get_json("orgs/7/orders/tags/")
    assert info.value.path == "/api/v2/orgs/7/orders/tags/"


def test_get_json_returns_bare_arrays(make_client: MakeClient) -> None:
    client = make_client(lambda r: httpx.Response(200, json=["All", "Closed"]))
    assert client.get_json("/api/v2/orgs/7/orders/tags/") == ["All", "Closed"]


def test_get_json_empty_204_is_none(make_client: MakeClient) -> None:
    client = make_client(lambda r: httpx.Response(204))
    assert client.get_json("orgs/7/orders/1/tags/") is None


def test_iter_compact_and_count_send_only(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(3)
    client = make_client(server)
    (page,) = list(client.iter_compact("7", {"nested_updated_at__gte": "2024-01-01T00:00:00Z"}))
    assert set(page.results[0]) == {"url", "nested_updated_at"}
    assert client.count_orders("7") == 3
    last = server.requests[-1].url.params
    assert last["limit"] == "1" and last["only"] == "url,nested_updated_at"


def test_opaque_pks_are_quoted_in_paths(make_client: MakeClient) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"detail": "Not found."})

    client = make_client(handler)
    assert client.get_order("Qm/Fy", "a b") is None
    assert seen[0].url.raw_path.startswith(b"/api/v2/orgs/Qm%2FFy/orders/a%20b/")


def test_stats_snapshot_is_a_plain_dict(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(9)
    client = make_client(server, page_size=4)
    list(client.iter_orders("7"))
    client.get_order("7", "1")
    snap: dict[str, Any] = client.stats.snapshot()
    assert snap["requests"] == 4
    assert snap["by_kind"] == {"list": 3, "detail": 1}
    assert snap["retries"] == snap["throttled"] == snap["server_errors"] == 0
    assert snap["bytes_received"] > 0
    snap["requests"] = 0
    assert client.stats.requests == 4


def test_a_server_refusing_large_pages_gets_the_default_size(
    make_client: Callable[..., ReadyCloudClient],
) -> None:
    """Automatic page size asks for 1000; a 400 for that falls back to 100 for good."""
    limits: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        limits.append(request.url.params["limit"])
        if int(request.url.params["limit"]) > 100:
            return httpx.Response(400, json={"limit": ["Ensure this value is <= 100."]})
        return httpx.Response(200, json={"count": 0, "next": None, "results": []})

    client = make_client(handler, page_size=1000)
    assert client.list_orgs() == []
    assert client.list_orgs() == []
    assert limits == ["1000", "100", "100"]
    assert client.page_size == 100
