"""The errors the ReadyCloud client raises: one small hierarchy, messages that say what to fix."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Self

from rc_common.paths import org_of_path
from rc_extract.settings import DETAIL_MAX_CHARS


class ReadyCloudError(Exception):
    """Base class of every error raised by rc_extract."""


class InsecureTransportError(ReadyCloudError):
    """The base URL would send the token in clear text (plain http to a non-loopback host)."""


class APIConnectionError(ReadyCloudError):
    """The API host could not be reached (DNS, refused connection, TLS, dropped connection)."""

    def __init__(
        self, base_url: str, path: str | None = None, reason: str = "", *, answered: bool = False
    ) -> None:
        self.base_url = base_url
        self.path = path
        self.reason = reason
        # True when the host had answered this client before: an outage during a run, not a
        # wrong READYCLOUD_BASE_URL (the command line exits 1 for it, not 2).
        self.answered = answered
        where = f" (GET {path})" if path else ""
        why = f": {reason}" if reason else ""
        if answered:
            message = (
                f"the ReadyCloud API at {base_url} stopped answering{where}{why}; "
                "it had answered earlier in this run"
            )
        else:
            message = (
                f"cannot reach the ReadyCloud API at {base_url}{where}{why}; "
                "check READYCLOUD_BASE_URL and the network"
            )
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """The API did not answer in time."""


class InvalidResponseError(ReadyCloudError):
    """A successful response whose body is not the JSON the API documents."""

    def __init__(self, message: str, path: str) -> None:
        self.path = path
        super().__init__(message)


class UnstableListingError(ReadyCloudError):
    """A listing kept changing under the walk; no consistent snapshot could be read."""


class APIStatusError(ReadyCloudError):
    """The API answered with an error status; carries the status, path, server detail, request id."""

    def __init__(
        self,
        status_code: int,
        path: str,
        detail: str = "",
        request_id: str | None = None,
        *,
        method: str = "GET",
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.path = path
        self.detail = detail
        self.request_id = request_id
        self.method = method
        self.retry_after = retry_after
        self.hint = self.default_hint(path) if hint is None else hint
        try:
            reason = HTTPStatus(status_code).phrase
        except ValueError:
            reason = "HTTP error"
        message = f"{status_code} {reason} for {method} {path}"
        if self.hint:
            message += f": {self.hint}"
        if detail:
            message += f" (server said: {detail})"
        if request_id:
            message += f" [request id {request_id}]"
        super().__init__(message)

    def default_hint(self, path: str) -> str:
        """What to do about this status (empty when there is nothing useful to say)."""
        return ""

    def with_hint(self, hint: str) -> Self:
        """The same error (class, status, path, detail, request id) saying `hint` instead."""
        return type(self)(
            self.status_code,
            self.path,
            self.detail,
            self.request_id,
            method=self.method,
            retry_after=self.retry_after,
            hint=hint,
        )


class AuthenticationError(APIStatusError):
    """401: the token is missing, unknown or expired."""

    def default_hint(self, path: str) -> str:
        """Tell the user to create a new token."""
        return (
            "the API token is invalid or expired; create a new token in ReadyCloud "
            "(Settings → Apps → your app) and set READYCLOUD_API_TOKEN"
        )


class PermissionDeniedError(APIStatusError):
    """403: the token lacks the scope or the org membership for this resource."""

    def default_hint(self, path: str) -> str:
        """Name the org (or path) and the scope the token needs."""
        org_pk = org_of_path(path)
        target = f"org {org_pk} ({path})" if org_pk else path
        return (
            f"the token may not read {target}; it needs the `order-read_only` scope "
            "and membership of that org"
        )


class NotFoundError(APIStatusError):
    """404: the org or object does not exist (or is not visible to the token)."""


class RateLimitError(APIStatusError):
    """429: throttled by the API (after retries, or when Retry-After would pass the deadline)."""


class ServerError(APIStatusError):
    """5xx: the API failed."""


def status_error(
    status_code: int,
    path: str,
    detail: str = "",
    request_id: str | None = None,
    *,
    method: str = "GET",
    retry_after: float | None = None,
) -> APIStatusError:
    """The APIStatusError subclass for a status code."""
    cls: type[APIStatusError]
    if status_code == 401:
        cls = AuthenticationError
    elif status_code == 403:
        cls = PermissionDeniedError
    elif status_code == 404:
        cls = NotFoundError
    elif status_code == 429:
        cls = RateLimitError
    elif status_code >= 500:
        cls = ServerError
    else:
        cls = APIStatusError
    return cls(status_code, path, detail, request_id, method=method, retry_after=retry_after)


def _truncate(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def detail_from_body(body: bytes | str) -> str:
    """The server's own error message from a response body, verbatim but truncated.

    Understands DRF (`{"detail": ...}`), OAuth (`{"error", "error_description"}`), v1
    (`{"error_message": ...}`) and anything else (JSON as text, or the raw text).
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not text.strip():
        return ""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return _truncate(text)
    if isinstance(data, dict):
        if "detail" in data:
            return _truncate(str(data["detail"]))
        if "error" in data:
            description = data.get("error_description")
            error = str(data["error"])
            return _truncate(f"{error}: {description}" if description else error)
        if "error_message" in data:
            return _truncate(str(data["error_message"]))
    return _truncate(json.dumps(data, ensure_ascii=False))
