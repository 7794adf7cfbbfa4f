"""The Starlette app: ReadyCloud v2 routes, auth, pagination, filters, faults, control endpoints."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from rc_common.paths import API_PREFIX
from rc_common.timefmt import parse_user_datetime
from rc_sandbox.config import SandboxConfig
from rc_sandbox.faults import (
    GARBAGE_BODY,
    FaultPlan,
    SandboxStats,
    drip,
    gateway_page,
    throttle_body,
    truncate,
)
from rc_sandbox.model import COMPACT, dumps, to_us
from rc_sandbox.store import (
    DATETIME_FILTER_FIELDS,
    DEFAULT_ORDERING,
    INDEXED_FIELDS,
    NULL_US,
    OrderQuery,
    SandboxStore,
)
from rc_sandbox.throttle import SlidingThrottle
from rc_sandbox.webhooks import ENTITIES, WebhookHub, check_remote_url

LOOKUPS = ("gte", "gt", "lte", "lt")
ORDERING_FIELDS = frozenset(INDEXED_FIELDS)
JSON_TYPE = "application/json"
_LIST_SPLIT = re.compile(r"[,|]")


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact UTF-8 JSON response."""
    return Response(dumps(doc), status_code=status, headers=headers, media_type=JSON_TYPE)


def _positive_int(text: str | None, default: int, strict: bool, cutoff: int | None = None) -> int:
    """DRF's `_positive_int`: bad or (strict) zero values fall back to `default`."""
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        return default
    if value < 0 or (strict and value == 0):
        return default
    return min(value, cutoff) if cutoff is not None else value


def representation_of(params: dict[str, str]) -> str:
    """Which cached rendering a list or detail request asks for (`only=` wins over `expand=`)."""
    only = [f.strip() for f in params.get("only", "").split(",")]
    wanted = tuple(f for f in ("url", "nested_updated_at") if f in only)
    if wanted:
        return next(name for name, names in COMPACT.items() if set(names) == set(wanted))
    expand = {part.strip() for part in params.get("expand", "").split(",")}
    if "boxes" in expand:
        return "expanded" if "items" in expand else "boxes"
    return "stubs"


