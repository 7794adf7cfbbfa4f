"""ReadyCloud API v2 paths and object identity from `url` fields (org, order, box, item pks)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

DEFAULT_BASE_URL = "https://www.readycloud.com"
API_PREFIX = "/api/v2"
ORGS_PATH = f"{API_PREFIX}/orgs/"

_PREFIX_SEGMENTS = tuple(s for s in API_PREFIX.split("/") if s)
# The levels of the v2 object tree, in path order: /orgs/{org}/orders/{order}/boxes/{box}/items/{item}/
_LEVELS = ("orgs", "orders", "boxes", "items")


def validate_org_pk(org_pk: str) -> str:
    """`org_pk` if it can name an org in a URL path; ValueError for empty, `.` and `..`.

    Every other character is percent-encoded by the path helpers below; dot segments cannot
    be encoded (URL normalization removes them, even as %2E), so they are refused.
    """
    if not isinstance(org_pk, str) or not org_pk.strip() or org_pk.strip() in (".", ".."):
        raise ValueError(
            f"invalid org pk {org_pk!r:.60}: an org pk must not be empty, '.' or '..' "
            "(check READYCLOUD_ORGS or --orgs)"
        )
    return org_pk


def org_path(org_pk: str) -> str:
    """The path of one organization (the pk validated and percent-encoded)."""
    return f"{ORGS_PATH}{quote(validate_org_pk(org_pk), safe='')}/"


def orders_path(org_pk: str) -> str:
    """The path of an organization's orders list."""
    return f"{org_path(org_pk)}orders/"


def order_path(org_pk: str, order_pk: str) -> str:
    """The path of one order."""
    return f"{orders_path(org_pk)}{quote(order_pk, safe='')}/"


@dataclass(frozen=True)
class ObjectRef:
    """The pks named by an object's url; levels below the object are None."""

    org_pk: str
    order_pk: str | None = None
    box_pk: str | None = None
    item_pk: str | None = None


def url_path(url: str) -> str:
    """The path part of an absolute or host-relative url, without query or fragment."""
    return urlsplit(url.strip()).path


def parse_object_url(url: str) -> ObjectRef:
    """Derive the pks from an org, order, box or item url (absolute or host-relative).

    Raises ValueError when the url is not of the /api/v2/orgs/{org}/... shape.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("empty url")
    segments = [s for s in url_path(url).split("/") if s]
    if tuple(segments[:2]) != _PREFIX_SEGMENTS:
        raise ValueError(f"not an {API_PREFIX}/ url: {url[:200]!r}")
    rest = segments[2:]
    if not rest or len(rest) % 2 or len(rest) > 2 * len(_LEVELS):
        raise ValueError(f"not an org, order, box or item url: {url[:200]!r}")
    pks: list[str] = []
    for index in range(0, len(rest), 2):
        if rest[index] != _LEVELS[index // 2]:
            raise ValueError(f"unexpected path segment {rest[index]!r} in {url[:200]!r}")
        pk = unquote(rest[index + 1])
        if not pk:
            raise ValueError(f"empty pk in {url[:200]!r}")
        pks.append(pk)
    pks += [None] * (len(_LEVELS) - len(pks))  # type: ignore[list-item]
    return ObjectRef(*pks)


def org_of_path(path: str) -> str | None:
    """The org pk named by an /api/v2/orgs/{org}/... path or url, else None."""
    segments = [s for s in url_path(path).split("/") if s]
    if tuple(segments[:3]) == (*_PREFIX_SEGMENTS, "orgs") and len(segments) > 3:
        return unquote(segments[3])
    return None


def webhooks_path(org_pk: str) -> str:
    """The path of an organization's webhook list (POST here creates one)."""
    return f"{org_path(org_pk)}webhooks/"
