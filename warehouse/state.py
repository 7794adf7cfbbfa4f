"""Sync bookkeeping: watermarks, runs, status, reconcile helpers and backfill progress."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rc_common.tables import DATA_TABLES
from warehouse import history as wh_history
from warehouse import models
from warehouse.bulk import BulkWriter
from warehouse.db import chunks as _chunks
from warehouse.db import dialect_insert, write_transaction
from warehouse.normalize import NORMALIZE_VERSION

RUNNING, SUCCESS, FAILED, ABANDONED = "running", "success", "failed", "abandoned"


@dataclass(frozen=True)
class OrgStatus:
    """One line of `rc-sync status`."""

    org_pk: str
    watermark: datetime | None
    last_run_id: int | None
    last_run_kind: str | None
    last_run_at: datetime | None
    last_run_status: str | None
    row_counts: dict[str, int] = field(default_factory=dict)
    orders_deleted: int = 0
    open_issues: int = 0
    stale_orders: int = 0  # typed by an older normalization: `rc-sync rebuild` fixes them


def _now() -> datetime:
    return datetime.now(UTC)


# -- watermark ------------------------------------------------------------------


def get_watermark(engine: Engine, org_pk: str) -> datetime | None:
    """The org's live watermark (None before the first completed live sync)."""
    state = models.sync_state_table
    with engine.connect() as conn:
        return conn.execute(
            sa.select(state.c.watermark).where(state.c.org_pk == org_pk)
        ).scalar_one_or_none()


def reset_watermark(engine: Engine, org_pk: str) -> None:
    """Forget the org's watermark (the next incremental run reads everything)."""
    rewind_watermark(engine, org_pk, None)


def rewind_watermark(engine: Engine, org_pk: str, watermark: datetime | None) -> None:
    """Set the org's watermark to `watermark` even if that is earlier (None = forget it).

    Moving a watermark back only makes the next run read more; used for a reset by an
    operator and for a watermark found ahead of the server's clock.
    """
    state = models.sync_state_table
    with write_transaction(engine, org_pk) as conn:
        conn.execute(
            sa.update(state)
            .where(state.c.org_pk == org_pk)
            .values(watermark=watermark, watermark_updated_at=_now(), updated_at=_now())
        )


def latest_change(engine: Engine, org_pk: str) -> datetime | None:
    """The latest nested_updated_at stored for the org (the server's clock), or None."""
    orders = models.orders_table
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(orders.c.nested_updated_at)).where(orders.c.org_pk == org_pk)
        ).scalar_one_or_none()


# -- runs -----------------------------------------------------------------------


def begin_run(
    engine: Engine, *, kind: str, org_pks: Sequence[str], started_at: datetime | None = None
) -> int:
    """Record a starting run (sync_runs row, sync_state.last_run_* per org); returns its id."""
    orgs = list(org_pks)
    started = started_at or _now()
    runs = models.sync_runs_table
    with write_transaction(engine) as conn:
        run_id = conn.execute(
            sa.insert(runs)
            .values(
                kind=kind,
                started_at=started,
                status=RUNNING,
                orgs=list(orgs),
                host=socket.gethostname(),
                pid=os.getpid(),
            )
            .returning(runs.c.id)
        ).scalar_one()
        for org in orgs:
            _touch_org(
                conn,
                org,
                {
                    "last_run_id": run_id,
                    "last_run_kind": kind,
                    "last_run_started_at": started,
                    "last_run_finished_at": None,
                    "last_run_status": RUNNING,
                },
            )
    return int(run_id)


