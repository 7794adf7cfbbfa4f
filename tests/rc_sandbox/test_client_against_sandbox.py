"""rc_extract's ReadyCloudClient + ChangeReader against the real sandbox server, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from rc_common.paths import url_path
from rc_common.timefmt import utc_now
from rc_extract.changes import ChangeReader, Window
from rc_extract.client import ReadyCloudClient
from rc_sandbox import SandboxConfig, SandboxServer, SandboxStore

TRANSIENT = ("429", "500", "502", "503", "504", "garbage")


def _short_sleep(seconds: float) -> None:
    """Retry back-off, capped so the tests stay fast."""
    time.sleep(min(seconds, 0.01))


def pull(server: SandboxServer, **client_args: Any) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Every order of every org through ChangeReader; (url path -> doc, paths used)."""
    client_args.setdefault("timeout", 10)
    client_args.setdefault("max_backoff", 0.05)
    client_args.setdefault("sleep", _short_sleep)
    seen: dict[str, dict[str, Any]] = {}
    paths: set[str] = set()
    with ReadyCloudClient(server.base_url, server.token, **client_args) as client:
        reader = ChangeReader(client)
        window = Window(None, utc_now() + timedelta(days=1))
        for org in server.store.org_pks():
            for batch in reader.iter_window(org, window):
                for doc in batch.orders:
                    key = url_path(doc["url"])
                    assert key not in seen, f"{key} yielded twice"
                    seen[key] = doc
            assert reader.last_path is not None
            paths.add(reader.last_path)
    return seen, paths


def expected_docs(store: SandboxStore) -> dict[str, dict[str, Any]]:
    """url path -> the expanded document the store serves now."""
    return {doc["url"]: doc for org in store.org_pks() for doc in store.orders_json(org)}


@pytest.fixture(scope="module")
def store_1000() -> Iterator[SandboxStore]:
    """One 1000-order dataset shared by the pulls below (none of them mutates it)."""
    yield SandboxStore(SandboxConfig(orders=1000, seed=21, poison_rate=0.02))


@pytest.mark.parametrize("absolute_next", [True, False], ids=["absolute", "relative"])
@pytest.mark.parametrize("filters", [True, False], ids=["filters-on", "filters-off"])
def test_full_pull_is_identical_with_and_without_filters(
    store_1000: SandboxStore, filters: bool, absolute_next: bool
) -> None:
    config = SandboxConfig(
        orders=1000, seed=21, page_cap=37, filters=filters, absolute_next=absolute_next
    )
    with SandboxServer(config, store=store_1000) as server:
        got, paths = pull(server, page_size=100)
    assert got == expected_docs(store_1000)
    assert paths <= ({"filtered-keyset", "filtered-offset"} if filters else {"compact-diff"})


@pytest.mark.parametrize("filters", [True, False], ids=["filters-on", "filters-off"])
def test_full_pull_survives_transient_faults(store_1000: SandboxStore, filters: bool) -> None:
    config = SandboxConfig(
        orders=1000,
        seed=21,
        page_cap=37,
        filters=filters,
        fault_rate=0.1,
        fault_kinds=TRANSIENT,
        retry_after_s=0,
    )
    with SandboxServer(config, store=store_1000) as server:
        got, _ = pull(server, page_size=100)
        faults = server.stats.faults_total
    assert got == expected_docs(store_1000)
    assert faults > 0


def test_request_counts_for_a_10k_pull(capsys: pytest.CaptureFixture[str]) -> None:
    """How many requests a full pull of 10,000 orders takes, filters on and off (reported)."""
    store = SandboxStore(SandboxConfig(orders=10_000, seed=5))
    counts = {}
    for filters in (True, False):
        config = SandboxConfig(orders=10_000, seed=5, filters=filters)
        with SandboxServer(config, store=store) as server:
            started = time.perf_counter()
            got, paths = pull(server, page_size=100)
            elapsed = time.perf_counter() - started
            snap = server.stats.snapshot()
        assert len(got) == 10_000
        counts[filters] = snap
        with capsys.disabled():
            print(
                f"\n10k pull, filters {'on' if filters else 'off'} ({sorted(paths)}): "
                f"{snap['requests']} requests (list {snap['list']}, compact {snap['compact']}, "
                f"detail {snap['detail']}, orgs {snap['orgs']}) in {elapsed:.1f}s"
            )
    # 2 orgs x 50 expanded pages of 100 is the floor; the probes and checks add a few
    assert counts[True]["list"] >= 100
    assert counts[True]["requests"] < 160
    assert counts[False]["requests"] < 400
