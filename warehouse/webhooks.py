"""Webhook bookkeeping in the warehouse: deliveries, registrations (token hashes), poll verdicts.

The receiver commits each accepted delivery here before it acknowledges it; the applier reads
pending events and marks them applied; the incremental sync records, per changed order, whether
a webhook had already brought the warehouse up to date (hit) or the poll had to repair it (miss).
Webhook tokens are never stored: only their SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from warehouse import models
from warehouse.db import chunks, dialect_insert, write_transaction

EVENTS = models.webhook_events_table
REGISTRATIONS = models.webhook_registrations_table
POLL_CHECKS = models.webhook_poll_checks_table
HIT, MISS = "hit", "miss"


def _now() -> datetime:
    return datetime.now(UTC)


def token_digest(token: str) -> str:
    """Hex SHA-256 of a webhook token (tokens are long random strings: no salt needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(given: str | None, digests: Iterable[str]) -> bool:
    """Whether `given` is one of the tokens behind `digests`, compared in constant time."""
    candidate = token_digest(given or "")
    found = False
    for digest in digests:  # no early exit: the time does not depend on which one matched
        found |= hmac.compare_digest(candidate, digest)
    return found and bool(given)


# -- registrations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """A webhook rc-sync registered (what the warehouse knows about it)."""

    org_pk: str
    webhook_url: str
    entity: str
    remote_url: str
    registered_at: datetime
    suspended_at: datetime | None
    checked_at: datetime | None


def save_registration(
    engine: Engine,
    *,
    org_pk: str,
    webhook_url: str,
    entity: str,
    remote_url: str,
    token: str,
    at: datetime | None = None,
) -> None:
    """Store (or replace) a registered webhook with the hash of its token."""
    moment = at or _now()
    values = {
        "org_pk": org_pk,
        "webhook_url": webhook_url,
        "entity": entity,
        "remote_url": remote_url,
        "token_sha256": token_digest(token),
        "registered_at": moment,
        "suspended_at": None,
        "checked_at": moment,
    }
    with write_transaction(engine, org_pk) as conn:
        stmt = dialect_insert(conn, REGISTRATIONS).values(**values)
        keys = ("org_pk", "webhook_url")
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={k: v for k, v in values.items() if k not in keys},
            )
        )


def registrations(engine: Engine, orgs: Sequence[str] | None = None) -> list[Registration]:
    """Registered webhooks (of some orgs, or all), oldest first."""
    query = sa.select(
        REGISTRATIONS.c.org_pk,
        REGISTRATIONS.c.webhook_url,
        REGISTRATIONS.c.entity,
        REGISTRATIONS.c.remote_url,
        REGISTRATIONS.c.registered_at,
        REGISTRATIONS.c.suspended_at,
        REGISTRATIONS.c.checked_at,
    ).order_by(REGISTRATIONS.c.registered_at)
    if orgs:
        query = query.where(REGISTRATIONS.c.org_pk.in_(list(orgs)))
    with engine.connect() as conn:
        return [Registration(*row) for row in conn.execute(query)]


def token_digests(engine: Engine) -> dict[str, list[str]]:
    """org_pk -> token hashes of its registered webhooks (what the receiver verifies against)."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for org_pk, digest in conn.execute(
            sa.select(REGISTRATIONS.c.org_pk, REGISTRATIONS.c.token_sha256)
        ):
            out.setdefault(org_pk, []).append(digest)
    return out


def note_suspension(
    engine: Engine, org_pk: str, webhook_url: str, suspended_at: datetime | None
) -> None:
    """Record suspended_at as just read from ReadyCloud."""
    with write_transaction(engine, org_pk) as conn:
        conn.execute(
            sa.update(REGISTRATIONS)
            .where(REGISTRATIONS.c.org_pk == org_pk, REGISTRATIONS.c.webhook_url == webhook_url)
            .values(suspended_at=suspended_at, checked_at=_now())
        )


def delete_registration(engine: Engine, org_pk: str, webhook_url: str) -> int:
    """Forget a webhook (its token stops being accepted); returns rows removed."""
    with write_transaction(engine, org_pk) as conn:
        return conn.execute(
            sa.delete(REGISTRATIONS).where(
                REGISTRATIONS.c.org_pk == org_pk, REGISTRATIONS.c.webhook_url == webhook_url
            )
        ).rowcount


def first_registered(engine: Engine, org_pk: str) -> datetime | None:
    """When the org's oldest registered webhook was registered (None: no webhooks)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.min(REGISTRATIONS.c.registered_at)).where(
                REGISTRATIONS.c.org_pk == org_pk
            )
        ).scalar_one_or_none()


# -- events -------------------------------------------------------------------------------


def insert_event(engine: Engine, event: dict[str, Any]) -> int:
    """Commit one accepted delivery; returns its id. Returns only once it is durable."""
    with write_transaction(engine) as conn:
        result = conn.execute(sa.insert(EVENTS).values(**event).returning(EVENTS.c.id))
        return int(result.scalar_one())


