"""Data-quality and count SQL over the warehouse (SQLAlchemy Core, both dialects).

What the Dagster assets and checks report, reached through `rc_sync.engine.SyncEngine`:
rows per UTC day, key uniqueness, orphans, watermarks, new load issues, view sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from rc_common.tables import DATA_TABLES, TABLE_KEYS, VIEW_NAMES
from warehouse import models


def _table(name: str) -> sa.Table:
    return models.metadata.tables[name]


def rows_in_window(
    conn: sa.Connection,
    table: str,
    since: datetime | None,
    until: datetime | None,
    orgs: Sequence[str] | None = None,
) -> int:
    """Rows of `table` that belong to live orders whose nested_updated_at is in [since, until)."""
    orders = _table("orders")
    cond: list[Any] = [orders.c.deleted_at.is_(None)]
    if since is not None:
        cond.append(orders.c.nested_updated_at >= since)
    if until is not None:
        cond.append(orders.c.nested_updated_at < until)
    if orgs:
        cond.append(orders.c.org_pk.in_(list(orgs)))
    if table == "orders":
        query = sa.select(sa.func.count()).select_from(orders).where(*cond)
    else:
        child = _table(table)
        query = (
            sa.select(sa.func.count())
            .select_from(
                child.join(
                    orders,
                    sa.and_(
                        orders.c.org_pk == child.c.org_pk, orders.c.order_pk == child.c.order_pk
                    ),
                )
            )
            .where(*cond)
        )
    return int(conn.execute(query).scalar_one())


def duplicate_keys(conn: sa.Connection, table: str, limit: int = 10) -> list[tuple[Any, ...]]:
    """Key values that occur more than once in `table` (with their count), at most `limit`."""
    t = _table(table)
    cols = [t.c[name] for name in TABLE_KEYS[table]]
    query = (
        sa.select(*cols, sa.func.count().label("n"))
        .group_by(*cols)
        .having(sa.func.count() > 1)
        .limit(limit)
    )
    return [tuple(row) for row in conn.execute(query)]


def duplicate_key_count(conn: sa.Connection, table: str) -> int:
    """How many key values occur more than once in `table`."""
    t = _table(table)
    cols = [t.c[name] for name in TABLE_KEYS[table]]
    dupes = sa.select(*cols).group_by(*cols).having(sa.func.count() > 1).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(dupes)).scalar_one())


def orphans(conn: sa.Connection, child: str, parent: str, limit: int = 10) -> tuple[int, list[Any]]:
    """Rows of `child` whose parent row (by the parent's key) is missing: count and examples."""
    c, p = _table(child), _table(parent)
    key = TABLE_KEYS[parent]
    exists = sa.exists().where(*[p.c[k] == c.c[k] for k in key])
    where = ~exists
    total = int(conn.execute(sa.select(sa.func.count()).select_from(c).where(where)).scalar_one())
    examples = [
        tuple(r)
        for r in conn.execute(
            sa.select(*[c.c[k] for k in TABLE_KEYS[child]]).where(where).limit(limit)
        )
    ]
    return total, examples


def watermarks(
    conn: sa.Connection, orgs: Sequence[str] | None = None
) -> dict[str, datetime | None]:
    """The live watermark of every org in sync_state (or of the given orgs)."""
    state = _table("sync_state")
    query = sa.select(state.c.org_pk, state.c.watermark)
    if orgs:
        query = query.where(state.c.org_pk.in_(list(orgs)))
    found: dict[str, datetime | None] = {row[0]: row[1] for row in conn.execute(query)}
    for org in orgs or ():
        found.setdefault(org, None)
    return found


def load_issues_since(conn: sa.Connection, since: datetime) -> list[dict[str, Any]]:
    """Load issues first seen at or after `since`, per table and column with a count."""
    issues = _table("load_issues")
    query = (
        sa.select(issues.c.table_name, issues.c.column_name, sa.func.count().label("n"))
        .where(issues.c.seen_at >= since)
        .group_by(issues.c.table_name, issues.c.column_name)
        .order_by(sa.desc("n"))
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def view_row_count(conn: sa.Connection, view: str) -> int:
    """Rows an analyst view returns right now."""
    if view not in VIEW_NAMES:
        raise ValueError(f"unknown view {view!r}")
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {view}")).scalar_one())


def _utc_day(conn: sa.Connection, column: Any) -> Any:
    """SQL for the UTC calendar day (YYYY-MM-DD text) of a timestamp column."""
    if conn.dialect.name == "sqlite":
        return sa.func.substr(column, 1, 10)  # stored as fixed-width ISO-8601 UTC text
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")


def rows_per_day(
    conn: sa.Connection, since: datetime | None, until: datetime | None
) -> dict[str, dict[str, int]]:
    """Rows of each data table per UTC day of their order's nested_updated_at in [since, until).

    Only live orders (deleted_at IS NULL) count; a day without orders is absent.
    """
    orders = _table("orders")
    cond: list[Any] = [orders.c.deleted_at.is_(None), orders.c.nested_updated_at.is_not(None)]
    if since is not None:
        cond.append(orders.c.nested_updated_at >= since)
    if until is not None:
        cond.append(orders.c.nested_updated_at < until)
    day = _utc_day(conn, orders.c.nested_updated_at).label("day")
    out: dict[str, dict[str, int]] = {}
    for table in DATA_TABLES:
        source: Any = orders
        if table != "orders":
            child = _table(table)
            source = child.join(
                orders,
                sa.and_(orders.c.org_pk == child.c.org_pk, orders.c.order_pk == child.c.order_pk),
            )
        query = sa.select(day, sa.func.count()).select_from(source).where(*cond).group_by(day)
        for value, count in conn.execute(query):
            out.setdefault(str(value), dict.fromkeys(DATA_TABLES, 0))[table] = int(count)
    return dict(sorted(out.items()))
