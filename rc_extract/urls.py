"""Object identity from ReadyCloud `url` fields: org, order, box and item pks as opaque strings."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

API_PREFIX = ("api", "v2")
# The levels of the v2 object tree, in path order: /orgs/{org}/orders/{order}/boxes/{box}/items/{item}/
_LEVELS = ("orgs", "orders", "boxes", "items")


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
    if tuple(segments[:2]) != API_PREFIX:
        raise ValueError(f"not an /api/v2/ url: {url[:200]!r}")
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