def finish_run(
    engine: Engine,
    run_id: int | None,
    report: Any = None,
    *,
    status: str | None = None,
    counts: dict[str, Any] | None = None,
    requests: int | None = None,
    retries: int | None = None,
    throttled: int | None = None,
    error: str | None = None,
    finished_at: datetime | None = None,
) -> None:
    """Record how a run ended; values come from `report` (a RunReport) unless given explicitly."""
    if run_id is None:
        return
    if report is not None:
        status = status or getattr(report, "status", None)
        error = error if error is not None else getattr(report, "error", None)
        requests = requests if requests is not None else getattr(report, "requests", None)
        retries = retries if retries is not None else getattr(report, "retries", None)
        throttled = throttled if throttled is not None else getattr(report, "throttled", None)
        if counts is None and hasattr(report, "to_dict"):
            counts = report.to_dict()
    status = status if status in (SUCCESS, FAILED) else (status or FAILED)
    if counts is not None:
        counts = json.loads(json.dumps(counts, default=str))
    finished = finished_at or _now()
    runs = models.sync_runs_table
    state = models.sync_state_table
    with write_transaction(engine) as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(
                finished_at=finished,
                status=status,
                counts=counts,
                requests=requests,
                retries=retries,
                throttled=throttled,
                error=error,
            )
        )
        conn.execute(
            sa.update(state)
            .where(state.c.last_run_id == run_id)
            .values(last_run_finished_at=finished, last_run_status=status, updated_at=finished)
        )


def orgs_with_state(engine: Engine, org_pks: Sequence[str]) -> set[str]:
    """Those of `org_pks` that have a sync_state row."""
    state = models.sync_state_table
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(state.c.org_pk).where(state.c.org_pk.in_(list(org_pks)))
            ).scalars()
        )


def forget_org(engine: Engine, org_pk: str) -> bool:
    """Remove the sync_state row of an org that never loaded anything (no watermark, no
    orders): a mistyped org the API refused must not be listed by `status` for ever."""
    state = models.sync_state_table
    orders = models.orders_table
    with write_transaction(engine) as conn:
        removed = conn.execute(
            sa.delete(state).where(
                state.c.org_pk == org_pk,
                state.c.watermark.is_(None),
                ~sa.exists().where(orders.c.org_pk == org_pk),
            )
        ).rowcount
    return bool(removed)


def _touch_org(conn: Connection, org_pk: str, values: dict[str, Any]) -> None:
    state = models.sync_state_table
    now = _now()
    stmt = dialect_insert(conn, state).values(org_pk=org_pk, updated_at=now, **values)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["org_pk"], set_={**values, "updated_at": now})
    )


# -- capabilities ---------------------------------------------------------------


def get_capabilities(engine: Engine, org_pk: str) -> dict[str, Any] | None:
    """Cached API capability probes for the org, if any."""
    state = models.sync_state_table
    with engine.connect() as conn:
        return conn.execute(
            sa.select(state.c.capabilities).where(state.c.org_pk == org_pk)
        ).scalar_one_or_none()


def set_capabilities(engine: Engine, org_pk: str, capabilities: dict[str, Any]) -> None:
    """Cache API capability probes for the org."""
    with write_transaction(engine, org_pk) as conn:
        _touch_org(conn, org_pk, {"capabilities": capabilities})


# -- status ---------------------------------------------------------------------


