"""Per-org exclusive lock held for a whole live run (PostgreSQL advisory lock, SQLite flock).

On SQLite the lock is an flock on `<dbfile>.<org>.lock` next to the database, which exists only
while a run holds it: the holder removes it before unlocking, and a waiter that wins the lock
on a file already removed (or replaced) starts over on the current one. A process killed while
holding the lock leaves the file behind (the kernel still drops the flock), and the next run
of that org removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from warehouse.db import RUN_LOCK_CLASS, is_memory_sqlite, org_lock_name, sqlite_path

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
_MEMORY_LOCKS: dict[tuple[int, str], threading.Lock] = {}
_MEMORY_LOCKS_GUARD = threading.Lock()


class LockTimeout(RuntimeError):
    """Another live run holds the org's lock."""

    def __init__(self, org_pk: str, timeout_s: float) -> None:
        super().__init__(
            f"another rc-sync run for org {org_pk} is in progress "
            f"(waited {timeout_s:g}s for its lock); try again when it has finished"
        )
        self.org_pk = org_pk
        self.timeout_s = timeout_s


def lock_file_path(engine: Engine, org_pk: str) -> Path:
    """`<dbfile>.<org>.lock` next to the SQLite database (org quoted for the filesystem)."""
    database = sqlite_path(engine.url)
    if not database:
        raise ValueError("in-memory SQLite has no lock file")
    safe = quote(org_pk, safe="")
    if len(safe) > 100:
        safe = (
            safe[:60]
            + "-"
            + hashlib.sha256(org_pk.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        )
    return Path(f"{database}.{safe}.lock")


@contextmanager
def org_run_lock(engine: Engine, org_pk: str, *, timeout_s: float = 0.0) -> Iterator[None]:
    """Hold the org's run lock for the block; raise LockTimeout after `timeout_s` seconds."""
    if engine.dialect.name == "postgresql":
        with _pg_lock(engine, org_pk, timeout_s):
            yield
    elif is_memory_sqlite(engine):
        with _memory_lock(engine, org_pk, timeout_s):
            yield
    else:
        with _file_lock(lock_file_path(engine, org_pk), org_pk, timeout_s):
            yield


def _deadline(timeout_s: float) -> float:
    return time.monotonic() + max(0.0, timeout_s)


# The pid holding an org's run lock in this database (two-int4 advisory keys: classid, objid).
_HOLDER_SQL = sa.text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = :cls AND objid = ((hashtext(:org)::bigint + 4294967296) % 4294967296)::oid"
)
_HELD: weakref.WeakKeyDictionary[Engine, dict[str, _PgRunLock]] = weakref.WeakKeyDictionary()
_HELD_GUARD = threading.Lock()


class RunLockLost(RuntimeError):
    """The org's run lock went away with its database session and another run holds it now."""

    def __init__(self, org_pk: str) -> None:
        super().__init__(
            f"the run lock of org {org_pk} was lost (its database session ended) and another "
            "rc-sync run holds it now; this run stopped before committing its next batch"
        )
        self.org_pk = org_pk


class _PgRunLock:
    """An org's session-level advisory lock, on a connection of its own, checked before commits.

    Nothing watches an idle session: when it is terminated the lock is silently gone. So each
    batch transaction asks pg_locks who holds the lock (verify): us, fine; nobody, take it
    again; another session, stop (RunLockLost) before that batch commits.
    """

    def __init__(self, engine: Engine, org_pk: str) -> None:
        self.engine = engine
        self.org_pk = org_pk
        self.params = {"cls": RUN_LOCK_CLASS, "org": org_lock_name(engine, org_pk)}
        self.conn: sa.Connection | None = None
        self.pid: int | None = None
        self.mutex = threading.Lock()

    def try_acquire(self) -> bool:
        """One attempt on a fresh connection; keeps the connection when the lock was granted."""
        conn = self.engine.connect()
        try:
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:cls, hashtext(:org))"), self.params
            ).scalar()
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            conn.commit()  # session-level lock: survives the commit, no open transaction held
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self.conn, self.pid = conn, int(pid or 0)
        return True

    def verify(self, work: sa.Connection) -> None:
        """Make sure the lock is still ours before `work`'s transaction commits."""
        with self.mutex:
            holder = work.execute(_HOLDER_SQL, self.params).scalar()
            if holder is not None and holder == self.pid:
                return
            if holder is None:
                self._drop_connection()
                if self.try_acquire():
                    log.warning(
                        "the run lock of org %s was lost (its database session ended); "
                        "nobody else held it, so it was taken again",
                        self.org_pk,
                    )
                    return
            raise RunLockLost(self.org_pk)

    def _drop_connection(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def release(self) -> None:
        """Unlock; a session that already ended took the lock with it (only a warning then)."""
        conn = self.conn
        if conn is None:
            return
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:cls, hashtext(:org))"), self.params)
            conn.commit()
        except Exception as exc:
            log.warning(
                "could not release the run lock of org %s (%s); its session has ended, "
                "which released it",
                self.org_pk,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
            self._drop_connection()
            return
        conn.close()
        self.conn = None


def verify_run_lock(conn: sa.Connection, org_pk: str) -> None:
    """Inside a write transaction: raise RunLockLost when this process held the org's run lock
    and lost it to another run (PostgreSQL); re-take it when nobody holds it. No-op otherwise."""
    if conn.dialect.name != "postgresql":
        return
    with _HELD_GUARD:
        held = _HELD.get(conn.engine, {}).get(org_pk)
    if held is not None:
        held.verify(conn)


@contextmanager
def _pg_lock(engine: Engine, org_pk: str, timeout_s: float) -> Iterator[None]:
    lock = _PgRunLock(engine, org_pk)
    deadline = _deadline(timeout_s)
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            raise LockTimeout(org_pk, timeout_s)
        time.sleep(POLL_INTERVAL_S)
    with _HELD_GUARD:
        _HELD.setdefault(engine, {})[org_pk] = lock
    try:
        yield
    finally:
        with _HELD_GUARD:
            _HELD.get(engine, {}).pop(org_pk, None)
        lock.release()


def _same_file(fd: int, path: Path) -> bool:
    """True when `path` still names the file open as `fd` (not removed, not replaced)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


@contextmanager
def _file_lock(path: Path, org_pk: str, timeout_s: float) -> Iterator[None]:
    deadline = _deadline(timeout_s)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(org_pk, timeout_s) from None
                    time.sleep(POLL_INTERVAL_S)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        # The holder removed the file while we waited for it: lock the current one instead.
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        # Removed while still locked, so nobody can take the lock on a file about to vanish
        # unnoticed (see _same_file); no lock file is left next to the database.
        with contextlib.suppress(OSError):
            os.unlink(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def _memory_lock(engine: Engine, org_pk: str, timeout_s: float) -> Iterator[None]:
    with _MEMORY_LOCKS_GUARD:
        lock = _MEMORY_LOCKS.setdefault((id(engine), org_pk), threading.Lock())
    if not lock.acquire(timeout=max(0.0, timeout_s)):
        raise LockTimeout(org_pk, timeout_s)
    try:
        yield
    finally:
        lock.release()
