"""Change detection: the orders whose nested_updated_at lies in a window, read consistently.

Implements "The change-detection contract" of docs/design.md: a filtered offset walk when the
server honours the `nested_updated_at` filters, a compact-listing diff when it does not, both
verified against the listing's `count` and repaired when the data moved under the walk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

from rc_common.paths import parse_object_url, url_path
from rc_common.timefmt import api_datetime_or_none, format_api_datetime
from rc_extract.budget import purpose
from rc_extract.client import Page, ReadyCloudClient
from rc_extract.errors import InvalidResponseError, UnstableListingError
from rc_extract.settings import (
    CHANGE_FIELD,
    FILTER_SINCE,
    FILTER_UNTIL,
    MAX_WALK_ATTEMPTS,
    ORDERING_FIELD,
    PROBE_FAR_FUTURE,
)

logger = logging.getLogger(__name__)

PathName = Literal["filtered-keyset", "filtered-offset", "compact-diff"]
ForcePath = Literal["auto", "filtered", "compact"]

ORDERING_PROBE_SIZE = 5
ONE_MICROSECOND = timedelta(microseconds=1)

# The capability probes a reader runs (and a caller may store between runs).
PROBES = ("filters", "ordering")


class Capabilities:
    """What the server behind a client was found to honour: probe name -> bool.

    A value the caller owns: it passes one to every ChangeReader on the same server (so each
    probe runs once) and may store `known()` between runs and `assume()` it back.
    Thread-safe, since readers of several orgs may share it.
    """

    def __init__(self, known: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, bool] = {}
        if known:
            self.assume(known)

    def get(self, name: str) -> bool | None:
        """The probe's result, or None when it has not run."""
        with self._lock:
            return self._values.get(name)

    def remember(self, name: str, value: bool) -> None:
        """Record a probe's result."""
        with self._lock:
            self._values[name] = value

    def assume(self, known: Mapping[str, Any]) -> None:
        """Seed results remembered from an earlier run (ones already probed are kept)."""
        with self._lock:
            for name in PROBES:
                value = known.get(name)
                if isinstance(value, bool) and name not in self._values:
                    self._values[name] = value

    def known(self) -> dict[str, bool]:
        """Every probe result known so far."""
        with self._lock:
            return dict(self._values)


@dataclass(frozen=True)
class Window:
    """The half-open range [since, until) of nested_updated_at; since=None = from the beginning."""

    since: datetime | None
    until: datetime

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"Window.{name} must be timezone-aware (got {value!r})")
        if self.since is not None and self.since > self.until:
            raise ValueError(f"empty window: since {self.since} is after until {self.until}")

    def contains(self, moment: datetime) -> bool:
        """True when since <= moment < until."""
        return (self.since is None or moment >= self.since) and moment < self.until

    def filters(self) -> dict[str, str]:
        """The list filters that select this window on the server."""
        params = {FILTER_UNTIL: format_api_datetime(self.until)}
        if self.since is not None:
            params[FILTER_SINCE] = format_api_datetime(self.since)
        return params


@dataclass(frozen=True)
class OrderBatch:
    """Orders read in one step, and the window prefix they complete (checkpoint, exclusive)."""

    orders: list[dict[str, Any]]
    checkpoint: datetime | None
    total: int | None = None  # how many orders the window holds, when known (for progress)


@dataclass
class _Listing:
    """A verified compact listing: url path -> nested_updated_at, the count, the real page size."""

    entries: dict[str, str] = field(default_factory=dict)
    count: int = 0
    page_size: int = 1


def order_identity(order: Mapping[str, Any]) -> str:
    """An order's identity: the path part of its `url`."""
    url = order.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidResponseError(f"an order without a url: {str(order)[:120]}", "")
    return url_path(url)


def _in_window(stamp: Any, window: Window, *, unknown: bool) -> bool:
    moment = api_datetime_or_none(stamp)
    return unknown if moment is None else window.contains(moment)