def status(engine: Engine, orgs: Sequence[str] | None = None) -> list[OrgStatus]:
    """Per org: watermark, last run, row counts per table, open load issues."""
    state = models.sync_state_table
    with engine.connect() as conn:
        counts: dict[str, dict[str, int]] = {}
        for name in DATA_TABLES:
            table = models.metadata.tables[name]
            for org, n in conn.execute(
                sa.select(table.c.org_pk, sa.func.count()).group_by(table.c.org_pk)
            ):
                counts.setdefault(org, {})[name] = int(n)
        orders = models.orders_table
        deleted: dict[str, int] = dict(
            conn.execute(
                sa.select(orders.c.org_pk, sa.func.count())
                .where(orders.c.deleted_at.is_not(None))
                .group_by(orders.c.org_pk)
            ).all()
        )
        issues_table = models.load_issues_table
        issues: dict[str, int] = dict(
            conn.execute(
                sa.select(issues_table.c.org_pk, sa.func.count()).group_by(issues_table.c.org_pk)
            ).all()
        )
        states = {r.org_pk: r for r in conn.execute(sa.select(state))}
        stale: dict[str, int] = dict(
            conn.execute(
                sa.select(orders.c.org_pk, sa.func.count())
                .where(
                    sa.or_(
                        orders.c.normalize_version.is_(None),
                        orders.c.normalize_version != NORMALIZE_VERSION,
                    )
                )
                .group_by(orders.c.org_pk)
            ).all()
        )
    wanted = list(orgs) if orgs is not None else sorted(set(states) | set(counts))
    rows = []
    for org in wanted:
        st = states.get(org)
        rows.append(
            OrgStatus(
                org_pk=org,
                watermark=st.watermark if st else None,
                last_run_id=st.last_run_id if st else None,
                last_run_kind=st.last_run_kind if st else None,
                last_run_at=(st.last_run_finished_at or st.last_run_started_at) if st else None,
                last_run_status=st.last_run_status if st else None,
                row_counts={t: counts.get(org, {}).get(t, 0) for t in DATA_TABLES},
                orders_deleted=int(deleted.get(org, 0)),
                open_issues=int(issues.get(org, 0)),
                stale_orders=int(stale.get(org, 0)),
            )
        )
    return rows


def warehouse_orgs(engine: Engine) -> list[str]:
    """Every org that has orders in the warehouse."""
    orders = models.orders_table
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(orders.c.org_pk).distinct()).scalars())


# -- reconcile ------------------------------------------------------------------


def known_orders(
    engine: Engine, org_pk: str, *, include_deleted: bool = False
) -> dict[str, datetime | None]:
    """order_pk -> stored nested_updated_at for the org (live orders unless include_deleted)."""
    orders = models.orders_table
    query = sa.select(orders.c.order_pk, orders.c.nested_updated_at).where(
        orders.c.org_pk == org_pk
    )
    if not include_deleted:
        query = query.where(orders.c.deleted_at.is_(None))
    with engine.connect() as conn:
        return {pk: nested for pk, nested in conn.execute(query)}


def deleted_orders(engine: Engine, org_pk: str) -> dict[str, datetime]:
    """order_pk -> deleted_at for the org's orders currently marked deleted."""
    orders = models.orders_table
    query = sa.select(orders.c.order_pk, orders.c.deleted_at).where(
        orders.c.org_pk == org_pk, orders.c.deleted_at.is_not(None)
    )
    with engine.connect() as conn:
        return {pk: at for pk, at in conn.execute(query)}


def _set_deleted_at(
    engine: Engine,
    org_pk: str,
    order_pks: Iterable[str],
    value: datetime | None,
    *,
    history: bool,
    observed_by: str,
    seen_at: datetime | None = None,
) -> int:
    """Set deleted_at to `value` on the orders whose mark differs; returns how many changed.

    With `history`, the same transaction closes (deletion) or reopens (reappearance) the
    orders' current history versions.
    """
    orders = models.orders_table
    pks = sorted(set(order_pks))
    # Only rows whose state flips count: marking marks live orders, clearing clears marked ones.
    differs = (
        orders.c.deleted_at.is_(None) if value is not None else orders.c.deleted_at.is_not(None)
    )
    flipped: list[str] = []
    with write_transaction(engine, org_pk) as conn:
        for chunk in _chunks(pks):
            result = conn.execute(
                sa.update(orders)
                .where(orders.c.org_pk == org_pk, orders.c.order_pk.in_(chunk), differs)
                .values(deleted_at=value)
                .returning(orders.c.order_pk)
            )
            flipped.extend(result.scalars())
        if history and flipped:
            writer = BulkWriter(conn)
            recorder = wh_history.HistoryWriter(conn, writer, org_pk)
            if value is not None:
                recorder.record({}, deletions=dict.fromkeys(flipped, value))
            else:
                seen = seen_at or _now()
                recorder.record({}, reappearances=dict.fromkeys(flipped, (seen, observed_by)))
    return len(flipped)


