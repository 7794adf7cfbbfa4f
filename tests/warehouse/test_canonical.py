"""The fast canonical JSON (msgspec) is byte-identical to the reference (json.dumps) form.

The canonical text is the orders' content hash, the history tables' version identity and the
stored `raw`: a different byte anywhere would rewrite every order once. Generated documents
cover every float magnitude, NaN/Infinity, lone surrogates, NUL, big integers and non-str keys
(where msgspec refuses or differs, the reference encoder must be the one used).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse import normalize
from warehouse.normalize import _canonical, _child_hash, _stdlib_canonical, doc_hash

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.floats(min_value=1e14, max_value=1e18),
    st.text(),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xFFFF)),
    st.sampled_from(["70.59 USD", "170.000 g", "2024-05-01T12:00:00Z", "\x00", "\ud800", "é😀"]),
)
keys = st.one_of(st.text(max_size=8), st.sampled_from(["a", "b", "\x7f", "\u2028", "ü"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
odd_keys = st.dictionaries(
    st.one_of(st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False)),
    scalars,
    min_size=1,
    max_size=3,
)


def _reference(doc: Any) -> tuple[str, bytes, bool]:
    text, non_finite = _stdlib_canonical(doc)
    return text, text.encode("utf-8", "surrogatepass"), non_finite


def _check(doc: Any) -> None:
    try:
        expected = _reference(doc)
    except (TypeError, ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            _canonical(doc)
        return
    text, data, non_finite, fast = _canonical(doc)
    assert (text, data, non_finite) == expected
    assert normalize.canonical_json(doc) == (expected[0], expected[2])
    if fast:
        assert _child_hash(doc, True) == doc_hash(doc)


@SETTINGS
@given(st.dictionaries(keys, json_values, max_size=8))
def test_documents_encode_exactly_like_the_reference(doc: dict[str, Any]) -> None:
    _check(doc)


@SETTINGS
@given(json_values)
def test_any_json_value_encodes_exactly_like_the_reference(value: Any) -> None:
    _check(value)


@SETTINGS
@given(odd_keys)
def test_non_string_keys_fall_back_to_the_reference(doc: dict[Any, Any]) -> None:
    _check(doc)


@pytest.mark.parametrize(
    "value",
    [
        1e16,
        1e-5,
        1.5e-5,
        1e-4,
        0.0001,
        -0.0,
        1e22,
        5e-324,
        2.5e-7,
        1e15,
        123.0,
        float("nan"),
        float("inf"),
        -float("inf"),
        2**64,
        -(2**63) - 1,
        "\ud800",
        "a\x00b",
        "\u2028",
    ],
)
def test_known_differences_between_the_encoders_are_caught(value: Any) -> None:
    doc = {"custom_fields": {"x": value, "y": [value]}, "total": "1.00 USD"}
    _check(doc)
    _, _, non_finite, fast = _canonical(doc)
    if isinstance(value, float) and not math.isfinite(value):
        assert non_finite and not fast
    if isinstance(value, float) and ("e" in repr(value)):
        assert not fast  # msgspec writes these floats differently: the reference is used


def _stdlib_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_sandbox_orders_hash_exactly_like_the_reference() -> None:
    from rc_sandbox import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(orgs=1, orders=200, seed=3))
    docs = server.store.orders_json(server.store.org_pks()[0])
    fast_count = 0
    for doc in docs:
        _text, data, non_finite, fast = _canonical(doc)
        assert not non_finite and data == _stdlib_bytes(doc)
        fast_count += fast
        for box in doc["boxes"]:
            shell = {k: v for k, v in box.items() if k != "items"}
            assert _child_hash(shell, fast) == hashlib.sha256(_stdlib_bytes(shell)).hexdigest()
            for item in box["items"]:
                assert _child_hash(item, fast) == hashlib.sha256(_stdlib_bytes(item)).hexdigest()
    # the sandbox writes some item weights as JSON numbers: those orders take the stdlib path
    assert fast_count >= len(docs) * 0.7
