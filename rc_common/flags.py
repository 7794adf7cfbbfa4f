"""The one decider of on/off words, for settings (RC_SANDBOX=yes) and data values alike."""

from __future__ import annotations

TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", "off"})


def flag_value(text: str) -> bool | None:
    """True or False for an on/off word (any case, surrounding blanks ignored); None otherwise."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None
