"""Per-org exclusive lock held for a whole live run (PostgreSQL advisory lock, SQLite flock)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from warehouse.db import RUN_LOCK_CLASS, is_memory_sqlite

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
    database = engine.url.database
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


@contextmanager
def _pg_lock(engine: Engine, org_pk: str, timeout_s: float) -> Iterator[None]:
    params = {"cls": RUN_LOCK_CLASS, "org": org_pk}
    conn = engine.connect()
    try:
        deadline = _deadline(timeout_s)
        while True:
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:cls, hashtext(:org))"), params
            ).scalar()
            conn.commit()  # session-level lock: survives the commit, no open transaction while held
            if got:
                break
            if time.monotonic() >= deadline:
                raise LockTimeout(org_pk, timeout_s)
            time.sleep(POLL_INTERVAL_S)
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:cls, hashtext(:org))"), params)
                conn.commit()
            except Exception:
                conn.invalidate()  # closing the session releases the lock for sure
                raise
    finally:
        conn.close()


@contextmanager
def _file_lock(path: Path, org_pk: str, timeout_s: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = _deadline(timeout_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(org_pk, timeout_s) from None
                time.sleep(POLL_INTERVAL_S)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
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
