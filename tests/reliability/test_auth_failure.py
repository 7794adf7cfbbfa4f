"""Scenario 7: credentials failing mid-run. The token stops working at the fifth page: the
CLI exits 2 with a message to renew the token, the batches committed before stay, and the
watermark covers exactly them (nothing above it is claimed)."""

from __future__ import annotations

import pytest
from reliability_support import Harness, assert_exact, assert_watermark_not_ahead, watermark
from support import fetch_rows

pytestmark = pytest.mark.reliability

# orgs list, filter probe (2 counts), ordering probe (2 pages), then the window's pages
REQUESTS_BEFORE_PAGES = 5


def test_401_on_fifth_page(harness: Harness, target) -> None:
    server = harness.sandbox(orders=200, orgs=1, seed=51, tie_fraction=0.0)
    org = server.store.org_pks()[0]
    harness.migrate(server, target)
    env = harness.env(
        server, target, RC_SYNC_PAGE_SIZE="20", RC_SYNC_BATCH_ORDERS="20", RC_SYNC_CONCURRENCY="1"
    )
    server.config.update(fail_auth_after=REQUESTS_BEFORE_PAGES + 4)
    proc = harness.run_cli(["sync"], env)
    assert server.stats.snapshot()["list"] == 5, server.stats.snapshot()  # died on page 5
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split()).lower()
    assert "token" in message and ("new token" in message or "renew" in message), proc.stderr
    assert "traceback" not in message

    mark = watermark(target, org)
    assert mark is not None, "the batches committed before the 401 were not kept"
    stored = {r["order_pk"] for r in fetch_rows(target, "orders")}
    assert len(stored) >= 20
    stamps = {
        pk: server.store.get_order(org, pk).nested_updated_at for pk in server.store.order_pks(org)
    }
    below = {pk for pk, s in stamps.items() if s < mark}
    at_most = {pk for pk, s in stamps.items() if s <= mark}
    # the watermark covers only what was committed: everything below it is stored, and
    # nothing stored lies above it
    assert below <= stored <= at_most
    assert_watermark_not_ahead(target, server)

    # a renewed token (the knob lifted) continues from the watermark
    server.config.update(fail_auth_after=None)
    assert harness.run_cli(["sync"], env).returncode == 0
    assert_exact(target, server)