class SandboxApp:
    """Request handling state shared by the routes: store, knobs, counters, fault plan."""

    def __init__(
        self,
        store: SandboxStore,
        config: SandboxConfig,
        stats: SandboxStats,
        hub: WebhookHub | None = None,
    ) -> None:
        """Handlers read `config` on every request, so knob changes apply to the next one."""
        self.hub = hub or WebhookHub(config)
        self.store = store
        self.config = config
        self.stats = stats
        self.faults = FaultPlan(config)
        self.mutation_rng = random.Random(f"{config.seed}:mutations")
        self._lock = threading.Lock()
        self._api_requests = 0
        self._list_requests = 0
        self.throttle = SlidingThrottle()

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _token(request: Request) -> str | None:
        header = request.headers.get("authorization")
        token: str | None = None
        if header:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        if token is None:
            token = request.query_params.get("bearer_token") or None
        return token

    def _auth_error(self, request: Request, served: int) -> Response | None:
        token = self._token(request)
        if token is None:
            return self._unauthorized("Authentication credentials were not provided.", False)
        if token != self.config.token:
            return self._unauthorized("Token doesn't exist", True)
        limit = self.config.fail_auth_after
        if limit is not None and served > limit:
            return self._unauthorized("Token is expired", True)
        return None

    @staticmethod
    def _unauthorized(description: str, invalid: bool) -> Response:
        challenge = 'Bearer realm=""'
        if invalid:
            challenge += f', error="invalid_token", error_description="{description}"'
        body = {"error": "invalid_token", "error_description": description}
        return json_response(body, 401, {"WWW-Authenticate": challenge})

    async def _serve(
        self, request: Request, kind: str, handler: Callable[[Request], Response]
    ) -> Response:
        """Count, delay, maybe fault, authenticate, then answer with `handler`."""
        stats = self.stats
        stats.bump("requests")
        stats.bump(kind)
        with self._lock:
            self._api_requests += 1
            served = self._api_requests
        config = self.config
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)
        fault = self.faults.pick()
        if fault is not None:
            stats.count_fault(fault)
            if fault == "429":
                retry = config.retry_after_s
                stats.count_status(429)
                headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
                return json_response(throttle_body(retry), 429, headers)
            if fault.isdigit():
                stats.count_status(int(fault))
                return Response(gateway_page(int(fault)), int(fault), media_type="text/html")
            if fault == "timeout":
                await asyncio.sleep(config.timeout_s)
        refused = self._auth_error(request, served)
        wait = None if refused is not None else self._throttled(request)
        if refused is not None:
            response = refused
        elif wait is not None:
            stats.bump("throttled")
            headers = {"Retry-After": str(max(1, round(wait)))}
            response = json_response(
                throttle_body(max(1, round(wait))),
                429,
                headers if config.rate_limit_retry_after else None,
            )
        else:
            try:
                response = handler(request)
            except _Forbidden:
                response = json_response(
                    {"detail": "You do not have permission to perform this action."}, 403
                )
            except _NotFound:
                response = json_response({"detail": "Not found."}, 404)
        if fault == "truncated" and response.status_code == 200:
            response = Response(truncate(bytes(response.body)), 200, media_type=JSON_TYPE)
        elif fault == "garbage" and response.status_code == 200:
            response = Response(GARBAGE_BODY, 200, media_type=JSON_TYPE)
        stats.count_status(response.status_code)
        if config.drip_bytes > 0:  # a slow server: the body in small chunks with pauses
            return StreamingResponse(
                drip(bytes(response.body), config.drip_bytes, config.drip_interval_s),
                status_code=response.status_code,
                headers={k: v for k, v in response.headers.items() if k != "content-length"},
            )
        return response

    def _throttled(self, request: Request) -> float | None:
        """Seconds until the token may ask again when over `rate_limit`, else None (counted)."""
        if self.config.rate_limit is None:
            return None
        from rc_extract.budget import parse_rate

        rate = parse_rate(self.config.rate_limit)
        if rate is None:
            return None
        return self.throttle.check(self._token(request) or "", rate.limit, rate.period_s)

    def _org(self, request: Request) -> str:
        org_pk = request.path_params["org"]
        if not self.store.has_org(org_pk):
            raise _Forbidden
        return org_pk

    def _page_links(
        self, request: Request, count: int, offset: int, limit: int
    ) -> tuple[str | None, str | None]:
        """DRF LimitOffsetPagination next/previous links (query params sorted, like DRF)."""

        def link(new_offset: int | None) -> str:
            query = parse_qs(request.url.query, keep_blank_values=True)
            query["limit"] = [str(limit)]
            if new_offset is None:
                query.pop("offset", None)
            else:
                query["offset"] = [str(new_offset)]
            text = urlencode(sorted(query.items()), doseq=True)
            base = (
                f"{request.url.scheme}://{request.url.netloc}" if self.config.absolute_next else ""
            )
            return f"{base}{request.url.path}?{text}"

        following = None if offset + limit >= count else link(offset + limit)
        if offset <= 0:
            preceding = None
        elif offset - limit <= 0:
            preceding = link(None)
        else:
            preceding = link(offset - limit)
        return following, preceding

    def _limits(self, params: dict[str, str]) -> tuple[int, int]:
        cfg = self.config
        limit = _positive_int(params.get("limit"), cfg.default_limit, True, cfg.page_cap)
        offset = _positive_int(params.get("offset"), 0, False)
        return offset, limit

    def _envelope(
        self, request: Request, count: int, offset: int, limit: int, docs: list[bytes]
    ) -> Response:
        following, preceding = self._page_links(request, count, offset, limit)
        body = b"".join(
            (
                b'{"count":%d,"next":%s,"previous":%s,"results":['
                % (count, dumps(following), dumps(preceding)),
                b",".join(docs),
                b"]}",
            )
        )
        return Response(body, media_type=JSON_TYPE)

    def _paginate_docs(self, request: Request, docs: list[dict[str, Any]]) -> Response:
        offset, limit = self._limits(dict(request.query_params))
        page = [dumps(doc) for doc in docs[offset : offset + limit]]
        return self._envelope(request, len(docs), offset, limit, page)

    # ------------------------------------------------------------------ order list parsing
    def parse_query(self, params: dict[str, str]) -> OrderQuery | dict[str, list[str]]:
        """The OrderQuery of a list request, or a DRF-style validation error body."""
        cfg = self.config
        bounds: dict[str, list[int | None]] = {}
        errors: dict[str, list[str]] = {}
        if cfg.filters:
            for name in DATETIME_FILTER_FIELDS:
                for lookup in LOOKUPS:
                    key = f"{name}__{lookup}"
                    raw = params.get(key)
                    if not raw:
                        continue
                    try:
                        us = to_us(parse_user_datetime(raw))
                    except ValueError:
                        errors[key] = ["Enter a valid date/time."]
                        continue
                    lo, hi = bounds.setdefault(name, [NULL_US + 1, None])
                    if lookup in ("gte", "gt"):
                        value = us if lookup == "gte" else us + 1
                        bounds[name][0] = value if lo is None else max(lo, value)
                    else:
                        value = us + 1 if lookup == "lte" else us
                        bounds[name][1] = value if hi is None else min(hi, value)
        if errors:
            return errors
        ordering, descending = DEFAULT_ORDERING, False
        if cfg.ordering and params.get("ordering"):
            for term in params["ordering"].split(","):
                term = term.strip()
                name = term.lstrip("-")
                if name in ORDERING_FIELDS:
                    ordering, descending = name, term.startswith("-")
                    break

        def values(key: str) -> frozenset[str] | None:
            parts = {p.strip() for p in _LIST_SPLIT.split(params.get(key, "")) if p.strip()}
            return frozenset(parts) if parts else None

        shipping = values("shipping_status__in")
        return OrderQuery(
            ranges=tuple((name, lo, hi) for name, (lo, hi) in sorted(bounds.items())),
            primary_id=params.get("primary_id") or None,
            billing_in=values("billing_status__in"),
            shipping_in=None if shipping is None else frozenset(shipping),
            ordering=ordering,
            descending=descending,
        )

    # ------------------------------------------------------------------ handlers
    def orgs_list(self, request: Request) -> Response:
        """GET /orgs/."""
        docs = [self.store.org_json(pk) for pk in self.store.org_pks()]
        return self._paginate_docs(request, docs)

    def org_detail(self, request: Request) -> Response:
        """GET /orgs/{org}/."""
        return json_response(self.store.org_json(self._org(request)))

    def orders_list(self, request: Request) -> Response:
        """GET /orgs/{org}/orders/."""
        org_pk = self._org(request)
        params = dict(request.query_params)
        query = self.parse_query(params)
        if isinstance(query, dict):
            return json_response(query, 400)
        mutate_every = self.config.mutate_every
        if mutate_every > 0:
            with self._lock:
                self._list_requests += 1
                due = self._list_requests % mutate_every == 0
            if due:
                self.store.mutate_random(self.mutation_rng)
                self.stats.bump("mutations")
        offset, limit = self._limits(params)
        representation = representation_of(params)
        count, docs = self.store.page_bytes(org_pk, query, offset, limit, representation)
        return self._envelope(request, count, offset, limit, docs)

    def order_detail(self, request: Request) -> Response:
        """GET /orgs/{org}/orders/{order}/ (accepts expand and only)."""
        org_pk = self._org(request)
        representation = representation_of(dict(request.query_params))
        body = self.store.order_bytes(org_pk, request.path_params["order"], representation)
        if body is None:
            raise _NotFound
        return Response(body, media_type=JSON_TYPE)

    def _expand_items(self, request: Request) -> bool:
        return "items" in {p.strip() for p in request.query_params.get("expand", "").split(",")}

    def boxes(self, request: Request) -> Response:
        """GET .../boxes/ and .../boxes/{box}/ (items are stubs unless expand=items)."""
        org_pk = self._org(request)
        box_pk = request.path_params.get("box")
        docs = self.store.box_docs(
            org_pk, request.path_params["order"], box_pk, self._expand_items(request)
        )
        if docs is None:
            raise _NotFound
        return json_response(docs[0]) if box_pk else self._paginate_docs(request, docs)

    def items(self, request: Request) -> Response:
        """GET .../items/ and .../items/{item}/."""
        org_pk = self._org(request)
        item_pk = request.path_params.get("item")
        path = request.path_params
        docs = self.store.item_docs(org_pk, path["order"], path["box"], item_pk)
        if docs is None:
            raise _NotFound
        return json_response(docs[0]) if item_pk else self._paginate_docs(request, docs)

    # ------------------------------------------------------------------ webhooks (API.md §10)
    def webhooks(self, request: Request, raw: bytes) -> Response:
        """GET/POST /orgs/{org}/webhooks/ and GET/PATCH/PUT/DELETE .../webhooks/{hook}/."""
        org_pk = self._org(request)
        hub = self.hub
        pk = request.path_params.get("hook")
        method = request.method
        if method != "GET" and self.config.read_only_token:
            raise _Forbidden
        if pk is None:
            if method == "GET":
                return self._paginate_docs(request, [h.to_json() for h in hub.of_org(org_pk)])
            body = _json_object(raw)
            if body is None:
                return json_response({"detail": "JSON parse error."}, 400)
            entity = body.get("entity") or "orders"
            problem = check_remote_url(body.get("remote_url"))
            errors: dict[str, list[str]] = {}
            if problem:
                errors["remote_url"] = [problem]
            if entity not in ENTITIES:
                errors["entity"] = [f'"{entity}" is not a valid choice.']
            if errors:
                return json_response(errors, 400)
            hook = hub.create(org_pk, str(entity), str(body["remote_url"]))
            return json_response(hook.to_json(), 201)
        found = hub.get(org_pk, pk)
        if found is None:
            raise _NotFound
        if method == "GET":
            return json_response(found.to_json())
        if method == "DELETE":
            hub.delete(org_pk, pk)
            return Response(status_code=204)
        body = _json_object(raw)
        if body is None:
            return json_response({"detail": "JSON parse error."}, 400)
        remote_url = body.get("remote_url")
        if remote_url is not None and check_remote_url(remote_url):
            return json_response({"remote_url": [check_remote_url(remote_url)]}, 400)
        return json_response(hub.update(found, remote_url).to_json())

    # ------------------------------------------------------------------ control endpoints
    def control(self, action: str, body: dict[str, Any]) -> Any:
        """Run one /_sandbox/ action; KeyError -> 404, ValueError/TypeError -> 400."""
        store = self.store
        fields = body.get("fields") or {}
        if not isinstance(fields, dict):
            raise ValueError("fields must be an object")

        def text(key: str) -> str:
            value = body.get(key)
            if not isinstance(value, str):
                raise ValueError(f"{key!r} (a pk string) is required")
            return value

        if action == "mutate":
            done = [
                store.mutate_random(self.mutation_rng) for _ in range(int(body.get("count", 1)))
            ]
            return {"mutations": done}
        if action == "config":
            self.config.update(**body)
            return {k: v for k, v in asdict(self.config).items() if k != "token"}
        if action == "stats/reset":
            self.stats.reset()
            return {"ok": True}
        if action == "orders/create":
            return {"order": store.create_order(text("org"))}
        org, order = text("org"), text("order")
        box = body.get("box")
        if box is not None and not isinstance(box, str):
            raise ValueError("'box' must be a pk string")
        if action == "orders/update":
            store.update_order(org, order, **fields)
        elif action == "orders/delete":
            store.delete_order(org, order)
        elif action == "orders/restore":
            store.restore_order(org, order)
        elif action == "boxes/add":
            return {"box": store.add_box(org, order, int(body.get("items", 1)))}
        elif action == "boxes/remove":
            return {"box": store.remove_box(org, order, box)}
        elif action == "boxes/update":
            store.update_box(org, order, text("box"), **fields)
        elif action == "items/add":
            return {"item": store.add_item(org, order, box)}
        elif action == "items/remove":
            store.remove_item(org, order, text("box"), text("item"))
        elif action == "items/update":
            store.update_item(org, order, text("box"), text("item"), **fields)
        elif action == "addresses/update":
            store.change_address(org, order, body.get("role", "ship_to"), **fields)
        else:
            raise KeyError(f"unknown control action {action!r}")
        return {"ok": True}

    async def control_endpoint(self, request: Request) -> Response:
        """POST /_sandbox/{action} and GET /_sandbox/stats (only when config.control)."""
        if not self.config.control:
            return json_response({"detail": "Not found."}, 404)
        self.stats.bump("control")
        action = request.path_params["action"].strip("/")
        if request.method == "GET":
            if action != "stats":
                return json_response({"detail": "Not found."}, 404)
            doc = self.stats.snapshot()
            doc["orders"] = self.store.order_count()
            doc["store_mutations"] = self.store.mutations
            return json_response(doc)
        try:
            raw = await request.body()
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return json_response(self.control(action, body))
        except KeyError as exc:
            return json_response({"detail": str(exc.args[0] if exc.args else exc)}, 404)
        except (ValueError, TypeError) as exc:
            return json_response({"detail": str(exc)}, 400)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object ({} when empty), None when it is not one."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class _Forbidden(Exception):
    """The org does not belong to the token."""


