"""The webhook applier: stored deliveries -> warehouse rows, in micro-batches, through the sync's loader.

Order-safe and idempotent:
* per order, only the newest delivered version in a batch is loaded; the loader itself never
  lets an older `nested_updated_at` overwrite a newer one, and unchanged content is a no-op;
* a `DELETE` marks the order deleted (deleted_at = when the deletion arrived); a `PUT` clears
  that mark only when its `nested_updated_at` is newer than the deletion, so a reordered older
  version (or a duplicate) never resurrects a deleted order;
* bodies without expanded boxes/items (or bare `{"url": ...}` stubs) are completed by one
  detail GET each (counted on the event and in the report);
* events never move the polling watermark (the loader is called without a checkpoint), so the
  next incremental sync still reads everything since its watermark and repairs lost deliveries.

Applying the same events twice (a crash between loading and marking them applied) changes
nothing: the loader sees unchanged content.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from rc_common.timefmt import api_datetime_or_none
from rc_extract.budget import priority, purpose
from rc_extract.client import ReadyCloudClient
from rc_extract.errors import ReadyCloudError
from warehouse import state as wh_state
from warehouse import webhooks as wh
from warehouse.load import Loader
from warehouse.normalize import normalize_orders

log = logging.getLogger("rc_sync.webhooks")

DEFAULT_BATCH = 500
# After a wake-up, wait this long for more deliveries so that a burst becomes one batch.
GATHER_S = 0.05
IDLE_POLL_S = 1.0
PRUNE_EVERY_S = 3600.0


@dataclass
class ApplyReport:
    """What applying did (accumulates over batches)."""

    events: int = 0
    orders_loaded: int = 0
    orders_new: int = 0
    orders_updated: int = 0
    orders_unchanged: int = 0
    orders_skipped_older: int = 0
    orders_deleted: int = 0
    detail_requests: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        """Count one event's outcome."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class _Unfetched:
    """A detail GET that could not be made (no token, API failure)."""


_UNFETCHED = _Unfetched()


def needs_detail(doc: dict[str, Any]) -> bool:
    """True when a delivered order lacks its expanded boxes and items (or is a bare stub)."""
    if not isinstance(doc.get("nested_updated_at"), str):
        return True
    boxes = doc.get("boxes")
    if not isinstance(boxes, list):
        return True
    for box in boxes:
        if not isinstance(box, dict) or set(box) <= {"url"}:
            return True
        items = box.get("items")
        if not isinstance(items, list):
            return True
        if any(not isinstance(item, dict) or set(item) <= {"url"} for item in items):
            return True
    return False