class ChangeReader:
    """Reads the orders changed in a window (see docs/design.md, change-detection contract)."""

    def __init__(
        self,
        client: ReadyCloudClient,
        force_path: ForcePath = "auto",
        capabilities: Capabilities | None = None,
    ) -> None:
        if force_path not in ("auto", "filtered", "compact"):
            raise ValueError(f"force_path must be auto, filtered or compact, not {force_path!r}")
        self.client = client
        self.force_path: ForcePath = force_path
        self.last_path: PathName | None = None
        # Probe results: shared with other readers of the same server when the caller says so.
        self.capabilities = capabilities if capabilities is not None else Capabilities()

    # -- capability probes ----------------------------------------------------------------

    def filters_honoured(self, org_pk: str) -> bool:
        """Whether the server applies nested_updated_at filters (probe, kept in capabilities)."""
        cached = self.capabilities.get("filters")
        if cached is not None:
            return cached
        future = self.client.count_orders(
            org_pk, {FILTER_SINCE: format_api_datetime(PROBE_FAR_FUTURE)}
        )
        if future > 0:
            honoured = False
        elif self.client.count_orders(org_pk) == 0:
            logger.info("org %s has no orders: filter probe inconclusive, not cached", org_pk)
            return False
        else:
            honoured = True
        logger.info(
            "the orders list %s nested_updated_at filters", "honours" if honoured else "ignores"
        )
        self.capabilities.remember("filters", honoured)
        return honoured

    def ordering_honoured(self, org_pk: str) -> bool:
        """Whether `ordering=nested_updated_at` sorts the list (probe, kept in capabilities).

        Mid-walk checkpoints are only claimed when it does; an org whose sample has fewer
        than two distinct timestamps is inconclusive (False, not cached).
        """
        cached = self.capabilities.get("ordering")
        if cached is not None:
            return cached
        samples: list[list[datetime]] = []
        for ordering in (ORDERING_FIELD, f"-{ORDERING_FIELD}"):
            with purpose("probe"):
                page = self._first_page(
                    org_pk, {"ordering": ordering, "limit": ORDERING_PROBE_SIZE}
                )
            stamps = [api_datetime_or_none(item.get(CHANGE_FIELD)) for item in page.results]
            samples.append([s for s in stamps if s is not None])
        ascending, descending = samples
        if len(set(ascending + descending)) < 2:
            return False
        honoured = (
            all(a <= b for a, b in pairwise(ascending))
            and all(a >= b for a, b in pairwise(descending))
            and ascending[0] <= min(descending)
            and descending[0] >= max(ascending)
        )
        logger.info("the orders list %s ordering", "honours" if honoured else "ignores")
        self.capabilities.remember("ordering", honoured)
        return honoured

    def _first_page(self, org_pk: str, params: Mapping[str, Any]) -> Page:
        pages = self.client.iter_compact(org_pk, params, concurrency=1)
        return next(iter(pages))

    def _use_filters(self, org_pk: str) -> bool:
        if self.force_path == "filtered":
            return True
        if self.force_path == "compact":
            return False
        return self.filters_honoured(org_pk)

    # -- public operations ----------------------------------------------------------------

    def iter_window(self, org_pk: str, window: Window) -> Iterator[OrderBatch]:
        """Batches (one per page) of full orders changed in the window, each order once."""
        seen: set[str] = set()
        if self._use_filters(org_pk):
            self.last_path = "filtered-offset"
            fell_back = yield from self._filtered(org_pk, window, seen)
            if not fell_back:
                return
        self.last_path = "compact-diff"
        yield from self._compact_diff(org_pk, window, seen)

    def count_window(self, org_pk: str, window: Window) -> int:
        """How many orders the window holds (the API's count, or a compact walk's tally)."""
        if self._use_filters(org_pk):
            return self.client.count_orders(org_pk, window.filters())
        listing = self._verified_walk(org_pk, None)
        unknown = window.since is None
        return sum(1 for s in listing.entries.values() if _in_window(s, window, unknown=unknown))

    def list_all(self, org_pk: str) -> dict[str, str]:
        """Every order of the org: url path -> nested_updated_at ('' if missing), verified."""
        return self._verified_walk(org_pk, None).entries

    # -- path 1: filters honoured ---------------------------------------------------------

    def _filtered(
        self, org_pk: str, window: Window, seen: set[str]
    ) -> Generator[OrderBatch, None, bool]:
        """Offset walk over the filtered, ordered list; True when the filters proved ignored."""
        params = {**window.filters(), "ordering": ORDERING_FIELD}
        may_checkpoint = self.ordering_honoured(org_pk)
        first_count: int | None = None
        consistent = True
        ascending = True
        latest: datetime | None = None
        listed: set[str] = set()
        pending: OrderBatch | None = None
        for page in self.client.iter_orders(org_pk, params, expand=True):
            stamps = [api_datetime_or_none(order.get(CHANGE_FIELD)) for order in page.results]
            outside = sum(1 for s in stamps if s is not None and not window.contains(s))
            if outside:
                logger.warning(
                    "org %s: the filtered orders list returned %d orders outside [%s, %s); "
                    "the filters are not honoured, switching to the compact listing",
                    org_pk,
                    outside,
                    window.since,
                    window.until,
                )
                if pending is not None:
                    yield pending
                return True
            if first_count is None:
                first_count = page.count
            consistent = consistent and page.count == first_count
            for stamp in stamps:
                if stamp is None:
                    continue
                if latest is not None and stamp < latest:
                    ascending = False
                latest = stamp if latest is None else max(latest, stamp)
            fresh = self._fresh(page.results, seen, listed)
            checkpoint = latest if may_checkpoint and consistent and ascending else None
            if pending is not None:
                yield pending
            pending = OrderBatch(fresh, checkpoint, first_count)
        if consistent and len(listed) == first_count:
            yield OrderBatch(pending.orders if pending else [], window.until, first_count)
            return False
        if pending is not None:
            yield pending
        logger.warning(
            "org %s: the window's listing changed during the walk (count %s, %d distinct "
            "orders, counts %s); repairing from a verified compact listing",
            org_pk,
            first_count,
            len(listed),
            "stable" if consistent else "changed",
        )
        entries = (
            self._keyset_listing(org_pk, window)
            if may_checkpoint
            else self._verified_walk(org_pk, window.filters()).entries
        )
        missing = [
            path
            for path, stamp in entries.items()
            if path not in seen and _in_window(stamp, window, unknown=True)
        ]
        logger.info("org %s: %d orders missed by the walk, fetching them", org_pk, len(missing))
        yield from self._fetch_details(org_pk, missing, seen, window, first_count)
        return False

    @staticmethod
    def _fresh(
        orders: Iterable[dict[str, Any]], seen: set[str], listed: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """The orders not yet yielded (marks them yielded)."""
        fresh = []
        for order in orders:
            key = order_identity(order)
            if listed is not None:
                listed.add(key)
            if key not in seen:
                seen.add(key)
                fresh.append(order)
        return fresh

    # -- path 3: filters ignored ----------------------------------------------------------

    def _compact_diff(self, org_pk: str, window: Window, seen: set[str]) -> Iterator[OrderBatch]:
        """Verified compact walk of the whole org; read the window's orders by detail or walk."""
        listing = self._verified_walk(org_pk, None)
        unknown = window.since is None  # undatable orders belong to a full read only
        wanted = [
            path
            for path, stamp in listing.entries.items()
            if path not in seen and _in_window(stamp, window, unknown=unknown)
        ]
        total = len(wanted)
        if not wanted or total < listing.count / listing.page_size:
            yield from self._fetch_details(org_pk, wanted, seen, window, total)
            return
        wanted_set = set(wanted)
        pending: OrderBatch | None = None
        for page in self.client.iter_orders(org_pk, None, expand=True):
            fresh = self._fresh((o for o in page.results if order_identity(o) in wanted_set), seen)
            if fresh:
                if pending is not None:
                    yield pending
                pending = OrderBatch(fresh, None, total)
        missed = [path for path in wanted if path not in seen]
        if not missed:
            yield OrderBatch(pending.orders if pending else [], window.until, total)
            return
        if pending is not None:
            yield pending
        yield from self._fetch_details(org_pk, missed, seen, window, total)

    # -- shared steps ---------------------------------------------------------------------

    def _fetch_details(
        self,
        org_pk: str,
        paths: list[str],
        seen: set[str],
        window: Window,
        total: int | None,
    ) -> Iterator[OrderBatch]:
        """Read orders one by one (expanded), in page-sized batches; the last one ends the window."""
        order_pks: list[str] = []
        for path in paths:
            try:
                order_pk = parse_object_url(path).order_pk
            except ValueError:
                order_pk = None
            if order_pk is None:
                raise InvalidResponseError(f"not an order url in the listing: {path[:200]!r}", path)
            order_pks.append(order_pk)
        batch: list[dict[str, Any]] = []
        for path, (order_pk, order) in zip(
            paths, self.client.iter_order_details(org_pk, order_pks), strict=True
        ):
            if order is None:
                logger.info("org %s: order %s is gone (404); skipped", org_pk, order_pk)
                continue
            key = order_identity(order)
            if key in seen:
                continue
            seen.update((key, path))
            batch.append(order)
            if len(batch) >= self.client.page_size:
                yield OrderBatch(batch, None, total)
                batch = []
        yield OrderBatch(batch, window.until, total)

    def _keyset_listing(self, org_pk: str, window: Window) -> dict[str, str]:
        """url path -> nested_updated_at of every order in the window, by keyset pages.

        Each page asks for the window from the last timestamp seen on (ascending), so an order
        that moves out of the window or vanishes while the walk runs cannot make the walk skip
        one that stays (an offset walk would, and a listing that changes on every page never
        verifies). A page made of one timestamp only (a tie larger than a page) is read with a
        verified walk of exactly that timestamp. Needs the filters and ordering honoured.
        """
        entries: dict[str, str] = {}
        since = window.since
        while True:
            params = {**Window(since, window.until).filters(), "ordering": ORDERING_FIELD}
            page = self._first_page(org_pk, params)
            stamps: list[datetime] = []
            for item in page.results:
                raw = item.get(CHANGE_FIELD)
                entries[order_identity(item)] = raw if isinstance(raw, str) else ""
                stamp = api_datetime_or_none(raw)
                if stamp is not None:
                    stamps.append(stamp)
            if page.next is None or not page.results:
                return entries
            if not stamps:  # pragma: no cover - a filtered listing always has timestamps
                entries.update(self._verified_walk(org_pk, window.filters()).entries)
                return entries
            first, last = min(stamps), max(stamps)
            if first == last:
                tie = Window(first, first + ONE_MICROSECOND)
                entries.update(self._verified_walk(org_pk, tie.filters()).entries)
                since = tie.until
            else:
                since = last
            if since >= window.until:
                return entries

    def _verified_walk(self, org_pk: str, filters: Mapping[str, Any] | None) -> _Listing:
        """A compact walk whose pages all report one count equal to the distinct urls seen."""
        for attempt in range(1, MAX_WALK_ATTEMPTS + 1):
            listing = _Listing(page_size=self.client.page_size)
            counts: set[int] = set()
            for page_number, page in enumerate(self.client.iter_compact(org_pk, filters)):
                counts.add(page.count)
                if page_number == 0 and page.next is not None and page.results:
                    listing.page_size = len(page.results)
                for item in page.results:
                    stamp = item.get(CHANGE_FIELD)
                    listing.entries[order_identity(item)] = stamp if isinstance(stamp, str) else ""
            if len(counts) == 1:
                listing.count = counts.pop()
                if len(listing.entries) == listing.count:
                    return listing
            logger.warning(
                "org %s: the compact listing changed during walk %d of %d (counts %s, %d distinct "
                "orders); walking again",
                org_pk,
                attempt,
                MAX_WALK_ATTEMPTS,
                sorted(counts),
                len(listing.entries),
            )
        raise UnstableListingError(
            f"org {org_pk}: the orders listing kept changing during {MAX_WALK_ATTEMPTS} "
            "consecutive walks, so no consistent snapshot could be read; try again later"
        )
