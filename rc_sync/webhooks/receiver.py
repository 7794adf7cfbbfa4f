"""The webhook receiver: an ASGI app that verifies, bounds and durably stores ReadyCloud deliveries.

Routes (relative to wherever the app is mounted; CONTRACT.md "Webhooks"):
`PUT /readycloud/{org}/orders/{order}`, `POST /readycloud/{org}/orders`,
`DELETE /readycloud/{org}/orders/{order}` (a trailing slash is accepted too).

Each delivery is answered only after it is committed to `webhook_events`, so a crash before the
commit means ReadyCloud retries and a crash after it loses nothing. The `Auth` header is checked
against the stored SHA-256 of the org's webhook tokens (constant-time comparison) before any
of the body is read; bodies are read as a stream and refused past the size limit.
One log line per delivery: org, method, order pk, status, milliseconds. Never bodies, tokens
or client addresses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rc_common.paths import API_PREFIX, parse_object_url
from rc_common.timefmt import api_datetime_or_none
from warehouse import webhooks as wh

log = logging.getLogger("rc_sync.webhooks")

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
ENTITY = "orders"
# How often the token hashes may be re-read from the warehouse when an org or a token is not
# known (a webhook registered after the receiver started); bounded so that a flood of bad
# requests cannot turn into a flood of queries.
RELOAD_INTERVAL_S = 2.0


class _Refused(Exception):
    """A delivery answered with a 4xx (no body, no token in the message)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _TokenCache:
    """org_pk -> token hashes, re-read from the warehouse at most every RELOAD_INTERVAL_S."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.digests: dict[str, list[str]] = {}
        self.loaded_at = float("-inf")
        self.lock = threading.Lock()

    def get(self, org_pk: str, *, refresh: bool) -> list[str]:
        with self.lock:
            if refresh and time.monotonic() - self.loaded_at >= RELOAD_INTERVAL_S:
                self.digests = wh.token_digests(self.engine)
                self.loaded_at = time.monotonic()
            return list(self.digests.get(org_pk, ()))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _has_nul(doc: Any) -> bool:
    """Whether any key or string in a decoded JSON document contains U+0000."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _decode(raw: bytes) -> Any:
    """Strict JSON (no NaN/Infinity, no NUL characters), as the warehouse must store it."""
    doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    if b"\\u0000" in raw and _has_nul(doc):  # PostgreSQL's JSON cannot hold U+0000
        raise ValueError("a string contains a NUL character, which the warehouse cannot store")
    return doc


def _object_of(org_pk: str, path_order: str | None, body: Any, method: str) -> tuple[str, str]:
    """(object_url, order_pk) of a delivery; refuses a body about another org or order."""
    url = body.get("url") if isinstance(body, dict) else None
    if isinstance(url, str) and url:
        try:
            ref = parse_object_url(url)
        except ValueError:
            raise _Refused(400, "the body's url is not a ReadyCloud order url") from None
        if ref.org_pk != org_pk:
            raise _Refused(400, "the body is about another org than the delivery url")
        if ref.order_pk is None or ref.box_pk is not None:
            raise _Refused(400, "the body's url is not an order url")
        if path_order is not None and ref.order_pk != path_order:
            raise _Refused(400, "the body's order differs from the delivery url's")
        return url, ref.order_pk
    if path_order is None:
        raise _Refused(400, "a POST delivery needs the order's url in the body")
    if method != "DELETE" and isinstance(body, dict) and body:
        raise _Refused(400, "the body has no url")
    return f"{API_PREFIX}/orgs/{org_pk}/orders/{path_order}/", path_order


class Receiver:
    """Request handling: verification, bounded reading, durable storage, one log line."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.on_stored = on_stored
        self.tokens = _TokenCache(engine)
        self.stored = 0

    async def handle(self, request: Request) -> Response:
        """Answer one delivery; never a 5xx for anything the sender did."""
        started = time.perf_counter()
        org_pk = request.path_params["org"]
        order_pk: str | None = request.path_params.get("order")
        method = request.method
        status = 500
        try:
            try:
                response = await self._accept(request, org_pk, order_pk, method)
            except _Refused as refused:
                response = JSONResponse({"detail": refused.detail}, refused.status)
            status = response.status_code
            return response
        except ClientDisconnect:
            status = 499
            return Response(status_code=400)
        except Exception as exc:  # the warehouse is unreachable or similar: ReadyCloud retries
            status = 503
            log.error(
                "webhook storage failed (%s); answering 503 so that it is retried",
                type(exc).__name__,
            )
            return JSONResponse({"detail": "temporarily unable to store the delivery"}, 503)
        finally:
            log.info(
                "webhook org=%s method=%s order=%s status=%d ms=%.1f",
                org_pk,
                method,
                order_pk or "-",
                status,
                (time.perf_counter() - started) * 1000,
            )

    async def _accept(
        self, request: Request, org_pk: str, order_pk: str | None, method: str
    ) -> Response:
        digests = await run_in_threadpool(self.tokens.get, org_pk, refresh=False)
        given = request.headers.get("auth")
        if not digests or not wh.token_matches(given, digests):
            # Unknown so far: a webhook may have been registered since the cache was read.
            digests = await run_in_threadpool(self.tokens.get, org_pk, refresh=True)
        if not digests:
            raise _Refused(404, f"unknown org {org_pk!r}: no webhook is registered for it here")
        if not wh.token_matches(given, digests):
            raise _Refused(401, "missing or wrong Auth header")
        raw = await self._read_body(request)
        body: Any = None
        if raw.strip():
            try:
                body = _decode(raw)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                if method != "DELETE":
                    reason = str(exc) if "NUL" in str(exc) else "the body is not valid JSON"
                    raise _Refused(400, reason) from None
                body = None  # a DELETE needs no body: be liberal
        if method != "DELETE" and not isinstance(body, dict):
            raise _Refused(400, "the body must be a JSON object (the order)")
        object_url, pk = _object_of(org_pk, order_pk, body, method)
        event = {
            "org_pk": org_pk,
            "entity": ENTITY,
            "method": method,
            "object_url": object_url,
            "order_pk": pk,
            "body": body,
            "content_hash": hashlib.sha256(raw).hexdigest(),
            "received_at": datetime.now(UTC),
            "nested_updated_at": api_datetime_or_none(
                body.get("nested_updated_at") if isinstance(body, dict) else None
            ),
        }
        await run_in_threadpool(wh.insert_event, self.engine, event)
        self.stored += 1
        if self.on_stored is not None:
            self.on_stored()
        return JSONResponse({"ok": True}, 200)

    async def _read_body(self, request: Request) -> bytes:
        """The body, read as a stream and refused (413) as soon as it passes the limit."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                raise _Refused(400, "bad Content-Length") from None
            if too_big:
                raise _Refused(413, f"the body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"the body is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def build_receiver_app(
    engine: Engine,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    on_stored: Callable[[], None] | None = None,
) -> Starlette:
    """The receiver as a Starlette app (serve it with uvicorn or mount it in another ASGI app)."""
    receiver = Receiver(engine, max_body_bytes=max_body_bytes, on_stored=on_stored)
    base = "/readycloud/{org}/orders"
    routes = [
        Route(base, receiver.handle, methods=["POST"]),
        Route(base + "/", receiver.handle, methods=["POST"]),
        Route(base + "/{order}", receiver.handle, methods=["PUT", "DELETE"]),
        Route(base + "/{order}/", receiver.handle, methods=["PUT", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.receiver = receiver
    return app