def mark_deleted(
    engine: Engine, org_pk: str, order_pks: Iterable[str], at: datetime, *, history: bool = True
) -> int:
    """Set deleted_at on these (not yet deleted) orders; returns how many changed."""
    return _set_deleted_at(
        engine, org_pk, order_pks, at, history=history, observed_by=wh_history.RECONCILE
    )


def clear_deleted(
    engine: Engine,
    org_pk: str,
    order_pks: Iterable[str],
    *,
    history: bool = True,
    observed_by: str = wh_history.RECONCILE,
    seen_at: datetime | None = None,
) -> int:
    """Clear deleted_at on these orders (a listing proved them back); returns how many changed.

    With history, each reopens at `seen_at` (default now) with its last version's content.
    """
    return _set_deleted_at(
        engine,
        org_pk,
        order_pks,
        None,
        history=history,
        observed_by=observed_by,
        seen_at=seen_at,
    )


def mark_abandoned(engine: Engine, org_pk: str, current_run: int | None) -> list[int]:
    """Mark runs of this org left `running` by a dead process as `abandoned`; returns their ids.

    Called by a run that holds the org's lock. A run started on this host whose process no
    longer exists is dead; a run from another host cannot be checked and is left alone.
    """
    runs = models.sync_runs_table
    host = socket.gethostname()
    found: list[int] = []
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs.c.id, runs.c.orgs, runs.c.host, runs.c.pid).where(
                runs.c.status == RUNNING
            )
        ).all()
    for run_id, orgs, run_host, pid in rows:
        if run_id == current_run or org_pk not in (orgs or []):
            continue
        if run_host != host or pid is None or _process_alive(int(pid)):
            continue
        found.append(int(run_id))
    if found:
        now = _now()
        state = models.sync_state_table
        with write_transaction(engine) as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.id.in_(found), runs.c.status == RUNNING)
                .values(status=ABANDONED, finished_at=now, error="process died mid-run")
            )
            conn.execute(
                sa.update(state)
                .where(state.c.last_run_id.in_(found))
                .values(last_run_status=ABANDONED, last_run_finished_at=now, updated_at=now)
            )
    return found


def _process_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- backfill progress ------------------------------------------------------------


def days_done(engine: Engine, org_pk: str, key: str) -> set[date]:
    """UTC days of backfill `key` already fully loaded for the org."""
    table = models.backfill_progress_table
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(table.c.day).where(table.c.org_pk == org_pk, table.c.key == key)
            ).scalars()
        )


# -- writes inside a batch transaction (the loader calls these) ---------------------


def advance_watermark(
    conn: Connection, org_pk: str, checkpoint: datetime, now: datetime
) -> datetime:
    """Set sync_state.watermark = max(stored, checkpoint) for the org; return the result."""
    state = models.sync_state_table
    current = conn.execute(
        sa.select(state.c.watermark).where(state.c.org_pk == org_pk)
    ).scalar_one_or_none()
    if current is not None and current >= checkpoint:
        return current
    stmt = dialect_insert(conn, state).values(
        org_pk=org_pk, watermark=checkpoint, watermark_updated_at=now, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_pk"],
        set_={"watermark": checkpoint, "watermark_updated_at": now, "updated_at": now},
    )
    conn.execute(stmt)
    return checkpoint


def record_day_done(conn: Connection, org_pk: str, key: str, day: date, at: datetime) -> None:
    """Mark one day of a keyed backfill as done (on the given connection/transaction)."""
    table = models.backfill_progress_table
    stmt = dialect_insert(conn, table).values(org_pk=org_pk, key=key, day=day, finished_at=at)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["org_pk", "key", "day"], set_={"finished_at": at}
        )
    )
