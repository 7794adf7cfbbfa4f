"""Change detection on in-memory fake servers: filters honoured, ignored, and data moving mid-walk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rc_common.timefmt import parse_api_datetime
from rc_extract.changes import Capabilities, ChangeReader, OrderBatch, Window
from rc_extract.client import ReadyCloudClient
from rc_extract.errors import UnstableListingError

MakeClient = Callable[..., ReadyCloudClient]
T0 = datetime(2024, 5, 1, tzinfo=UTC)  # the conftest kit's t0
STEP = timedelta(minutes=7)  # order pk i changed at T0 + i * STEP
N = 37
NOW = T0 + timedelta(days=1)

WINDOWS = {
    "full": Window(None, NOW),
    "head": Window(None, T0 + 50 * STEP),
    "middle": Window(T0 + 9 * STEP, T0 + 30 * STEP),
    "narrow": Window(T0 + 10 * STEP, T0 + 12 * STEP),
    "boundary": Window(T0 + 10 * STEP + timedelta(microseconds=1), T0 + 13 * STEP),
    "tail": Window(T0 + 30 * STEP, NOW),
    "empty": Window(T0 + 40 * STEP, NOW),
    "point": Window(T0 + 5 * STEP, T0 + 5 * STEP),
}


def expected_in(server: Any, window: Window) -> dict[str, datetime]:
    """The orders the server holds in the window: url -> nested_updated_at."""
    stamps = {url: parse_api_datetime(o["nested_updated_at"]) for url, o in server.orders.items()}
    return {url: t for url, t in stamps.items() if window.contains(t)}


def read(reader: ChangeReader, window: Window, org_pk: str = "7") -> list[OrderBatch]:
    """All batches of one window."""
    return list(reader.iter_window(org_pk, window))


def urls_of(batches: list[OrderBatch]) -> list[str]:
    """Every yielded order url, in order."""
    return [o["url"] for b in batches for o in b.orders]


def assert_contract(
    batches: list[OrderBatch], window: Window, expected: dict[str, datetime]
) -> None:
    """Each order once; full documents; checkpoints truthful and rising; the last one is until."""
    urls = urls_of(batches)
    assert len(urls) == len(set(urls)), "an order was yielded twice"
    assert set(urls) == set(expected)
    assert all("boxes" in o for b in batches for o in b.orders), "orders must be expanded"
    assert batches and batches[-1].checkpoint == window.until
    yielded: set[str] = set()
    previous: datetime | None = None
    for batch in batches:
        yielded |= {o["url"] for o in batch.orders}
        if batch.checkpoint is None:
            continue
        assert previous is None or batch.checkpoint >= previous
        previous = batch.checkpoint
        missing = [u for u, t in expected.items() if t < batch.checkpoint and u not in yielded]
        assert not missing, (
            f"checkpoint {batch.checkpoint} claims orders not yet yielded: {missing}"
        )


# -- both paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WINDOWS))
@pytest.mark.parametrize("concurrency", [1, 4])
def test_filters_honoured(make_client: MakeClient, kit: Any, name: str, concurrency: int) -> None:
    server = kit.Fake.with_orders(N, step=STEP)
    reader = ChangeReader(make_client(server, page_size=4, concurrency=concurrency))
    window = WINDOWS[name]
    batches = read(reader, window)
    assert reader.last_path == "filtered-offset"
    assert_contract(batches, window, expected_in(server, window))
    listed = [r for r in server.list_requests() if "expand" in r.url.params]
    assert all(r.url.params["nested_updated_at__lt"] for r in listed)
    assert all(r.url.params["ordering"] == "nested_updated_at" for r in listed)


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_filters_ignored(make_client: MakeClient, kit: Any, name: str) -> None:
    server = kit.Fake.with_orders(N, step=STEP, honour_filters=False, honour_ordering=False)
    reader = ChangeReader(make_client(server, page_size=4))
    window = WINDOWS[name]
    batches = read(reader, window)
    assert reader.last_path == "compact-diff"
    assert_contract(batches, window, expected_in(server, window))
    assert all(b.checkpoint is None for b in batches[:-1])


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_both_paths_yield_the_same_set(make_client: MakeClient, kit: Any, name: str) -> None:
    window = WINDOWS[name]
    results = []
    for honour in (True, False):
        server = kit.Fake.with_orders(N, step=STEP, honour_filters=honour, honour_ordering=honour)
        results.append(set(urls_of(read(ChangeReader(make_client(server, page_size=5)), window))))
    assert results[0] == results[1]


def test_compact_diff_uses_details_for_few_and_a_walk_for_many(
    make_client: MakeClient, kit: Any
) -> None:
    server = kit.Fake.with_orders(N, step=STEP, honour_filters=False)
    client = make_client(server, page_size=4)
    read(ChangeReader(client), WINDOWS["narrow"])  # 2 orders < 37/4 pages: detail fetches
    kinds = client.stats.snapshot()["by_kind"]
    assert kinds.get("detail") == 2 and "list" not in kinds
    before = client.stats.snapshot()["by_kind"]
    read(ChangeReader(client), WINDOWS["full"])  # everything: one expanded walk, no details
    after = client.stats.snapshot()["by_kind"]
    assert after.get("detail") == before.get("detail")
    assert after["list"] == 10


def test_force_paths(make_client: MakeClient, kit: Any) -> None:
    honest = kit.Fake.with_orders(N, step=STEP)
    reader = ChangeReader(make_client(honest, page_size=6), force_path="compact")
    assert_contract(
        read(reader, WINDOWS["middle"]), WINDOWS["middle"], expected_in(honest, WINDOWS["middle"])
    )
    assert reader.last_path == "compact-diff"
    liar = kit.Fake.with_orders(N, step=STEP, honour_filters=False)
    reader = ChangeReader(make_client(liar, page_size=6), force_path="filtered")
    assert_contract(
        read(reader, WINDOWS["middle"]), WINDOWS["middle"], expected_in(liar, WINDOWS["middle"])
    )
    assert reader.last_path == "compact-diff"  # pages outside the window gave it away
    with pytest.raises(ValueError):
        ChangeReader(make_client(liar), force_path="keyset")  # type: ignore[arg-type]


def test_a_half_honoured_filter_falls_back_without_duplicates(
    make_client: MakeClient, kit: Any
) -> None:
    # __gte is applied but __lt is silently ignored: the first pages look right, later ones
    # run past `until`; the walk switches to the compact diff mid-way, yielding nothing twice
    server = kit.Fake.with_orders(N, step=STEP, ignore=("nested_updated_at__lt",))
    reader = ChangeReader(make_client(server, page_size=4))
    window = WINDOWS["middle"]
    batches = read(reader, window)
    assert reader.last_path == "compact-diff"
    assert_contract(batches, window, expected_in(server, window))
    assert len(urls_of(batches[:1])) == 4  # something was yielded before the switch


def test_ordering_ignored_means_no_checkpoint_until_the_end(
    make_client: MakeClient, kit: Any
) -> None:
    server = kit.Fake.with_orders(N, step=STEP, honour_ordering=False)
    reader = ChangeReader(make_client(server, page_size=4))
    batches = read(reader, WINDOWS["full"])
    assert reader.last_path == "filtered-offset"
    assert_contract(batches, WINDOWS["full"], expected_in(server, WINDOWS["full"]))
    assert [b.checkpoint for b in batches[:-1]] == [None] * (len(batches) - 1)


def test_ordering_honoured_gives_rising_checkpoints(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(N, step=STEP)
    batches = read(ChangeReader(make_client(server, page_size=4)), WINDOWS["full"])
    checkpoints = [b.checkpoint for b in batches]
    assert len(batches) == 10  # one batch per page
    assert checkpoints[0] == T0 + 4 * STEP
    assert checkpoints[-2] == T0 + 36 * STEP
    assert checkpoints[-1] == NOW
    assert all(b.total == N for b in batches)


# -- probes -------------------------------------------------------------------------------


def test_probe_is_kept_in_the_capabilities_value(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(N, step=STEP)
    client = make_client(server)
    capabilities = Capabilities()
    reader = ChangeReader(client, capabilities=capabilities)
    assert reader.filters_honoured("7") is True
    probes = client.stats.snapshot()["by_kind"]["probe"]
    assert probes == 2
    probe = server.requests[0].url.params
    assert probe["nested_updated_at__gte"].startswith("2999-") and probe["limit"] == "1"
    read(ChangeReader(client, capabilities=capabilities), WINDOWS["narrow"])
    ordered = client.stats.snapshot()["by_kind"]["probe"]
    assert ordered == probes + 2  # the ordering probe (ascending, descending), once
    read(reader, WINDOWS["narrow"])
    assert client.stats.snapshot()["by_kind"]["probe"] == ordered
    assert capabilities.known()["filters"] is True
    other = make_client(server)  # a reader without the value probes again
    assert ChangeReader(other).filters_honoured("7") is True
    assert other.stats.snapshot()["by_kind"]["probe"] == 2


def test_probe_detects_ignored_filters(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(N, step=STEP, honour_filters=False)
    client = make_client(server)
    assert ChangeReader(client).filters_honoured("7") is False
    assert client.stats.snapshot()["by_kind"]["probe"] == 1


def test_empty_org_is_inconclusive_and_not_cached(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake()
    client = make_client(server)
    reader = ChangeReader(client)
    batches = read(reader, WINDOWS["full"])
    assert batches == [OrderBatch([], NOW, 0)]
    assert reader.last_path == "compact-diff"
    server.orders.update(kit.Fake.with_orders(3, step=STEP).orders)
    batches = read(reader, WINDOWS["full"])
    assert reader.last_path == "filtered-offset"
    assert len(urls_of(batches)) == 3


# -- count_window and list_all ------------------------------------------------------------


@pytest.mark.parametrize("honour", [True, False])
def test_count_window(make_client: MakeClient, kit: Any, honour: bool) -> None:
    server = kit.Fake.with_orders(N, step=STEP, honour_filters=honour)
    reader = ChangeReader(make_client(server, page_size=5))
    for window in WINDOWS.values():
        assert reader.count_window("7", window) == len(expected_in(server, window))


def test_list_all(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(N, step=STEP)
    listing = ChangeReader(make_client(server, page_size=6)).list_all("7")
    assert listing == {url: o["nested_updated_at"] for url, o in server.orders.items()}


def test_list_all_uses_url_paths_as_identity(make_client: MakeClient, kit: Any) -> None:
    client = make_client(lambda r: httpx.Response(200, json=kit.load("orders_compact.json")))
    listing = ChangeReader(client).list_all("7")
    assert sorted(listing) == [f"/api/v2/orgs/7/orders/{pk}/" for pk in (5120, 5121, 5122)]


# -- data moving under the walk -----------------------------------------------------------


def _bump_once(
    url: str, moment: datetime, *, on: Callable[[httpx.Request], bool]
) -> Callable[[Any, httpx.Request], None]:
    """A before_list hook that changes one order the first time a request matches `on`."""
    done = {"yes": False}

    def hook(fake: Any, request: httpx.Request) -> None:
        if not done["yes"] and on(request):
            done["yes"] = True
            fake.touch(url, moment)

    return hook


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_order_leaving_mid_walk_is_repaired(
    make_client: MakeClient, kit: Any, concurrency: int
) -> None:
    server = kit.Fake.with_orders(N, step=STEP)
    window = WINDOWS["full"]
    expected = expected_in(server, window)
    # after page 1 was served, an order on it changes (moves past `until`): every later order
    # shifts one place left, so a plain offset walk would skip the first order of page 2
    server.before_list = _bump_once(
        "/api/v2/orgs/7/orders/2/",
        NOW + timedelta(hours=1),
        on=lambda r: "expand" in r.url.params and r.url.params.get("offset") is not None,
    )
    client = make_client(server, page_size=4, concurrency=concurrency)
    batches = read(ChangeReader(client), window)
    assert_contract(batches, window, expected)
    assert client.stats.snapshot()["by_kind"].get("detail", 0) >= 1  # the skipped one, by detail
    # once counts disagree no further mid-walk checkpoint is claimed
    assert batches[0].checkpoint == T0 + 4 * STEP


def test_compact_walk_repeats_until_stable(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(N, step=STEP, honour_filters=False, honour_ordering=False)
    first_page = next(iter(server.orders))
    state = {"deleted": False}

    def delete_once(fake: Any, request: httpx.Request) -> None:
        if not state["deleted"] and request.url.params.get("offset") is not None:
            state["deleted"] = True
            del fake.orders[first_page]

    server.before_list = delete_once
    client = make_client(server, page_size=5)
    window = WINDOWS["full"]
    batches = read(ChangeReader(client), window)
    expected = expected_in(server, window)
    assert first_page not in expected
    assert_contract(batches, window, expected)


def test_a_listing_that_never_settles_raises(make_client: MakeClient, kit: Any) -> None:
    server = kit.Fake.with_orders(N, step=STEP, honour_filters=False)
    counter = {"n": 1000}

    def keep_adding(fake: Any, request: httpx.Request) -> None:
        counter["n"] += 1
        order = kit.make_order("7", counter["n"], NOW + timedelta(hours=1))
        fake.orders[order["url"]] = order

    server.before_list = keep_adding
    reader = ChangeReader(make_client(server, page_size=10))
    with pytest.raises(UnstableListingError, match="5 consecutive walks"):
        read(reader, WINDOWS["middle"])


def test_window_validation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(None, datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="empty window"):
        Window(T0 + STEP, T0)
    window = Window(T0, T0 + STEP)
    assert window.filters() == {
        "nested_updated_at__gte": "2024-05-01T00:00:00.000000Z",
        "nested_updated_at__lt": "2024-05-01T00:07:00.000000Z",
    }
    assert window.contains(T0) and not window.contains(T0 + STEP)
