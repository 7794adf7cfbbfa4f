"""The API token's safety net: refuse tokens that cannot be sent, and redact every form of one."""

from __future__ import annotations

import json
import re
import unicodedata
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
# Fragments shorter than this are not redacted on their own: they would blank out ordinary words.
MIN_FRAGMENT = 6
_BREAKS = re.compile(r"[\x00-\x1f\x7f\s]+")


class TokenFormatError(ValueError):
    """The token cannot be sent as an HTTP header (it is never part of the message)."""


def check_token(token: str) -> str:
    """The token without surrounding whitespace; TokenFormatError for characters a header cannot hold."""
    value = token.strip()
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise TokenFormatError(
            "the token contains a line break or control character; check READYCLOUD_API_TOKEN "
            "(a paste accident in .env?) and set it to the token alone, on one line"
        )
    if not value.isascii():
        raise TokenFormatError(
            "the token contains a non-ASCII character; check READYCLOUD_API_TOKEN and set it "
            "to the token alone, as ReadyCloud shows it"
        )
    return value


def secret_forms(secret: str) -> list[str]:
    """Every form in which `secret` may appear in a message, longest first.

    The secret itself, its Python-repr, JSON and percent-encoded forms, and its fragments
    between line breaks or control characters (an HTTP library quoting a header up to the
    first illegal character shows only such a fragment).
    """
    if len(secret) < 4:
        return []
    forms = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
    }
    forms.update(part for part in _BREAKS.split(secret) if len(part) >= MIN_FRAGMENT)
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact(text: str, secret: str | None) -> str:
    """`text` with every form of `secret` (see secret_forms) replaced by <redacted>."""
    if not secret or not text:
        return text
    for form in secret_forms(secret):
        if form in text:
            text = text.replace(form, REDACTED)
    return text
