"""Hardening, server side: a storm of `429 Retry-After: 0` is met with a back-off floor, and a
server that drips its body is cut off by the timeout and the deadline (issue 15, defects 6, 7).

These use real time against the sandbox's knobs (`retry_after_s`, `drip_bytes` /
`drip_interval_s`); the bounds asserted are generous (interpreter start-up, a loaded machine).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from reliability_support import TOKEN, Harness

from rc_extract.client import ReadyCloudClient
from rc_extract.errors import APITimeoutError, RateLimitError
from rc_extract.retry import wait_for

pytestmark = pytest.mark.reliability


# -- defect 7: Retry-After: 0 -------------------------------------------------------------------


def test_429_waits_at_least_the_floor_whatever_retry_after_says() -> None:
    zero = RateLimitError(429, "/p", retry_after=0.0)
    missing = RateLimitError(429, "/p")
    assert [wait_for(zero, n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [wait_for(missing, n, rand=lambda: 0.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    # a longer Retry-After is obeyed as given; the floor never passes the cap
    assert wait_for(RateLimitError(429, "/p", retry_after=7.0), 1) == 7.0
    assert wait_for(zero, 20, cap=30.0) == 30.0


def test_retry_after_zero_storm_is_not_hammered(harness: Harness) -> None:
    """Every request answers 429 with Retry-After: 0. Within a 6 s deadline the client may
    wait 1 + 2 s (the next wait, 4 s, would pass the deadline): at most 3 requests."""
    server = harness.sandbox(orders=10)
    server.config.update(fault_rate=1.0, fault_kinds=("429",), retry_after_s=0)
    client = ReadyCloudClient(server.base_url, TOKEN, deadline=6, timeout=5)
    harness.clients.append(client)
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        client.list_orgs()
    elapsed = time.monotonic() - started
    requests = server.stats.snapshot()["requests"]
    assert requests <= 3, f"{requests} requests in {elapsed:.1f}s against Retry-After: 0"
    assert 3.0 <= elapsed <= 8.0


def test_sandbox_can_omit_retry_after(harness: Harness) -> None:
    server = harness.sandbox(orders=10)
    server.config.update(fault_rate=1.0, fault_kinds=("429",), retry_after_s=None)
    response = httpx.get(f"{server.base_url}/api/v2/orgs/", headers=_auth())
    assert response.status_code == 429 and "retry-after" not in response.headers
    server.config.update(retry_after_s=0)
    response = httpx.get(f"{server.base_url}/api/v2/orgs/", headers=_auth())
    assert response.headers["retry-after"] == "0"


# -- defect 6: slow-drip bodies -------------------------------------------------------------------


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_sandbox_drip_knob_sends_the_body_in_slow_chunks(harness: Harness) -> None:
    server = harness.sandbox(orders=10)
    server.config.update(drip_bytes=200, drip_interval_s=0.2)
    started = time.monotonic()
    with httpx.stream("GET", f"{server.base_url}/api/v2/orgs/", headers=_auth()) as response:
        chunks = [len(c) for c in response.iter_raw()]
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and max(chunks) <= 200
    assert elapsed >= 0.2 * (len(chunks) - 1) * 0.9


def test_timeout_bounds_the_whole_request_on_a_drip_server(harness: Harness) -> None:
    """200 bytes every 0.8 s, timeout 1.5 s: each attempt is cut at 1.5 s (not per read), and
    the logical request ends by its 4 s deadline."""
    server = harness.sandbox(orders=40)
    server.config.update(drip_bytes=200, drip_interval_s=0.8)
    client = ReadyCloudClient(server.base_url, TOKEN, timeout=1.5, deadline=4, page_size=40)
    harness.clients.append(client)
    org = server.store.org_pks()[0]
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        list(client.iter_orders(org))
    elapsed = time.monotonic() - started
    assert elapsed <= 4.0 + 1.0, f"gave up after {elapsed:.1f}s (deadline 4s)"
    assert "READYCLOUD_BASE_URL" not in str(caught.value)  # an outage, not a wrong URL


def test_cli_gives_up_on_a_drip_server_by_the_deadline(harness: Harness, sqlite_target) -> None:
    """The issue's case, scaled down: RC_SYNC_TIMEOUT=2 RC_SYNC_DEADLINE=6 against 200 bytes
    every 1.5 s; exit 1 (a failed run, not a configuration error). Small answers (the orgs
    list, the probes) still arrive within the timeout, so the run ends once the first large
    page has used up its 6 s deadline: within a few deadlines, not the minutes the unbounded
    client took (it was still downloading after 120 s)."""
    server = harness.sandbox(orders=40)
    harness.migrate(server, sqlite_target)
    env = harness.env(server, sqlite_target, RC_SYNC_TIMEOUT="2", RC_SYNC_DEADLINE="6")
    probe: dict[str, Any] = {}
    server.config.update(drip_bytes=200, drip_interval_s=1.5)
    started = time.monotonic()
    proc = harness.run_cli(["sync"], env, timeout=120)
    probe["elapsed"] = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert probe["elapsed"] < 40, f"took {probe['elapsed']:.1f}s"
    assert "stopped answering" in proc.stderr and "RC_SYNC_TIMEOUT" in proc.stderr
    assert "Traceback" not in proc.stderr
