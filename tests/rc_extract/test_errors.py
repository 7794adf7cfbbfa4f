"""Error mapping: one class per status, the server's own words, advice, and never the token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rc_extract.client import ReadyCloudClient
from rc_extract.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReadyCloudError,
    ServerError,
    detail_from_body,
    status_error,
)

MakeClient = Callable[..., ReadyCloudClient]
TOKEN = "0123456789abcdef0123456789abcdef"


def _answer(code: int, **kw: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, **kw)


def test_401_says_to_create_a_new_token(make_client: MakeClient, kit: Any) -> None:
    body = kit.load("error_401_expired_token.json")
    client = make_client(_answer(401, json=body, headers={"X-Request-ID": "req-42"}))
    with pytest.raises(AuthenticationError) as info:
        client.list_orgs()
    err = info.value
    assert (err.status_code, err.path, err.request_id) == (401, "/api/v2/orgs/", "req-42")
    assert err.detail == "invalid_token: Token is expired"
    message = str(err)
    assert "the API token is invalid or expired" in message
    assert "Settings → Apps → your app" in message and "READYCLOUD_API_TOKEN" in message
    assert "Token is expired" in message and "req-42" in message


def test_403_names_the_org_and_the_scope(make_client: MakeClient, kit: Any) -> None:
    client = make_client(_answer(403, json=kit.load("error_403_drf.json")))
    with pytest.raises(PermissionDeniedError) as info:
        list(client.iter_orders("7"))
    message = str(info.value)
    assert "org 7" in message and "`order-read_only`" in message and "membership" in message
    assert "You do not have permission to perform this action." in message
    assert info.value.path == "/api/v2/orgs/7/orders/"


def test_403_on_a_path_without_org_names_the_path(make_client: MakeClient) -> None:
    client = make_client(_answer(403, json={"error": "insufficient_scope"}))
    with pytest.raises(PermissionDeniedError, match=r"may not read /api/v2/orgs/;"):
        client.list_orgs()


def test_404_carries_the_v1_error_message(make_client: MakeClient, kit: Any) -> None:
    client = make_client(_answer(404, json=kit.load("error_404_v1.json")))
    with pytest.raises(NotFoundError) as info:
        client.get_json("orgs/7/")
    assert info.value.detail == "Order matching query does not exist."


def test_5xx_raw_text_is_truncated(make_client: MakeClient) -> None:
    client = make_client(_answer(501, text="x" * 5000))
    with pytest.raises(ServerError) as info:
        client.get_json("orgs/")
    assert len(info.value.detail) <= 500


def test_server_echoing_the_token_is_redacted(make_client: MakeClient) -> None:
    client = make_client(_answer(400, json={"detail": f"bad bearer_token={TOKEN}"}))
    with pytest.raises(APIStatusError) as info:
        client.get_json(f"orgs/?bearer_token={TOKEN}")
    err = info.value
    assert type(err) is APIStatusError
    for text in (str(err), err.detail, err.path, repr(err.args)):
        assert TOKEN not in text
    assert "<redacted>" in err.detail


def test_invalid_json_message_is_token_free(make_client: MakeClient) -> None:
    client = make_client(_answer(200, text=f"oops {TOKEN}"), deadline=1)
    with pytest.raises(InvalidResponseError) as info:
        client.get_json("orgs/")
    assert TOKEN not in str(info.value)
    assert info.value.path == "/api/v2/orgs/"


def test_unreachable_host_names_the_base_url(make_client: MakeClient) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = make_client(refuse, deadline=2)
    with pytest.raises(APIConnectionError) as info:
        client.list_orgs()
    message = str(info.value)
    assert "https://api.readycloud.test" in message
    assert "READYCLOUD_BASE_URL" in message and "network" in message
    assert TOKEN not in message


def test_status_error_factory_and_hierarchy() -> None:
    expected = {
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        429: RateLimitError,
        500: ServerError,
        503: ServerError,
        400: APIStatusError,
        418: APIStatusError,
    }
    for code, cls in expected.items():
        err = status_error(code, "/api/v2/orgs/7/")
        assert type(err) is cls
        assert isinstance(err, ReadyCloudError)
        assert err.status_code == code
        assert str(err).startswith(f"{code} ")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"detail": "Not found."}', "Not found."),
        (
            b'{"error": "invalid_token", "error_description": "Token doesn\'t exist"}',
            "invalid_token: Token doesn't exist",
        ),
        (b'{"error": "invalid_client"}', "invalid_client"),
        (b'{"error_message": "boom"}', "boom"),
        (
            b'{"primary_id": ["This field is required."]}',
            '{"primary_id": ["This field is required."]}',
        ),
        (b"<h1>Bad Gateway</h1>\n", "<h1>Bad Gateway</h1>"),
        (b"", ""),
    ],
)
def test_detail_from_body(body: bytes, detail: str) -> None:
    assert detail_from_body(body) == detail