class WebhookApplier:
    """Applies pending webhook events to the warehouse."""

    def __init__(
        self,
        engine: Engine,
        *,
        client_factory: Callable[[], ReadyCloudClient] | None = None,
        batch_size: int = DEFAULT_BATCH,
        retention: timedelta = timedelta(days=7),
        history: bool = True,
    ) -> None:
        self.engine = engine
        # RC_SYNC_HISTORY=off: no history rows for webhook versions or deletions either
        self.history = history
        self.loader = Loader(engine, history=history)
        self.batch_size = batch_size
        self.retention = retention
        self._client_factory = client_factory
        self._client: ReadyCloudClient | None = None
        self.report = ApplyReport()
        self._last_prune = float("-inf")
        self._warned_no_token = False

    def close(self) -> None:
        """Close the API client if one was made for detail GETs."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _fetch(self, org_pk: str, order_pk: str) -> dict[str, Any] | _Unfetched | None:
        """One detail GET (counted); None when the order no longer exists.

        Without a token, or when the API fails, the event is left to the next poll (which
        repairs the order) instead of holding up every event behind it.
        """
        if self._client is None:
            if self._client_factory is None:
                if not self._warned_no_token:
                    log.warning(
                        "a webhook delivery without expanded boxes/items needs a detail GET, but "
                        "no API token is configured (READYCLOUD_API_TOKEN); the next sync will "
                        "pick such orders up"
                    )
                    self._warned_no_token = True
                return _UNFETCHED
            self._client = self._client_factory()
        self.report.detail_requests += 1
        try:
            # Webhook freshness is refresh-class work: it keeps the reserved share.
            with purpose("detail"), priority("refresh"):
                return self._client.get_order(org_pk, order_pk)
        except ReadyCloudError as exc:
            log.warning("detail GET for a webhook delivery failed (%s); left to the next sync", exc)
            return _UNFETCHED

    # -- one batch ------------------------------------------------------------------------

    def apply_pending(self) -> int:
        """Apply up to one batch of pending events; returns how many events were applied."""
        events = wh.pending_events(self.engine, self.batch_size)
        if not events:
            return 0
        by_org: dict[str, list[wh.PendingEvent]] = {}
        for event in events:
            by_org.setdefault(event.org_pk, []).append(event)
        outcomes: dict[int, tuple[str, int]] = {}
        for org_pk, org_events in by_org.items():
            outcomes.update(self._apply_org(org_pk, org_events))
        wh.mark_applied(self.engine, outcomes)
        self.report.events += len(outcomes)
        for outcome, _ in outcomes.values():
            self.report.count(outcome)
        return len(outcomes)

    def _apply_org(self, org_pk: str, events: list[wh.PendingEvent]) -> dict[int, tuple[str, int]]:
        outcomes: dict[int, tuple[str, int]] = {}
        # The newest version per order wins; the latest DELETE per order is remembered.
        best: dict[str, tuple[datetime | None, int, dict[str, Any]]] = {}
        deletes: dict[str, tuple[datetime, int]] = {}
        requests: dict[int, int] = {}
        for event in events:
            pk = event.order_pk
            if pk is None:
                outcomes[event.id] = ("invalid", 0)
                continue
            if event.method == "DELETE":
                previous = deletes.get(pk)
                if previous is not None:
                    outcomes[previous[1]] = ("duplicate", 0)
                deletes[pk] = (event.received_at, event.id)
                continue
            doc = event.body if isinstance(event.body, dict) else {}
            spent = 0
            if needs_detail(doc):
                fetched = self._fetch(org_pk, pk)
                spent = 0 if self._client is None else 1
                if isinstance(fetched, _Unfetched):
                    outcomes[event.id] = ("unfetched", spent)
                    continue
                if fetched is None:  # gone at the source: the deletion was (or will be) announced
                    deletes.setdefault(pk, (event.received_at, event.id))
                    outcomes[event.id] = ("gone", 1)
                    continue
                doc = fetched
            requests[event.id] = spent
            nested = api_datetime_or_none(doc.get("nested_updated_at"))
            current = best.get(pk)
            if current is not None:
                older = current[0] is not None and nested is not None and nested < current[0]
                if older:
                    outcomes[event.id] = ("older", spent)
                    continue
                outcomes[current[1]] = ("duplicate", requests.get(current[1], 0))
            best[pk] = (nested, event.id, doc)

        # A deletion beats every version not newer than it (kept deliveries and the warehouse).
        candidates = sorted(set(best) | set(deletes))
        kept_deletes = wh.latest_deletions(self.engine, org_pk, candidates)
        for pk, (at, _) in deletes.items():
            if pk not in kept_deletes or kept_deletes[pk] < at:
                kept_deletes[pk] = at
        stored = wh.order_states(self.engine, org_pk, candidates)
        docs: list[dict[str, Any]] = []
        for pk, (nested, event_id, doc) in best.items():
            deleted_at = kept_deletes.get(pk)
            stored_deleted = stored.get(pk, (None, None))[1]
            barrier = max((d for d in (deleted_at, stored_deleted) if d is not None), default=None)
            if barrier is not None and (nested is None or nested <= barrier):
                outcomes[event_id] = ("superseded", requests.get(event_id, 0))
                continue
            docs.append(doc)
            outcomes[event_id] = ("applied", requests.get(event_id, 0))
            if pk in deletes:  # this version is newer than the deletion in the same batch
                _, delete_id = deletes.pop(pk)
                outcomes.setdefault(delete_id, ("superseded", 0))

        if docs:
            now = datetime.now(UTC)
            batch = normalize_orders(org_pk, docs, now)
            # no checkpoint: the watermark stays; history rows say how the version was seen
            stats = self.loader.load_batch(org_pk, batch, observed_by="webhook")
            self.report.orders_loaded += len(docs)
            self.report.orders_new += stats.orders_new
            self.report.orders_updated += stats.orders_updated
            self.report.orders_unchanged += stats.orders_unchanged
            self.report.orders_skipped_older += stats.orders_skipped_older
        for pk, (at, event_id) in sorted(deletes.items()):
            self.report.orders_deleted += wh_state.mark_deleted(
                self.engine, org_pk, [pk], at, history=self.history
            )
            outcomes.setdefault(event_id, ("deleted", 0))
        return outcomes

    # -- running --------------------------------------------------------------------------

    def drain(self) -> int:
        """Apply batches until nothing is pending; returns events applied."""
        total = 0
        while True:
            n = self.apply_pending()
            total += n
            if n < self.batch_size:
                return total

    def prune_if_due(self) -> int:
        """Delete applied events older than the retention, at most once an hour."""
        if time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return 0
        self._last_prune = time.monotonic()
        removed = wh.prune(self.engine, datetime.now(UTC) - self.retention)
        if removed:
            log.info("pruned %d webhook events older than %s", removed, self.retention)
        return removed

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Apply until `stop` is set: right after `wake` is set, else every IDLE_POLL_S."""
        wake = wake or threading.Event()
        while not stop.is_set():
            try:
                self.prune_if_due()
                self.drain()
            except Exception as exc:  # keep the receiver alive; the events stay pending
                log.error(
                    "applying webhook events failed (%s: %s); retrying",
                    type(exc).__name__,
                    str(exc)[:200],
                )
                stop.wait(IDLE_POLL_S)
            if wake.wait(IDLE_POLL_S):
                wake.clear()
                stop.wait(GATHER_S)
