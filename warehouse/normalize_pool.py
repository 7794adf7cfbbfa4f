"""Normalization in worker processes, so that it overlaps the loader's database work.

A first sync or a rebuild is CPU-bound in Python, and one interpreter runs one thing at a
time: normalizing a batch and writing the previous one took turns on one core. Here batches
are normalized in forked worker processes (`RC_SYNC_NORMALIZE_WORKERS`, default one where a
second core is available) while the calling process fetches, decodes and writes. Results come
back in submission order, so each batch still commits with its own checkpoint, in order.

The worker is a fork of the caller made when the pool starts, before the run's own threads,
so it sees exactly the code and settings the caller has. It ignores Ctrl-C (the caller
decides what an interrupt means) and only ever normalizes. Whatever goes wrong on the way to or
from a worker (a document that cannot be pickled, a worker that died), the batch is
normalized in the calling process instead, with the same result.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from warehouse.normalize import NormalizedBatch, normalize_orders

log = logging.getLogger(__name__)

MAX_WORKERS = 8
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def fork_available() -> bool:
    """Whether worker processes can be forked here (Linux; macOS and Windows normalize in-process)."""
    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> int:
    """One worker where fork and a second core are available, else none (in-process)."""
    if not fork_available():
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - Linux has it
        cores = os.cpu_count() or 1
    return 1 if cores >= 2 else 0


def _init_worker(parent: int) -> None:
    """Worker initializer: die with the caller, ignore Ctrl-C, keep the heap out of the GC."""
    # A caller killed outright (SIGKILL, OOM) must not leave its worker behind holding the
    # caller's stdout/stderr and pipes open: the kernel ends the worker with its parent.
    with contextlib.suppress(OSError, AttributeError):  # Linux has prctl
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the caller died before prctl took effect
        os._exit(1)
    # Ctrl-C reaches the whole process group; only the caller decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Objects inherited from the caller are never garbage here; a full collection would visit
    # (and so copy, page by page) all of them. Freezing them costs nothing and saves that.
    gc.freeze()


def _ready() -> int:
    return os.getpid()


def _normalize_in_worker(
    org_pk: str, payload: list[Any], synced_at: datetime, texts: bool
) -> tuple[NormalizedBatch, list[int | None]]:
    """The worker's job: normalize, and send `raw` back as positions, not copies.

    `orders.raw` holds the caller's own document objects (or a cleaned copy); pickling them
    back would cost as much as sending them, so each one that is an input document travels
    as its position in the batch and the caller puts its own object back. From `texts`
    (stored JSON text, decoded here) the caller has no objects: `raw` comes back empty.
    """
    docs = [json.loads(text) for text in payload] if texts else payload
    batch = normalize_orders(org_pk, docs, synced_at)
    if not len(batch.orders):
        return batch, []
    raws = batch.orders["raw"].tolist()
    if texts:
        refs: list[int | None] = [None] * len(raws)
        kept: list[Any] = [None] * len(raws)
    else:
        position = {id(doc): index for index, doc in enumerate(docs)}
        refs = [position.get(id(raw)) for raw in raws]
        kept = [raw if ref is None else None for raw, ref in zip(raws, refs, strict=True)]
    batch.orders["raw"] = kept
    return batch, refs


class Pending:
    """A batch on its way through normalization; `result()` gives it (in-process if need be)."""

    def __init__(
        self,
        pool: NormalizePool,
        future: Future[tuple[NormalizedBatch, list[int | None]]] | None,
        org_pk: str,
        payload: list[Any],
        synced_at: datetime,
        texts: bool,
    ) -> None:
        self._pool = pool
        self._future = future
        self._args = (org_pk, payload, synced_at, texts)

    def result(self) -> NormalizedBatch:
        """The normalized batch (waits for the worker)."""
        org_pk, payload, synced_at, texts = self._args
        if self._future is not None:
            try:
                batch, refs = self._future.result()
            except (Exception, CancelledError) as exc:
                self._pool.failed(exc)
            else:
                if not texts and any(ref is not None for ref in refs):
                    batch.orders["raw"] = [
                        payload[ref] if ref is not None else raw
                        for raw, ref in zip(batch.orders["raw"].tolist(), refs, strict=True)
                    ]
                return batch
        docs = [json.loads(text) for text in payload] if texts else payload
        return normalize_orders(org_pk, docs, synced_at)


class NormalizePool:
    """Normalizes batches in `workers` forked processes (0: in the calling process, lazily)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(0, min(int(workers), MAX_WORKERS)) if fork_available() else 0
        self._executor: ProcessPoolExecutor | None = None
        if self.workers:
            try:
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_init_worker,
                    initargs=(os.getpid(),),
                )
                # Fork now, while the run has not started its fetch and writer threads.
                self._executor.submit(_ready).result(timeout=60)
                log.info("normalizing in %d worker process(es)", self.workers)
            except Exception as exc:
                self._disable(exc)

    @property
    def depth(self) -> int:
        """How many batches may be normalizing ahead of the one being loaded."""
        return self.workers

    def submit(self, org_pk: str, docs: Sequence[Any], synced_at: datetime) -> Pending:
        """Start normalizing decoded documents; `orders.raw` will hold these very objects."""
        return self._submit(org_pk, list(docs), synced_at, texts=False)

    def submit_texts(self, org_pk: str, texts: Sequence[str], synced_at: datetime) -> Pending:
        """Start normalizing stored JSON texts (decoded in the worker); `orders.raw` is empty."""
        return self._submit(org_pk, list(texts), synced_at, texts=True)

    def _submit(self, org_pk: str, payload: list[Any], synced_at: datetime, texts: bool) -> Pending:
        future = None
        if self._executor is not None:
            try:
                future = self._executor.submit(
                    _normalize_in_worker, org_pk, payload, synced_at, texts
                )
            except Exception as exc:  # a broken pool refuses new work
                self._disable(exc)
        return Pending(self, future, org_pk, payload, synced_at, texts)

    def failed(self, exc: BaseException) -> None:
        """A batch could not go through a worker: it is normalized here instead."""
        if isinstance(exc, BrokenProcessPool):
            self._disable(exc)
        else:  # e.g. a document that cannot be pickled: this batch only
            log.debug("batch normalized in-process after %s", type(exc).__name__)

    def _disable(self, exc: BaseException) -> None:
        if self.workers:
            log.warning(
                "normalization worker unavailable (%s); normalizing in this process",
                type(exc).__name__,
            )
        self.workers = 0
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (pending batches are still answered, in-process if need be)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> NormalizePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