class _NotFound(Exception):
    """No such order, box or item."""


async def _not_found(request: Request, exc: Exception) -> Response:
    return json_response({"detail": "Not found."}, 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return json_response({"detail": f'Method "{request.method}" not allowed.'}, 405)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return await _not_found(request, exc)
    if status == 405:
        return await _not_allowed(request, exc)
    return json_response({"detail": str(exc)}, status)


def build_app(
    store: SandboxStore,
    config: SandboxConfig,
    stats: SandboxStats,
    hub: WebhookHub | None = None,
) -> Starlette:
    """The Starlette application serving `store` under /api/v2 (and /_sandbox when enabled)."""
    state = SandboxApp(store, config, stats, hub)

    async def webhooks_endpoint(request: Request) -> Response:
        raw = await request.body()
        return await state._serve(request, "webhooks", lambda r: state.webhooks(r, raw))

    def route(path: str, handler: Callable[[Request], Response], kind: str) -> Route:
        async def endpoint(request: Request) -> Response:
            actual = kind
            if kind == "list" and representation_of(dict(request.query_params)) in COMPACT:
                actual = "compact"
            return await state._serve(request, actual, handler)

        return Route(path, endpoint, methods=["GET"])

    orders = f"{API_PREFIX}/orgs/{{org}}/orders"
    box = f"{orders}/{{order}}/boxes/{{box}}"
    routes = [
        route(f"{API_PREFIX}/orgs/", state.orgs_list, "orgs"),
        route(f"{API_PREFIX}/orgs/{{org}}/", state.org_detail, "orgs"),
        route(f"{orders}/", state.orders_list, "list"),
        route(f"{orders}/{{order}}/", state.order_detail, "detail"),
        route(f"{orders}/{{order}}/boxes/", state.boxes, "detail"),
        route(f"{box}/", state.boxes, "detail"),
        route(f"{box}/items/", state.items, "detail"),
        route(f"{box}/items/{{item}}/", state.items, "detail"),
        Route(f"{API_PREFIX}/orgs/{{org}}/webhooks/", webhooks_endpoint, methods=["GET", "POST"]),
        Route(
            f"{API_PREFIX}/orgs/{{org}}/webhooks/{{hook}}/",
            webhooks_endpoint,
            methods=["GET", "PATCH", "PUT", "DELETE"],
        ),
        Route("/_sandbox/{action:path}", state.control_endpoint, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _not_found, 405: _not_allowed, HTTPException: _http_error},
    )
    app.state.sandbox = state
    return app
