"""canonical_bytes is canonical_json in UTF-8, byte for byte: every hash ever stored must still recompute."""

from __future__ import annotations

import hashlib
import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from generator.examples import Message, canonical_bytes, canonical_json, messages_hash

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_bytes_equal_the_stdlib_form(value: object) -> None:
    try:
        expected = canonical_json(value).encode()
    except UnicodeEncodeError:
        return  # a lone surrogate: checked below
    assert canonical_bytes(value) == expected


def test_every_code_point_is_written_as_the_stdlib_writes_it() -> None:
    text = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)
    value = {"k" + text[:50]: [text, {"é": text[::-1]}]}
    assert canonical_bytes(value) == canonical_json(value).encode()


def test_floats_in_both_notations_and_special_values() -> None:
    for number in (0.0, -0.0, 4.0, 5.123, 1e-4, 9.5e-5, 1e-05, 1e15, 1e16, 123456789.123, 2.5e300, math.nan, math.inf, -math.inf):
        assert canonical_bytes({"seconds": number}) == canonical_json({"seconds": number}).encode(), number


def test_a_lone_surrogate_fails_as_before() -> None:
    for value in ("\ud800", [{"role": "user", "content": "\udfff"}]):
        try:
            canonical_bytes(value)
        except UnicodeEncodeError:
            continue
        raise AssertionError("a lone surrogate must not hash")


def test_messages_hash_is_the_same_for_models_and_dicts() -> None:
    conversation = [{"role": "user", "content": "Hi \u2028 \x1f"}, {"role": "assistant", "content": 'a "quoted" \\ answer'}]
    as_models = [Message(**m) for m in conversation]
    expected = hashlib.sha256(canonical_json(conversation).encode()).hexdigest()
    assert messages_hash(conversation) == messages_hash(as_models) == expected
