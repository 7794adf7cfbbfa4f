"""Fixtures for rc_extract: a fake clock, JSON fixtures, and an in-memory ReadyCloud over MockTransport."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from rc_common.timefmt import format_api_datetime, parse_api_datetime
from rc_extract.client import ReadyCloudClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "readycloud"
TOKEN = "0123456789abcdef0123456789abcdef"
BASE_URL = "https://api.readycloud.test"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def load_fixture(name: str) -> Any:
    """A JSON fixture from tests/fixtures/readycloud."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeClock:
    """A monotonic clock that only moves when something sleeps (thread-safe)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def make_order(org_pk: str, pk: int, nested_updated_at: datetime) -> dict[str, Any]:
    """A small order document in the documented shape."""
    url = f"/api/v2/orgs/{org_pk}/orders/{pk}/"
    return {
        "url": url,
        "primary_id": f"WEB-{pk}",
        "created_at": format_api_datetime(T0 + timedelta(minutes=pk)),
        "updated_at": format_api_datetime(nested_updated_at),
        "nested_updated_at": format_api_datetime(nested_updated_at),
        "boxes": [{"url": f"{url}boxes/{pk}1/", "items": [{"url": f"{url}boxes/{pk}1/items/1/"}]}],
    }


class FakeReadyCloud:
    """An in-memory orders API: filters, ordering, limit/offset, compact `only`, detail, orgs.

    Knobs: honour_filters / honour_ordering (False = silently ignored, like django-filter with
    an unknown parameter), absolute_next, max_limit (server-side clamp), bad_next_limit (next
    link built from the requested, unclamped limit), page_numbers (page-number pagination),
    echo_token (bearer_token echoed in next links), before_list (hook run before each list
    request, e.g. to mutate data between pages), ignore (filter names silently ignored).
    """

    def __init__(
        self,
        orders: list[dict[str, Any]] | None = None,
        *,
        org_pk: str = "7",
        honour_filters: bool = True,
        honour_ordering: bool = True,
        absolute_next: bool = True,
        max_limit: int = 100,
        bad_next_limit: bool = False,
        page_numbers: bool = False,
        echo_token: bool = False,
        ignore: tuple[str, ...] = (),
        token: str = TOKEN,
    ) -> None:
        self.org_pk = org_pk
        self.orders: dict[str, dict[str, Any]] = {o["url"]: o for o in orders or []}
        self.honour_filters = honour_filters
        self.honour_ordering = honour_ordering
        self.absolute_next = absolute_next
        self.max_limit = max_limit
        self.bad_next_limit = bad_next_limit
        self.page_numbers = page_numbers
        self.echo_token = echo_token
        self.ignore = ignore
        self.token = token
        self.requests: list[httpx.Request] = []
        self.before_list: Callable[[FakeReadyCloud, httpx.Request], None] | None = None
        self.lock = threading.RLock()

    # -- data helpers ----------------------------------------------------------------------

    @classmethod
    def with_orders(
        cls, n: int, *, step: timedelta = timedelta(minutes=7), **kw: Any
    ) -> FakeReadyCloud:
        """A server with n orders whose nested_updated_at is T0 + i*step (scrambled insertion)."""
        org = kw.get("org_pk", "7")
        pks = sorted(range(1, n + 1), key=lambda i: (i * 7919) % (n + 3))  # not in time order
        return cls([make_order(org, pk, T0 + pk * step) for pk in pks], **kw)

    def touch(self, url: str, moment: datetime) -> None:
        """Change an order: its nested_updated_at moves to `moment`."""
        self.orders[url]["nested_updated_at"] = format_api_datetime(moment)

    def list_requests(self) -> list[httpx.Request]:
        """The list requests received so far."""
        return [r for r in self.requests if r.url.path.endswith("/orders/")]

    # -- transport -------------------------------------------------------------------------

    @property
    def transport(self) -> httpx.MockTransport:
        """The MockTransport serving this fake."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return httpx.Response(401, json={"detail": "Invalid token."})
            path = request.url.path
            prefix = f"/api/v2/orgs/{self.org_pk}/orders/"
            if path == "/api/v2/orgs/":
                return self._page(request, [{"url": f"/api/v2/orgs/{self.org_pk}/", "name": "Org"}])
            if path == prefix:
                if self.before_list is not None:
                    self.before_list(self, request)
                return self._orders(request)
            if path.startswith(prefix):
                order = self.orders.get(path)
                if order is None:
                    return httpx.Response(404, json={"detail": "Not found."})
                return httpx.Response(200, json=order)
            return httpx.Response(404, json={"detail": "Not found."})

    def _orders(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        rows = list(self.orders.values())
        if self.honour_filters:
            for key, op in (
                ("nested_updated_at__gte", "ge"),
                ("nested_updated_at__gt", "gt"),
                ("nested_updated_at__lt", "lt"),
                ("nested_updated_at__lte", "le"),
            ):
                if key in params and key not in self.ignore:
                    bound = parse_api_datetime(params[key])
                    rows = [
                        r
                        for r in rows
                        if _compare(parse_api_datetime(r["nested_updated_at"]), op, bound)
                    ]
        ordering = params.get("ordering")
        if self.honour_ordering and ordering:
            field = ordering.lstrip("-")
            rows.sort(key=lambda r: (r[field], r["url"]), reverse=ordering.startswith("-"))
        if params.get("only"):
            fields = params["only"].split(",")
            rows = [{k: r[k] for k in fields if k in r} for r in rows]
        return self._page(request, rows)

    def _page(self, request: httpx.Request, rows: list[dict[str, Any]]) -> httpx.Response:
        params = request.url.params
        requested = int(params.get("limit", 20))
        limit = min(requested, self.max_limit)
        if self.page_numbers:
            page = int(params.get("page", 1))
            offset = (page - 1) * limit
        else:
            offset = int(params.get("offset", 0))
        chunk = rows[offset : offset + limit]
        nxt = None
        if offset + limit < len(rows):
            query = {k: v for k, v in params.multi_items() if k not in ("offset", "limit", "page")}
            if self.echo_token:
                query["bearer_token"] = self.token
            if self.page_numbers:
                query["page"] = str(offset // limit + 2)
                query["limit"] = str(limit)
            else:
                step = requested if self.bad_next_limit else limit
                query["limit"] = str(step)
                query["offset"] = str(offset + step)
            nxt = f"{request.url.path}?{urlencode(query)}"
            if self.absolute_next:
                nxt = f"https://www.readycloud.com{nxt}"
        return httpx.Response(
            200, json={"count": len(rows), "next": nxt, "previous": None, "results": chunk}
        )


def _compare(value: datetime, op: str, bound: datetime) -> bool:
    return {
        "ge": value >= bound,
        "gt": value > bound,
        "lt": value < bound,
        "le": value <= bound,
    }[op]


class Kit:
    """What test modules need from here (this folder is not a package, so they get it as a fixture)."""

    def __init__(self) -> None:
        self.token = TOKEN
        self.base_url = BASE_URL
        self.t0 = T0
        self.Fake = FakeReadyCloud
        self.load = load_fixture
        self.make_order = make_order


@pytest.fixture
def kit() -> Kit:
    """Constants, the fake server class and the fixture loader."""
    return Kit()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock whose sleep advances it instantly."""
    return FakeClock()


@pytest.fixture
def make_client(clock: FakeClock) -> Iterator[Callable[..., ReadyCloudClient]]:
    """Build a client over a handler (or a FakeReadyCloud) that never really sleeps."""
    made: list[ReadyCloudClient] = []

    def factory(
        handler: Callable[[httpx.Request], httpx.Response] | FakeReadyCloud, **kw: Any
    ) -> ReadyCloudClient:
        transport = (
            handler.transport
            if isinstance(handler, FakeReadyCloud)
            else httpx.MockTransport(handler)
        )
        kw.setdefault("sleep", clock.sleep)
        kw.setdefault("clock", clock)
        kw.setdefault("rand", lambda: 0.5)
        client = ReadyCloudClient(
            kw.pop("base_url", BASE_URL), kw.pop("token", TOKEN), transport=transport, **kw
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()
