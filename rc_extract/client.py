"""The ReadyCloud v2 HTTP client: one httpx.Client, bearer auth, retries, pagination, budget."""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from types import TracebackType
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import tenacity

from rc_common.paths import (
    API_PREFIX,
    DEFAULT_BASE_URL,
    ORGS_PATH,
    order_path,
    orders_path,
    webhooks_path,
)
from rc_common.redact import check_token, redact
from rc_common.timefmt import format_api_datetime
from rc_extract.budget import RequestBudget, current_priority, purpose_override
from rc_extract.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InsecureTransportError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ReadyCloudError,
    detail_from_body,
    status_error,
)
from rc_extract.retry import (
    DeadlineStop,
    DecisionRetry,
    FailedAttempt,
    RetryChainDecision,
    default_retry_decision,
    give_up_in,
    parse_retry_after,
    retry_reason,
    wait_in_budget,
)
from rc_extract.serverclock import DEFAULT_SKEW_WARNING_S, ServerClock
from rc_extract.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT_S,
    EXPAND_ALL,
    ONLY_COMPACT,
    REQUEST_ID_HEADERS,
    TOKEN_QUERY_PARAM,
    USER_AGENT,
)
from rc_extract.stats import RequestStats

logger = logging.getLogger(__name__)

T = TypeVar("T")
# With a shared budget, 429s wait in the budget (not against the deadline); after this many
# in a row for one request the request gives up (the pauses double to 128 s: ~17 minutes).
MAX_THROTTLED_ATTEMPTS = 12
R = TypeVar("R")
Validator = Callable[[Any, str], None]


@dataclass(frozen=True)
class Page:
    """One page of a v2 list: its results, the listing's count, the token-free next link."""

    results: list[dict[str, Any]]
    count: int
    next: str | None
    offset: int | None
    request_url: str


