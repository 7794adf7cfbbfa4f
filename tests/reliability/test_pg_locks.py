"""Hardening: PostgreSQL run locks are checked before each commit, and every lock wait has a
timeout with a clear message (issue 15, defect 4)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from reliability_support import Harness

from rc_common.timefmt import utc_now
from warehouse.db import WriteLockTimeout, make_engine, org_lock_name
from warehouse.load import Loader
from warehouse.locks import RunLockLost, org_run_lock
from warehouse.normalize import normalize_orders

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

HOLDER = sa.text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
    "AND classid = :cls AND objid = ((hashtext(:org)::bigint + 4294967296) % 4294967296)::oid"
)


def _docs(server, org: str, n: int = 5) -> list[dict]:
    from rc_extract.client import ReadyCloudClient

    with ReadyCloudClient(server.base_url, server.token) as client:
        pks = server.store.order_pks(org)[:n]
        return [doc for _, doc in client.iter_order_details(org, pks) if doc is not None]


def _orders(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one())


def _holder(admin: sa.Engine, db: sa.Engine, org: str) -> int | None:
    """The backend pid holding the org's run lock in `db`'s schema, if any."""
    from warehouse.db import RUN_LOCK_CLASS

    with admin.connect() as conn:
        params = {"cls": RUN_LOCK_CLASS, "org": org_lock_name(db, org)}
        return conn.execute(HOLDER, params).scalar()


def _terminate_holder(admin: sa.Engine, db: sa.Engine, org: str) -> int:
    """End the database session that holds the org's run lock (its lock goes with it)."""
    pid = _holder(admin, db, org)
    assert pid is not None, "nobody holds the run lock"
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    time.sleep(0.2)
    return int(pid)


def test_a_lost_run_lock_taken_by_another_run_stops_the_first(harness: Harness, pg_target) -> None:
    """The session holding the org's run lock is terminated and a second run takes the lock:
    the first run's next batch fails before committing (it used to commit alongside)."""
    server = harness.sandbox(orders=40)
    engine = harness.engine(server, pg_target)
    db = engine.db
    org = server.store.org_pks()[0]
    docs = _docs(server, org)
    other = make_engine(pg_target.url, pg_target.schema)
    admin = sa.create_engine(pg_target.url)
    try:
        with org_run_lock(db, org, timeout_s=1):
            _terminate_holder(admin, db, org)
            with org_run_lock(other, org, timeout_s=2):  # the second run
                with pytest.raises(RunLockLost, match=org):
                    Loader(db).load_batch(
                        org, normalize_orders(org, docs, utc_now()), checkpoint=utc_now(), live=True
                    )
                assert _orders(db) == 0
    finally:
        other.dispose()
        admin.dispose()


def test_a_lost_run_lock_nobody_took_is_taken_again(harness: Harness, pg_target) -> None:
    """The lock's session dies (a restart, an idle-session killer) but no other run is there:
    the lock is taken again, the batch commits, and leaving the block raises nothing."""
    server = harness.sandbox(orders=40)
    engine = harness.engine(server, pg_target)
    db = engine.db
    org = server.store.org_pks()[0]
    docs = _docs(server, org)
    admin = sa.create_engine(pg_target.url)
    try:
        with org_run_lock(db, org, timeout_s=1):
            pid = _terminate_holder(admin, db, org)
            Loader(db).load_batch(
                org, normalize_orders(org, docs, utc_now()), checkpoint=utc_now(), live=True
            )
            assert _orders(db) == len(docs)
            holder = _holder(admin, db, org)
            assert holder is not None and holder != pid
    finally:
        admin.dispose()


def test_the_write_lock_wait_has_a_timeout(harness: Harness, pg_target) -> None:
    """A writer stopped in the middle of a batch (SIGSTOP) holds the org's write lock: the
    next writer waits RC_SYNC_LOCK_TIMEOUT and fails saying so (it used to wait forever)."""
    from warehouse.db import BATCH_LOCK_CLASS

    server = harness.sandbox(orders=40)
    assert harness.engine(server, pg_target).db is not None  # migrated
    org = server.store.org_pks()[0]
    docs = _docs(server, org)
    db = make_engine(pg_target.url, pg_target.schema, lock_timeout_s=1)
    stopped = make_engine(pg_target.url, pg_target.schema)
    try:
        with stopped.connect() as conn, conn.begin():
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:org))"),
                {"cls": BATCH_LOCK_CLASS, "org": org_lock_name(stopped, org)},
            )
            started = time.monotonic()
            with pytest.raises(WriteLockTimeout, match="RC_SYNC_LOCK_TIMEOUT"):
                Loader(db).load_batch(org, normalize_orders(org, docs, utc_now()))
            assert time.monotonic() - started < 10
    finally:
        db.dispose()
        stopped.dispose()


def test_runs_of_one_org_in_two_schemas_do_not_wait_on_each_other(pg_target) -> None:
    """Advisory locks are per database: keyed by org alone, a staging schema's run of an org
    would block the production schema's run of the same org (it used to)."""
    from warehouse.locks import LockTimeout

    other_schema = f"{pg_target.schema}_b"
    production = make_engine(pg_target.url, pg_target.schema)
    staging = make_engine(pg_target.url, other_schema)
    again = make_engine(pg_target.url, pg_target.schema)
    try:
        with org_run_lock(production, "7", timeout_s=1):
            with org_run_lock(staging, "7", timeout_s=1):
                pass  # granted at once
            with pytest.raises(LockTimeout), org_run_lock(again, "7", timeout_s=0.5):
                pass  # the same schema still excludes
    finally:
        for db in (production, staging, again):
            db.dispose()
