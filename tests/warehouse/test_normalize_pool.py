"""Normalization in worker processes gives exactly what normalization in-process gives.

Whatever happens on the way (hostile documents, a document that cannot be pickled, a worker
that is killed), each batch comes back complete and identical, and the worker neither
survives its caller nor reacts to Ctrl-C.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from rc_sandbox.config import SandboxConfig
from rc_sandbox.store import SandboxStore
from warehouse import normalize_pool
from warehouse.normalize import NormalizedBatch, normalize_orders
from warehouse.normalize_pool import NormalizePool

AT = datetime(2026, 11, 1, tzinfo=UTC)
ORG = "1"

pytestmark = pytest.mark.skipif(
    not normalize_pool.fork_available(), reason="worker processes are forked on Linux only"
)


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    store = SandboxStore(SandboxConfig(orgs=1, orders=150, seed=5))
    org = store.org_pks()[0]
    out = store.orders_json(org)
    for doc in out:  # the tests below use org "1"
        doc["url"] = doc["url"].replace(f"/orgs/{org}/", f"/orgs/{ORG}/")
    return out


def _hostile(docs: list[dict[str, Any]]) -> list[Any]:
    """Shapes the normalizer must report, not choke on: NaN, lone surrogates, junk, dupes."""
    bad = copy.deepcopy(docs[:6])
    bad[0]["billing"] = {"total": float("nan"), "subtotal": "1e999 USD"}
    bad[1]["message"] = "lone \ud800 surrogate and NUL \x00"
    bad[2]["nested_updated_at"] = "yesterday"
    bad[3]["boxes"] = "not a list"
    bad[4]["url"] = "https://example.com/nothing"
    return [*docs, *bad, 42, "text", None, copy.deepcopy(docs[7])]


def assert_same(got: NormalizedBatch, want: NormalizedBatch) -> None:
    """Every frame and issue row equal; `raw` holds equal documents."""
    assert got.org_pk == want.org_pk and got.synced_at == want.synced_at
    assert got.docs_skipped == want.docs_skipped
    for name in ("orders", "boxes", "items", "addresses", "issues"):
        a, b = getattr(got, name), getattr(want, name)
        assert list(a.columns) == list(b.columns), name
        pd.testing.assert_frame_equal(
            a.drop(columns=["raw"], errors="ignore"), b.drop(columns=["raw"], errors="ignore")
        )
    assert json.dumps(got.orders["raw"].tolist(), sort_keys=True, default=repr) == json.dumps(
        want.orders["raw"].tolist(), sort_keys=True, default=repr
    )


def test_a_worker_normalizes_exactly_like_this_process(docs: list[dict[str, Any]]) -> None:
    batch = _hostile(docs)
    want = normalize_orders(ORG, batch, AT)
    with NormalizePool(1) as pool:
        assert pool.workers == 1 and pool.depth == 1
        got = pool.submit(ORG, batch, AT).result()
    assert_same(got, want)
    # `raw` is this process's own document object (not a copy sent back), unless cleaned
    by_pk = {pk: doc for pk, doc in zip(got.orders["order_pk"], got.orders["raw"], strict=True)}
    assert any(doc is d for d in batch for doc in by_pk.values())
    assert sum(1 for doc in by_pk.values() if any(doc is d for d in batch)) >= len(docs) - 6


def test_stored_texts_are_decoded_in_the_worker(docs: list[dict[str, Any]]) -> None:
    texts = [json.dumps(d) for d in docs]
    want = normalize_orders(ORG, [json.loads(t) for t in texts], AT)
    with NormalizePool(1) as pool:
        got = pool.submit_texts(ORG, texts, AT).result()
    for name in ("orders", "boxes", "items", "addresses", "issues"):
        pd.testing.assert_frame_equal(
            getattr(got, name).drop(columns=["raw"], errors="ignore"),
            getattr(want, name).drop(columns=["raw"], errors="ignore"),
        )


def test_batches_come_back_in_order_several_at_once(docs: list[dict[str, Any]]) -> None:
    chunks = [docs[i : i + 20] for i in range(0, len(docs), 20)]
    with NormalizePool(2) as pool:
        pending = [pool.submit(ORG, chunk, AT) for chunk in chunks]
        got = [p.result() for p in pending]
    for chunk, batch in zip(chunks, got, strict=True):
        assert_same(batch, normalize_orders(ORG, chunk, AT))


def test_an_unpicklable_document_is_normalized_here(docs: list[dict[str, Any]]) -> None:
    odd = copy.deepcopy(docs[:5])
    odd[2]["tags"] = [threading.Lock()]  # not JSON, not picklable
    want = normalize_orders(ORG, odd, AT)
    with NormalizePool(1) as pool:
        got = pool.submit(ORG, odd, AT).result()
        assert pool.workers == 1  # only that batch went around the worker
        assert_same(pool.submit(ORG, docs[:5], AT).result(), normalize_orders(ORG, docs[:5], AT))
    assert_same(got, want)


def test_a_killed_worker_costs_nothing_but_time(
    docs: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    with NormalizePool(1) as pool:
        executor = pool._executor
        assert executor is not None
        (pid,) = list(executor._processes)
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        got = [pool.submit(ORG, docs[i : i + 30], AT).result() for i in (0, 30)]
        assert pool.workers == 0  # from now on, in this process
    for batch, start in zip(got, (0, 30), strict=True):
        assert_same(batch, normalize_orders(ORG, docs[start : start + 30], AT))
    assert "normalization worker unavailable" in caplog.text


def _signal_state() -> tuple[Any, int]:
    return signal.getsignal(signal.SIGINT), os.getppid()


def test_the_worker_ignores_ctrl_c() -> None:
    with NormalizePool(1) as pool:
        executor = pool._executor
        assert executor is not None
        handler, parent = executor.submit(_signal_state).result()
    assert handler == signal.SIG_IGN
    assert parent == os.getpid()


CALLER = """
import sys, time
from warehouse.normalize_pool import NormalizePool
pool = NormalizePool(1)
print(*pool._executor._processes, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_does_not_outlive_a_caller_killed_outright() -> None:
    """SIGKILL gives the caller no chance to stop its worker: the kernel does it."""
    caller = subprocess.Popen([sys.executable, "-c", CALLER], stdout=subprocess.PIPE, text=True)
    try:
        assert caller.stdout is not None
        (worker,) = (int(pid) for pid in caller.stdout.readline().split())
        assert _alive(worker)
        caller.kill()
        caller.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker)
        assert caller.stdout.read() == ""  # EOF: nobody holds the caller's stdout any more
    finally:
        caller.kill()


def test_no_workers_means_this_process(docs: list[dict[str, Any]]) -> None:
    with NormalizePool(0) as pool:
        assert pool.depth == 0 and pool._executor is None
        assert_same(pool.submit(ORG, docs[:10], AT).result(), normalize_orders(ORG, docs[:10], AT))