@dataclass(frozen=True)
class PendingEvent:
    """A stored delivery not yet applied."""

    id: int
    org_pk: str
    method: str
    order_pk: str | None
    object_url: str | None
    body: Any
    received_at: datetime
    nested_updated_at: datetime | None


def pending_events(engine: Engine, limit: int) -> list[PendingEvent]:
    """The oldest `limit` deliveries not yet applied, in arrival order."""
    query = (
        sa.select(
            EVENTS.c.id,
            EVENTS.c.org_pk,
            EVENTS.c.method,
            EVENTS.c.order_pk,
            EVENTS.c.object_url,
            EVENTS.c.body,
            EVENTS.c.received_at,
            EVENTS.c.nested_updated_at,
        )
        .where(EVENTS.c.applied_at.is_(None))
        .order_by(EVENTS.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [PendingEvent(*row) for row in conn.execute(query)]


def mark_applied(
    engine: Engine, outcomes: dict[int, tuple[str, int]], at: datetime | None = None
) -> None:
    """Record event id -> (outcome, requests spent) as applied, in one transaction."""
    if not outcomes:
        return
    moment = at or _now()
    by_outcome: dict[tuple[str, int], list[int]] = {}
    for event_id, key in outcomes.items():
        by_outcome.setdefault(key, []).append(event_id)
    with write_transaction(engine) as conn:
        for (outcome, requests), ids in by_outcome.items():
            for chunk in chunks(sorted(ids)):
                conn.execute(
                    sa.update(EVENTS)
                    .where(EVENTS.c.id.in_(chunk))
                    .values(applied_at=moment, outcome=outcome, requests=requests)
                )


def latest_deletions(engine: Engine, org_pk: str, order_pks: Sequence[str]) -> dict[str, datetime]:
    """order_pk -> received_at of the latest DELETE delivery kept for it."""
    out: dict[str, datetime] = {}
    with engine.connect() as conn:
        for chunk in chunks(sorted(set(order_pks))):
            query = (
                sa.select(EVENTS.c.order_pk, sa.func.max(EVENTS.c.received_at))
                .where(
                    EVENTS.c.org_pk == org_pk,
                    EVENTS.c.method == "DELETE",
                    EVENTS.c.order_pk.in_(chunk),
                )
                .group_by(EVENTS.c.order_pk)
            )
            for pk, at in conn.execute(query):
                if at is not None:
                    out[pk] = at
    return out


def order_states(
    engine: Engine, org_pk: str, order_pks: Sequence[str]
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """order_pk -> (stored nested_updated_at, deleted_at) for the orders the warehouse has."""
    orders = models.orders_table
    out: dict[str, tuple[datetime | None, datetime | None]] = {}
    with engine.connect() as conn:
        for chunk in chunks(sorted(set(order_pks))):
            query = sa.select(
                orders.c.order_pk, orders.c.nested_updated_at, orders.c.deleted_at
            ).where(orders.c.org_pk == org_pk, orders.c.order_pk.in_(chunk))
            for pk, nested, deleted in conn.execute(query):
                out[pk] = (nested, deleted)
    return out


def prune(engine: Engine, older_than: datetime) -> int:
    """Delete applied events received before `older_than` and older poll checks; returns events removed."""
    with write_transaction(engine) as conn:
        removed = conn.execute(
            sa.delete(EVENTS).where(
                EVENTS.c.applied_at.is_not(None), EVENTS.c.received_at < older_than
            )
        ).rowcount
        conn.execute(sa.delete(POLL_CHECKS).where(POLL_CHECKS.c.polled_at < older_than))
    return int(removed or 0)


# -- poll verdicts ----------------------------------------------------------------------


def record_poll(
    engine: Engine,
    org_pk: str,
    changed: dict[str, datetime | None],
    unchanged: Sequence[str],
    at: datetime | None = None,
) -> tuple[int, int]:
    """After a live poll's batch: count webhook hits and misses for the org; returns (hits, misses).

    A hit is an order the poll found already current whose webhook event had no verdict yet;
    a miss is an order the poll had to write although webhooks were registered when it changed.
    """
    since = first_registered(engine, org_pk)
    if since is None or (not changed and not unchanged):
        return 0, 0
    moment = at or _now()
    missed = sorted(pk for pk, nested in changed.items() if nested is not None and nested >= since)
    hits = 0
    with write_transaction(engine, org_pk) as conn:
        for chunk in chunks(sorted(set(unchanged))):
            open_events = sa.and_(
                EVENTS.c.org_pk == org_pk,
                EVENTS.c.order_pk.in_(chunk),
                EVENTS.c.poll_verdict.is_(None),
                EVENTS.c.applied_at.is_not(None),
                EVENTS.c.method != "DELETE",
            )
            found = conn.execute(sa.select(EVENTS.c.order_pk).where(open_events).distinct())
            hits += len(found.all())
            conn.execute(
                sa.update(EVENTS).where(open_events).values(poll_verdict=HIT, polled_at=moment)
            )
        for chunk in chunks(missed):
            conn.execute(
                sa.update(EVENTS)
                .where(
                    EVENTS.c.org_pk == org_pk,
                    EVENTS.c.order_pk.in_(chunk),
                    EVENTS.c.poll_verdict.is_(None),
                )
                .values(poll_verdict=MISS, polled_at=moment)
            )
        if hits or missed:
            conn.execute(
                sa.insert(POLL_CHECKS).values(
                    org_pk=org_pk, polled_at=moment, hits=hits, misses=len(missed)
                )
            )
    return hits, len(missed)


@dataclass(frozen=True)
class WebhookStatus:
    """Per org: webhook deliveries and how often polls found them missing."""

    org_pk: str
    received: int
    pending: int
    last_received_at: datetime | None
    hits: int
    misses: int
    registered: int
    suspended: int

    @property
    def miss_rate(self) -> float | None:
        """misses / (hits + misses) over the window, None before any poll verdict."""
        total = self.hits + self.misses
        return None if total == 0 else self.misses / total


def status(engine: Engine, since: datetime) -> dict[str, WebhookStatus]:
    """Per org: events received since `since`, pending events, hits/misses of polls since `since`."""
    with engine.connect() as conn:
        received = {
            org: (int(n), at)
            for org, n, at in conn.execute(
                sa.select(EVENTS.c.org_pk, sa.func.count(), sa.func.max(EVENTS.c.received_at))
                .where(EVENTS.c.received_at >= since)
                .group_by(EVENTS.c.org_pk)
            )
        }
        pending: dict[str, int] = dict(
            conn.execute(
                sa.select(EVENTS.c.org_pk, sa.func.count())
                .where(EVENTS.c.applied_at.is_(None))
                .group_by(EVENTS.c.org_pk)
            ).all()
        )
        polls = {
            org: (int(h or 0), int(m or 0))
            for org, h, m in conn.execute(
                sa.select(
                    POLL_CHECKS.c.org_pk,
                    sa.func.sum(POLL_CHECKS.c.hits),
                    sa.func.sum(POLL_CHECKS.c.misses),
                )
                .where(POLL_CHECKS.c.polled_at >= since)
                .group_by(POLL_CHECKS.c.org_pk)
            )
        }
        regs: dict[str, tuple[int, int]] = {}
        for org, suspended in conn.execute(
            sa.select(REGISTRATIONS.c.org_pk, REGISTRATIONS.c.suspended_at)
        ):
            n, s = regs.get(org, (0, 0))
            regs[org] = (n + 1, s + (suspended is not None))
    out: dict[str, WebhookStatus] = {}
    for org in sorted(set(received) | set(pending) | set(polls) | set(regs)):
        n, last = received.get(org, (0, None))
        hits, misses = polls.get(org, (0, 0))
        reg, susp = regs.get(org, (0, 0))
        out[org] = WebhookStatus(
            org_pk=org,
            received=n,
            pending=int(pending.get(org, 0)),
            last_received_at=last,
            hits=hits,
            misses=misses,
            registered=reg,
            suspended=susp,
        )
    return out


def applied_after(
    engine: Engine, after_id: int, limit: int = 10_000
) -> list[tuple[int, str, datetime | None, datetime]]:
    """(id, org_pk, nested_updated_at, applied_at) of applied events with id > after_id.

    Stops before the oldest pending event, so that a cursor on the last id returned never
    skips an event applied later.
    """
    with engine.connect() as conn:
        first_pending = conn.execute(
            sa.select(sa.func.min(EVENTS.c.id)).where(EVENTS.c.applied_at.is_(None))
        ).scalar_one_or_none()
        query = (
            sa.select(EVENTS.c.id, EVENTS.c.org_pk, EVENTS.c.nested_updated_at, EVENTS.c.applied_at)
            .where(EVENTS.c.id > after_id, EVENTS.c.applied_at.is_not(None))
            .order_by(EVENTS.c.id)
            .limit(limit)
        )
        if first_pending is not None:
            query = query.where(EVENTS.c.id < first_pending)
        return [(int(i), org, nested, at) for i, org, nested, at in conn.execute(query)]


def last_applied(engine: Engine) -> dict[str, datetime]:
    """org_pk -> when the latest webhook event was applied, for orgs with an unsuspended webhook."""
    with engine.connect() as conn:
        active = {
            org
            for (org,) in conn.execute(
                sa.select(REGISTRATIONS.c.org_pk).where(REGISTRATIONS.c.suspended_at.is_(None))
            )
        }
        rows = conn.execute(
            sa.select(EVENTS.c.org_pk, sa.func.max(EVENTS.c.applied_at)).group_by(EVENTS.c.org_pk)
        )
        return {org: at for org, at in rows if org in active and at is not None}
