"""pk derivation (urls.py) and timestamp parsing (timefmt.py), with hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rc_common.paths import ObjectRef, parse_object_url, url_path
from rc_common.timefmt import format_api_datetime, parse_api_datetime, parse_user_datetime


@pytest.mark.parametrize(
    ("url", "ref"),
    [
        ("/api/v2/orgs/7/", ObjectRef("7")),
        ("https://stage.readycloud.com/api/v2/orgs/1/", ObjectRef("1")),
        ("/api/v2/orgs/7/orders/5120/", ObjectRef("7", "5120")),
        (
            "https://www.readycloud.com/api/v2/orgs/7/orders/5120/?expand=boxes",
            ObjectRef("7", "5120"),
        ),
        ("/api/v2/orgs/7/orders/1/boxes/2/", ObjectRef("7", "1", "2")),
        ("/api/v2/orgs/1/orders/1/boxes/1/items/1/", ObjectRef("1", "1", "1", "1")),
        ("/api/v2/orgs/QmFy%2Fx/orders/a%20b/", ObjectRef("QmFy/x", "a b")),
        ("/api/v2/orgs/ORG/orders/7", ObjectRef("ORG", "7")),
    ],
)
def test_parse_object_url(url: str, ref: ObjectRef) -> None:
    assert parse_object_url(url) == ref


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "/api/v1/orders/5/",
        "/api/v2/orgs/",
        "/api/v2/orgs/7/orders/",
        "/api/v2/orgs/7/contacts/3/",
        "/api/v2/orgs/7/orders/1/boxes/2/items/3/tracking/4/",
        "https://www.readycloud.com/",
    ],
)
def test_parse_object_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        parse_object_url(url)


def test_url_path_drops_host_and_query() -> None:
    assert url_path("https://h/api/v2/orgs/7/orders/1/?x=1#f") == "/api/v2/orgs/7/orders/1/"
    assert url_path("/api/v2/orgs/7/") == "/api/v2/orgs/7/"


@given(st.text())
def test_parse_object_url_only_raises_value_error(text: str) -> None:
    try:
        ref = parse_object_url(text)
    except ValueError:
        return
    assert isinstance(ref.org_pk, str) and ref.org_pk


@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4),
    st.sampled_from(["", "https://www.readycloud.com", "http://127.0.0.1:8765"]),
    st.sampled_from(["/", ""]),
)
def test_parse_object_url_round_trip(levels: list[str], host: str, slash: str) -> None:
    names = ("orgs", "orders", "boxes", "items")
    path = "/api/v2/" + "/".join(
        f"{n}/{quote(pk, safe='')}" for n, pk in zip(names, levels, strict=False)
    )
    ref = parse_object_url(host + path + slash)
    expected = [*levels, None, None, None, None][:4]
    assert [ref.org_pk, ref.order_pk, ref.box_pk, ref.item_pk] == expected


@given(st.text())
def test_parse_api_datetime_only_raises_value_error(text: str) -> None:
    try:
        moment = parse_api_datetime(text)
    except ValueError:
        return
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_api_datetime_round_trip(moment: datetime) -> None:
    text = format_api_datetime(moment)
    assert text.endswith("Z") and len(text) == 27
    assert parse_api_datetime(text) == moment
    assert parse_api_datetime(text).tzinfo == UTC


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)))
def test_naive_api_datetime_is_utc(moment: datetime) -> None:
    assert parse_api_datetime(moment.isoformat()) == moment.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-03-30T00:00:16.159321Z", datetime(2018, 3, 30, 0, 0, 16, 159321, tzinfo=UTC)),
        ("2018-03-30T00:00:16+00:00", datetime(2018, 3, 30, 0, 0, 16, tzinfo=UTC)),
        ("2013-07-11T20:49:00Z", datetime(2013, 7, 11, 20, 49, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T14:00:00+0200", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ],
)
def test_parse_api_datetime_examples(text: str, expected: datetime) -> None:
    assert parse_api_datetime(text) == expected


def test_format_refuses_naive() -> None:
    with pytest.raises(ValueError):
        format_api_datetime(datetime(2024, 5, 1))
    assert parse_user_datetime("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
