"""The shared request budget's ledger: which requests every process of one App was granted.

One `api_budget` row per App and host (its key is a hash of the base URL and the App name,
never the token) and one `api_requests` row per granted request. A grant is decided inside one
short transaction that holds the App's row: `SELECT ... FOR UPDATE` on PostgreSQL, a write
transaction (`BEGIN IMMEDIATE`) on SQLite. Nothing is held between requests, so a process that
dies holds nothing: its past grants simply age out of the window. The policy (window, reserved
share, pauses) is decided by the caller (rc_extract.budget); this module only counts and records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from warehouse import models
from warehouse.db import dialect_insert, write_transaction

# Grants older than this are deleted (status reports the last hour and the last day).
KEEP_S = 2 * 86400.0


@dataclass(frozen=True)
class Window:
    """The caller's limits for one decision: at most `limit` in `period_s`, bulk at most `bulk_cap`."""

    limit: int
    period_s: float
    bulk_cap: int


@dataclass(frozen=True)
class BudgetState:
    """The App's budget row as `rc-sync status` shows it."""

    key: str
    rate: str | None
    paused_until: float | None
    throttled_total: int
    now: float


def db_now(conn: Connection) -> float:
    """Seconds since the epoch by the database's clock on PostgreSQL (one clock for every host
    sharing the warehouse), by this host's clock on SQLite (a local file)."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
        return float(value)
    return time.time()


def _locked_row(conn: Connection, key: str) -> sa.Row[tuple[object, ...]]:
    """The App's budget row, created if missing, locked until the transaction ends."""
    table = models.api_budget_table
    conn.execute(
        dialect_insert(conn, table)
        .values(key=key, throttle_level=0, throttled_total=0, updated_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["key"])
    )
    query = sa.select(table).where(table.c.key == key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one()


def _nth_oldest(conn: Connection, key: str, since: float, offset: int, bulk_only: bool) -> float:
    grants = models.api_requests_table
    query = sa.select(grants.c.sent_at).where(grants.c.key == key, grants.c.sent_at > since)
    if bulk_only:
        query = query.where(grants.c.priority == "bulk")
    value = conn.execute(query.order_by(grants.c.sent_at).limit(1).offset(offset)).scalar_one()
    return float(value)


def try_grant(
    engine: Engine,
    key: str,
    window: Window,
    *,
    purpose: str,
    priority: str,
    rate_text: str,
    prune: bool = False,
) -> tuple[float, str]:
    """Grant and record one request now, or say how long to wait and why: (0, "") = granted."""
    grants = models.api_requests_table
    budget = models.api_budget_table
    with write_transaction(engine) as conn:
        row = _locked_row(conn, key)
        now = db_now(conn)
        changes: dict[str, object] = {}
        if priority == "refresh":
            changes["refresh_seen_at"] = now
        if row.rate != rate_text:
            changes["rate"] = rate_text
        if changes:
            changes["updated_at"] = datetime.now(UTC)
            conn.execute(sa.update(budget).where(budget.c.key == key).values(**changes))
        if row.paused_until is not None and now < row.paused_until:
            return row.paused_until - now, "paused after a 429 from the API"
        since = now - window.period_s
        total, bulk = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(
                    sa.func.sum(sa.case((grants.c.priority == "bulk", 1), else_=0)), 0
                ),
            ).where(grants.c.key == key, grants.c.sent_at > since)
        ).one()
        refresh_waiting = (
            row.refresh_seen_at is not None and now - row.refresh_seen_at < window.period_s
        )
        if total >= window.limit:
            oldest = _nth_oldest(conn, key, since, total - window.limit, bulk_only=False)
            return max(oldest + window.period_s - now, 0.001), f"budget {rate_text} used"
        if priority == "bulk" and refresh_waiting and bulk >= window.bulk_cap:
            oldest = _nth_oldest(conn, key, since, bulk - window.bulk_cap, bulk_only=True)
            return (
                max(oldest + window.period_s - now, 0.001),
                f"budget {rate_text}: leaving refresh work its reserved share",
            )
        conn.execute(
            sa.insert(grants).values(key=key, sent_at=now, purpose=purpose, priority=priority)
        )
        if prune:
            conn.execute(
                sa.delete(grants).where(grants.c.key == key, grants.c.sent_at < now - KEEP_S)
            )
        return 0.0, ""


def record_throttle(
    engine: Engine, key: str, pause_for: Callable[[int], float], reset_after_s: float
) -> float:
    """Record a 429 and pause the App; returns the pause that now applies (seconds).

    A 429 that arrives while the App is already paused (a request sent before the pause
    began) does not lengthen the pause; one that arrives within `reset_after_s` of the end of
    the last pause raises the level, which `pause_for(level)` turns into seconds.
    """
    budget = models.api_budget_table
    with write_transaction(engine) as conn:
        row = _locked_row(conn, key)
        now = db_now(conn)
        values: dict[str, object] = {"throttled_total": row.throttled_total + 1}
        if row.paused_until is not None and now < row.paused_until:
            pause = row.paused_until - now
        else:
            recent = row.paused_until is not None and now - row.paused_until < reset_after_s
            level = row.throttle_level + 1 if recent else 1
            pause = pause_for(level)
            values |= {"throttle_level": level, "paused_until": now + pause}
        values["updated_at"] = datetime.now(UTC)
        conn.execute(sa.update(budget).where(budget.c.key == key).values(**values))
        return float(pause)


def usage(engine: Engine, key: str, periods: dict[str, float]) -> dict[str, dict[str, int]]:
    """Granted requests per purpose over each named period back from now: {period: {purpose: n}}."""
    grants = models.api_requests_table
    with engine.connect() as conn:
        now = db_now(conn)
        result: dict[str, dict[str, int]] = {}
        for name, seconds in periods.items():
            rows = conn.execute(
                sa.select(grants.c.purpose, sa.func.count())
                .where(grants.c.key == key, grants.c.sent_at > now - seconds)
                .group_by(grants.c.purpose)
            ).all()
            result[name] = {str(purpose): int(n) for purpose, n in rows}
        return result


def state(engine: Engine, key: str) -> BudgetState | None:
    """The App's budget row, or None when no run has used the budget yet."""
    table = models.api_budget_table
    with engine.connect() as conn:
        now = db_now(conn)
        row = conn.execute(sa.select(table).where(table.c.key == key)).one_or_none()
    if row is None:
        return None
    return BudgetState(key, row.rate, row.paused_until, int(row.throttled_total), now)