class _Secret:
    """Holds the token; its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


class _BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer <token>`; its repr never shows the token."""

    def __init__(self, token: _Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Attach the header to every request."""
        request.headers["Authorization"] = f"Bearer {self._token.value}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"


# -- URL helpers (pure) -------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    name = host.strip("[]").lower().rstrip(".")
    # Only `localhost` itself: `*.localhost` names would be resolved through DNS by httpx,
    # which may answer with any address, so they do not count as loopback.
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalize_base_url(base_url: str) -> str:
    """`scheme://host[:port][/prefix]` without a trailing slash; refuses plain http off-host."""
    text = (base_url or "").strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InsecureTransportError(
            f"READYCLOUD_BASE_URL must be an https:// URL such as {DEFAULT_BASE_URL} "
            f"(got {text[:100]!r})"
        )
    if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
        raise InsecureTransportError(
            f"refusing to send the API token in clear text to {parts.hostname}: "
            "use an https:// URL in READYCLOUD_BASE_URL "
            "(plain http is only allowed for localhost, 127.0.0.0/8 and ::1; "
            "names under .localhost are resolved through DNS and do not count)"
        )
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):  # tolerate a base URL given with /api/v2 already on it
        path = path[: -len(API_PREFIX)]
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never keep credentials in the URL
    return urlunsplit((parts.scheme.lower(), netloc.lower(), path, "", ""))


def strip_token(url: str) -> str:
    """The url without any `bearer_token` query parameter (other parameters untouched)."""
    parts = urlsplit(url)
    if TOKEN_QUERY_PARAM not in parts.query.lower():
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() != TOKEN_QUERY_PARAM]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def with_query(url: str, **updates: Any) -> str:
    """The url with some query parameters replaced (or added)."""
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in updates]
    pairs += [(k, str(v)) for k, v in updates.items()]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def query_int(url: str, name: str) -> int | None:
    """An integer query parameter of the url, or None when absent or not an integer."""
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == name:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _param_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_api_datetime(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _url_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A url's path and sorted query, so equal links compare equal whatever their encoding."""
    parts = urlsplit(url)
    return parts.path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def clean_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters as sent: no token, no None values, datetimes in the API's UTC form."""
    return {
        key: _param_value(value)
        for key, value in (params or {}).items()
        if value is not None and key.lower() != TOKEN_QUERY_PARAM
    }


# -- body validation (pure) ---------------------------------------------------------------


def validate_envelope(data: Any, path: str) -> None:
    """Raise InvalidResponseError unless `data` is a v2 list envelope (count, results, next)."""
    if not isinstance(data, dict):
        raise InvalidResponseError(
            f"GET {path} returned {type(data).__name__} instead of a list envelope "
            "(count, next, results)",
            path,
        )
    count = data.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidResponseError(f"GET {path}: list envelope has a bad count {count!r:.50}", path)
    results = data.get("results")
    if not isinstance(results, list):
        raise InvalidResponseError(f"GET {path}: list envelope has no results list", path)
    if not all(isinstance(item, dict) for item in results):
        raise InvalidResponseError(f"GET {path}: list results are not all objects", path)
    nxt = data.get("next")
    if nxt is not None and not isinstance(nxt, str):
        raise InvalidResponseError(f"GET {path}: list envelope has a bad next {nxt!r:.50}", path)


def validate_object(data: Any, path: str) -> None:
    """Raise InvalidResponseError unless `data` is a JSON object."""
    if not isinstance(data, dict):
        raise InvalidResponseError(
            f"GET {path} returned {type(data).__name__} instead of an object", path
        )


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """fn over items on a thread pool, results in input order, at most `workers` in flight."""
    iterator = iter(items)
    if workers <= 1:
        yield from map(fn, iterator)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rc-extract")
    pending: deque[Future[R]] = deque()

    def submit(item: T) -> Future[R]:
        # Run in a copy of the caller's context: the request purpose and priority travel along.
        return pool.submit(contextvars.copy_context().run, fn, item)

    try:
        pending.extend(submit(item) for item in islice(iterator, workers))
        while pending:
            result = pending.popleft().result()
            pending.extend(submit(item) for item in islice(iterator, 1))
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


class _BodyTooSlow(Exception):
    """The response did not arrive in full within the attempt's time limit."""


def _socket_of(response: httpx.Response) -> socket.socket | None:
    """The response's TCP socket when the transport exposes it (httpcore does), else None."""
    stream = response.extensions.get("network_stream")
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # pragma: no cover - a transport without extra info
        return None
    return sock if isinstance(sock, socket.socket) else None


def _read_body(response: httpx.Response, started: float, limit: float) -> bytes:
    """The whole (decoded) body, or _BodyTooSlow once `limit` seconds since `started` pass.

    A watchdog shuts the socket down at the limit, which wakes a read blocked on a server
    that sends nothing; the elapsed check after each chunk catches one that drips.
    """
    remaining = limit - (time.monotonic() - started)
    if remaining <= 0:
        raise _BodyTooSlow
    sock = _socket_of(response)
    cut = threading.Event()

    def stop_reading() -> None:
        cut.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

    watchdog = threading.Timer(remaining, stop_reading) if sock is not None else None
    chunks: list[bytes] = []
    try:
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() - started > limit:
                raise _BodyTooSlow
    except httpx.TransportError:
        if cut.is_set():
            raise _BodyTooSlow from None
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if cut.is_set():
        raise _BodyTooSlow
    return b"".join(chunks)


class ReadyCloudClient:
    """ReadyCloud API v2 client over one thread-safe httpx.Client (use as a context manager)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        page_size: int = DEFAULT_PAGE_SIZE,
        budget: RequestBudget | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        deadline: float = DEFAULT_DEADLINE_S,
        max_backoff: float = DEFAULT_MAX_BACKOFF_S,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = USER_AGENT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        retry: RetryChainDecision | None = None,
        skew_warning_s: float = DEFAULT_SKEW_WARNING_S,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        secret = check_token(token or "")
        if not secret:
            raise ValueError("an API token is required: set READYCLOUD_API_TOKEN")
        if page_size < 1 or concurrency < 1 or deadline <= 0 or timeout <= 0:
            raise ValueError("page_size, concurrency, deadline and timeout must be positive")
        self._secret = _Secret(secret)
        self.timeout = float(timeout)
        self.page_size = int(page_size)
        self.concurrency = int(concurrency)
        self.deadline = float(deadline)
        self.max_backoff = float(max_backoff)
        self.budget = budget
        # Orders per full page the server really returned, per request purpose (it may clamp
        # the limit asked for); read by estimates and stored with the capability probes.
        self.honoured_page_size: dict[str, int] = {}
        self.stats = RequestStats()
        self.server_clock = ServerClock(skew_warning_s=skew_warning_s)
        # Which failures are retried (and after how long): see rc_extract.retry.
        self.retry_decision = retry if retry is not None else default_retry_decision()
        self._ever_answered = False  # set once any HTTP response arrived
        self._closed = threading.Event()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        base = urlsplit(self.base_url)
        self._scheme, self._netloc, self._base_path = base.scheme, base.netloc, base.path
        pool = max(10, 2 * self.concurrency)
        self._http = httpx.Client(
            auth=_BearerAuth(self._secret),
            headers={"Accept": "application/json", "User-Agent": user_agent},
            timeout=self.timeout,
            verify=verify,
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        )

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool; requests still in flight on other threads fail without
        retries or retry warnings (Ctrl-C: the run stops quietly)."""
        self._closed.set()
        self._http.close()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed.is_set()

    def __enter__(self) -> ReadyCloudClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ReadyCloudClient(base_url={self.base_url!r})"

    # -- operations -----------------------------------------------------------------------

    def list_orgs(self) -> list[dict[str, Any]]:
        """Every organization the token can see (all pages)."""
        return [org for page in self.iter_pages(ORGS_PATH, kind="probe") for org in page.results]

    def iter_orders(
        self,
        org_pk: str,
        filters: Mapping[str, Any] | None = None,
        expand: bool | str = True,
        *,
        concurrency: int | None = None,
    ) -> Iterator[Page]:
        """Pages of an org's orders (expanded with boxes and items unless expand=False)."""
        params = dict(filters or {})
        if expand:
            params["expand"] = EXPAND_ALL if expand is True else expand
        yield from self.iter_pages(
            orders_path(org_pk), params, concurrency=concurrency, kind="list"
        )

    def iter_compact(
        self,
        org_pk: str,
        filters: Mapping[str, Any] | None = None,
        *,
        concurrency: int | None = None,
    ) -> Iterator[Page]:
        """Pages of an org's orders with only `url` and `nested_updated_at`."""
        params = {**(filters or {}), "only": ONLY_COMPACT}
        yield from self.iter_pages(
            orders_path(org_pk), params, concurrency=concurrency, kind="compact"
        )

    def count_orders(self, org_pk: str, filters: Mapping[str, Any] | None = None) -> int:
        """The API's count of an org's orders matching `filters` (one cheap request)."""
        params = {**(filters or {}), "only": ONLY_COMPACT, "limit": 1}
        data, _ = self._get(orders_path(org_pk), params, kind="probe", validate=validate_envelope)
        return int(data["count"])

    def get_order(self, org_pk: str, order_pk: str) -> dict[str, Any] | None:
        """One order with boxes and items expanded; None when it does not exist (404)."""
        try:
            data, _ = self._get(
                order_path(org_pk, order_pk),
                {"expand": EXPAND_ALL},
                kind="detail",
                validate=validate_object,
            )
        except NotFoundError:
            return None
        result: dict[str, Any] = data
        return result

    def iter_order_details(
        self, org_pk: str, order_pks: Iterable[str], *, concurrency: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(order_pk, expanded order or None if gone) for each pk, concurrently, in input order."""
        workers = self.concurrency if concurrency is None else concurrency
        yield from ordered_map(lambda pk: (pk, self.get_order(org_pk, pk)), order_pks, workers)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON body of a GET (path relative to /api/v2/ or absolute on this host)."""
        data, _ = self._get(path, params, kind="list", allow_empty=True)
        return data

    # -- webhooks (writes: need a token with write access) ----------------------------------

    def list_webhooks(self, org_pk: str) -> list[dict[str, Any]]:
        """Every webhook of an org (all pages)."""
        path = webhooks_path(org_pk)
        return [hook for page in self.iter_pages(path, kind="webhooks") for hook in page.results]

    def create_webhook(self, org_pk: str, entity: str, remote_url: str) -> dict[str, Any]:
        """POST a new webhook; returns the created object (with its `token`)."""
        data = self._write(
            "POST", webhooks_path(org_pk), {"entity": entity, "remote_url": remote_url}
        )
        if not isinstance(data, dict):
            raise InvalidResponseError(
                "creating a webhook returned no object", webhooks_path(org_pk)
            )
        return data

    def delete_webhook(self, webhook_url: str) -> None:
        """DELETE a webhook by its url (a webhook already gone counts as deleted)."""
        try:
            self._write("DELETE", webhook_url, None)
        except NotFoundError:
            return

    def _write(self, method: str, target: str, body: dict[str, Any] | None) -> Any:
        """One POST/PATCH/DELETE (not retried: writes are not idempotent); the decoded body.

        Writes do not draw from the request budget: ReadyCloud counts them separately (30
        POST/PATCH/DELETE a minute) and rc-sync writes only when webhooks are (un)registered.
        """
        url = strip_token(self._resolve(target))
        path = urlsplit(url).path
        try:
            response = self._http.request(method, url, json=body, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            self.stats.record_response("write", None, 0)
            raise APITimeoutError(self.base_url, path, "timed out") from exc
        except httpx.TransportError as exc:
            self.stats.record_response("write", None, 0)
            raise APIConnectionError(self.base_url, path, self._redact(str(exc))) from exc
        content = response.content
        self.stats.record_response("write", response.status_code, len(content))
        if 200 <= response.status_code < 300:
            if not content.strip():
                return None
            try:
                return json.loads(content)
            except ValueError:
                raise InvalidResponseError(
                    f"{method} {path} returned {response.status_code} with a body that is not JSON",
                    path,
                ) from None
        detail = self._redact(detail_from_body(content))
        raise status_error(response.status_code, path, detail, method=method)

    # -- pagination -----------------------------------------------------------------------

    def iter_pages(
        self,
        path_or_url: str,
        params: Mapping[str, Any] | None = None,
        *,
        concurrency: int | None = None,
        kind: str = "list",
    ) -> Iterator[Page]:
        """Every page of a list, in order; later pages fetched concurrently when offsets allow."""
        query = clean_params(params)
        query.setdefault("limit", self.page_size)
        start = _as_int(query.get("offset"))
        if start is None:
            start = query_int(path_or_url, "offset") or 0
        try:
            first = self._fetch_page(path_or_url, query, kind=kind, offset=start)
        except APIStatusError as exc:
            # A server that refuses a large limit outright (instead of clamping it, as DRF
            # does): fall back to the documented default page size for good.
            limit = _as_int(query.get("limit")) or 0
            if exc.status_code != 400 or limit <= DEFAULT_PAGE_SIZE:
                raise
            logger.warning(
                "the API refused limit=%d (%s); using pages of %d from now on",
                limit,
                exc.detail[:100] if exc.detail else "HTTP 400",
                DEFAULT_PAGE_SIZE,
            )
            self.page_size = DEFAULT_PAGE_SIZE
            query["limit"] = DEFAULT_PAGE_SIZE
            first = self._fetch_page(path_or_url, query, kind=kind, offset=start)
        if first.next is not None and first.results:
            self.honoured_page_size[kind] = len(first.results)
        yield first
        if first.next is None:
            return
        workers = self.concurrency if concurrency is None else max(1, concurrency)
        step = len(first.results)
        if workers > 1 and step > 0 and query_int(first.next, "offset") is not None:
            yield from self._concurrent_pages(first, step, workers, kind)
        else:
            yield from self._sequential_pages(first, kind)

    def _sequential_pages(self, page: Page, kind: str) -> Iterator[Page]:
        """Follow `next` one page at a time (offsets taken from the real page length)."""
        previous = page.request_url
        while page.next is not None:
            link = page.next
            offset = query_int(link, "offset")
            if offset is not None and page.offset is not None and page.results:
                real = page.offset + len(page.results)
                if real != offset:
                    logger.debug(
                        "next link offset %s does not follow the page actually returned "
                        "(ends at %s; clamped page size?); using %s",
                        offset,
                        real,
                        real,
                    )
                    link = with_query(link, offset=real)
                offset = real
            if _url_key(link) == _url_key(previous):
                path = urlsplit(link).path
                raise InvalidResponseError(f"GET {path}: the next link points at itself", path)
            previous = link
            page = self._fetch_page(link, None, kind=kind, offset=offset)
            yield page

    def _concurrent_pages(self, first: Page, step: int, workers: int, kind: str) -> Iterator[Page]:
        """Fetch the pages after `first` by rewriting the offset of its next link, in order."""
        template = first.next
        assert template is not None and first.offset is not None

        def fetch(offset: int) -> Page:
            link = with_query(template, offset=offset, limit=step)
            return self._fetch_page(link, None, kind=kind, offset=offset)

        last = first
        offsets = range(first.offset + step, first.count, step)
        for page in ordered_map(fetch, offsets, workers):
            last = page
            yield page
        if last.next is not None:  # the listing grew during the walk: follow it to its end
            yield from self._sequential_pages(last, kind)

    def _fetch_page(
        self, target: str, params: Mapping[str, Any] | None, *, kind: str, offset: int | None
    ) -> Page:
        data, request_url = self._get(target, params, kind=kind, validate=validate_envelope)
        nxt = data.get("next") or None
        if nxt is not None:
            clean = strip_token(nxt)
            if clean != nxt:
                logger.debug("removed a %s parameter echoed in a next link", TOKEN_QUERY_PARAM)
            nxt = self._resolve(clean)
        return Page(
            results=data["results"],
            count=data["count"],
            next=nxt,
            offset=offset,
            request_url=request_url,
        )

    # -- the request core -----------------------------------------------------------------

    def _resolve(self, path_or_url: str) -> str:
        """An absolute URL on the configured origin for a path, host-relative or absolute URL."""
        parts = urlsplit(path_or_url.strip())
        path = parts.path or "/"
        if parts.scheme or parts.netloc:
            if (parts.scheme.lower(), parts.netloc.lower()) != (self._scheme, self._netloc):
                logger.debug(
                    "link to %s rewritten onto the configured host %s", parts.netloc, self._netloc
                )
        elif not path.startswith("/"):
            path = f"{API_PREFIX}/{path}"
        elif not path.startswith(("/api/", f"{self._base_path}/api/")):
            path = f"{API_PREFIX}{path}"
        if self._base_path and not path.startswith(f"{self._base_path}/"):
            path = f"{self._base_path}{path}"
        return urlunsplit((self._scheme, self._netloc, path, parts.query, ""))

    def _redact(self, text: str) -> str:
        return redact(text, self._secret.value)

    def _get(
        self,
        target: str,
        params: Mapping[str, Any] | None,
        *,
        kind: str,
        validate: Validator | None = None,
        allow_empty: bool = False,
    ) -> tuple[Any, str]:
        """GET with retries within the deadline; returns (decoded body, token-free request url).

        `kind` is the request's purpose for counting (list, compact, detail, probe); an
        enclosing `rc_extract.budget.purpose()` block overrides it, and repeated attempts count
        as `retry`. Time spent waiting for the budget does not count against the deadline.
        """
        kind = purpose_override() or kind
        url = strip_token(self._resolve(target))
        query = clean_params(params)
        shown = urlsplit(with_query(url, **query) if query else url)
        display = shown.path + (f"?{shown.query}" if shown.query else "")
        stop = DeadlineStop(self.deadline, self._clock(), self._clock)
        attempts = 0

        def attempt() -> tuple[Any, str]:
            nonlocal attempts
            attempts += 1
            purpose = "retry" if attempts > 1 else kind
            try:
                return self._attempt(url, query, purpose, validate, allow_empty, stop)
            except RateLimitError as exc:
                if self.budget is not None and attempts >= MAX_THROTTLED_ATTEMPTS:
                    raise exc.with_hint(
                        f"throttled by the API {attempts} times for one request although "
                        "every process of this App paused as asked; giving up — set "
                        "READYCLOUD_RATE_LIMIT to the App's real limit (ask ReadyCloud for "
                        "it), or check whether something else uses the same App"
                    ) from exc
                raise

        decision = self.retry_decision
        if self.budget is not None:
            decision = decision.prepend(wait_in_budget(MAX_THROTTLED_ATTEMPTS))
        policy = DecisionRetry(
            decision,
            stop,
            ever_answered=lambda: self._ever_answered,
            cap=self.max_backoff,
            rand=self._rand,
        )
        retrying = tenacity.Retrying(
            # A closed client (the run is stopping) retries nothing: its sockets are gone.
            retry=lambda state: not self._closed.is_set() and policy.retry(state),
            wait=policy.wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=lambda state: self._before_sleep(state, display, stop),
            retry_error_callback=lambda state: self._give_up(state, stop),
        )
        result: tuple[Any, str] = retrying(attempt)
        return result

    def _attempt(
        self,
        url: str,
        query: dict[str, Any],
        kind: str,
        validate: Validator | None,
        allow_empty: bool,
        stop: DeadlineStop,
    ) -> tuple[Any, str]:
        """One HTTP attempt, mapped to a result or to one of the rc_extract errors."""
        if self.budget is not None:
            stop.exclude(self.budget.acquire(kind, current_priority()))
        path = urlsplit(url).path
        # The attempt as a whole (connect, headers and body) ends within `limit`; the logical
        # request's deadline caps it further. httpx's own timeouts apply per read only, so a
        # server dripping a few bytes every few seconds would never trip them.
        limit = max(0.1, min(self.timeout, self.deadline - stop.elapsed()))
        started = time.monotonic()
        try:
            with self._http.stream("GET", url, params=query or None, timeout=limit) as response:
                self._ever_answered = True  # the host answered (the body may still fail)
                self.server_clock.observe(response.headers.get("date"))
                body = _read_body(response, started, limit)
        except _BodyTooSlow:
            self.stats.record_response(kind, None, 0)
            raise APITimeoutError(
                self.base_url,
                path,
                f"the response took longer than {limit:g}s (RC_SYNC_TIMEOUT)",
                answered=self._ever_answered,
            ) from None
        except httpx.TimeoutException as exc:
            self.stats.record_response(kind, None, 0)
            raise APITimeoutError(
                self.base_url,
                path,
                f"timed out (no answer within {limit:g}s, RC_SYNC_TIMEOUT)",
                answered=self._ever_answered,
            ) from exc
        except httpx.TransportError as exc:
            self.stats.record_response(kind, None, 0)
            reason = self._redact(str(exc) or type(exc).__name__)
            raise APIConnectionError(
                self.base_url, path, reason, answered=self._ever_answered
            ) from exc
        status = response.status_code
        self._ever_answered = True
        self.stats.record_response(kind, status, len(body))
        request_url = strip_token(str(response.request.url))
        if 200 <= status < 300:
            if not body.strip():
                if allow_empty:
                    return None, request_url
                raise InvalidResponseError(f"GET {path} returned {status} with an empty body", path)
            try:
                data = json.loads(body)
            except ValueError:
                snippet = self._redact(body[:80].decode("utf-8", "replace"))
                raise InvalidResponseError(
                    f"GET {path} returned {status} with a body that is not valid JSON "
                    f"(truncated or garbled; {len(body)} bytes, starts {snippet!r})",
                    path,
                ) from None
            if validate is not None:
                validate(data, path)
            return data, request_url
        detail = self._redact(detail_from_body(body))
        request_id = next(
            (response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None
        )
        retry_after = None
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429 and self.budget is not None:
            # The whole App pauses (every process sees it in the budget); this request waits
            # the pause as its retry wait, which counts against its deadline.
            retry_after = self.budget.throttled(retry_after)
            logger.info(
                "HTTP 429 from the API: pausing every request of this App for %.0fs", retry_after
            )
        raise status_error(status, path, detail, request_id, retry_after=retry_after)

    def _before_sleep(
        self, state: tenacity.RetryCallState, display: str, stop: DeadlineStop
    ) -> None:
        """Count and log a retry (never the token), saying when the request will give up."""
        if self._closed.is_set():
            return
        exc = state.outcome.exception() if state.outcome else None
        self.stats.record_retry()
        remaining = (
            give_up_in(
                FailedAttempt(
                    exc,
                    attempt=state.attempt_number,
                    elapsed=stop.elapsed(),
                    ever_answered=self._ever_answered,
                ),
                self.deadline,
            )
            if exc is not None
            else self.deadline - stop.elapsed()
        )
        at = datetime.now(UTC) + timedelta(seconds=remaining)
        logger.warning(
            "GET %s failed (%s); retry %d in %.1fs, giving up at %s (in %.0f s)",
            display,
            retry_reason(exc),
            state.attempt_number,
            state.upcoming_sleep,
            f"{at:%H:%M:%S}",
            remaining,
        )

    def _give_up(self, state: tenacity.RetryCallState, stop: DeadlineStop) -> NoReturn:
        """Raise the last error once another wait would pass the request deadline."""
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, BaseException):  # pragma: no cover - tenacity always has one
            raise ReadyCloudError("request failed without an error")
        elapsed = stop.elapsed()
        wait = state.upcoming_sleep
        if isinstance(exc, RateLimitError):
            if exc.retry_after is not None:
                asked = f"the server asked to wait {wait:.0f}s (Retry-After)"
            else:
                asked = f"the next backoff wait is {wait:.0f}s"
            raise exc.with_hint(
                f"throttled by the API; {asked}, which would pass the request deadline "
                f"of {self.deadline:.0f}s ({elapsed:.0f}s used, {state.attempt_number} "
                "attempts); giving up — set READYCLOUD_RATE_LIMIT to the App's real limit"
            ) from exc
        if isinstance(exc, APIStatusError | APIConnectionError | InvalidResponseError):
            exc.add_note(
                f"gave up after {state.attempt_number} attempts in {elapsed:.1f}s "
                f"(request deadline {self.deadline:.0f}s)"
            )
        raise exc
