"""platypus.jsontext: JSON read as RFC 8259 and I-JSON say, written back in one form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platypus.exceptions import JsonTextError
from platypus.jsontext import (
    MAX_DEPTH,
    NOT_CANONICAL,
    canonical,
    dumps,
    from_python,
    integral,
    loads,
    parse,
)


def refused(data: bytes) -> JsonTextError:
    with pytest.raises(JsonTextError) as caught:
        dumps(parse(data))
    return caught.value


def nested(depth: int) -> bytes:
    return b'{"a":' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"id":"a","id":"b"}', (1, 16)),
        (b'{"data":{"x":1,"x":2}}', (1, 20)),
        (b'[{"a":1},{"b":1,"b":1}]', (1, 21)),
    ],
)
def test_a_duplicate_name_is_refused_with_where(body: bytes, where: tuple[int, int]) -> None:
    error = refused(body)
    assert "duplicate name" in error.reason
    assert (error.line, error.column) == where


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(literal: bytes) -> None:
    error = refused(b'{"x": ' + literal + b"}")
    assert error.reason == "NaN and Infinity are not JSON numbers (RFC 8259 section 6)"
    assert error.line == 1


def test_a_number_a_64_bit_float_cannot_hold_is_refused_where_it_is() -> None:
    error = refused(b'{"data": {"amount": 1e400}}')
    assert "beyond the range of a 64-bit float" in error.reason
    assert error.path == "data.amount"


def test_integers_beyond_64_bits_are_refused_with_their_path() -> None:
    assert loads(dumps(parse(b'{"n": 18446744073709551615}'))) == {"n": 2**64 - 1}
    error = refused(b'{"data": {"lines": [1, 18446744073709551616]}}')
    assert "beyond the 64-bit range" in error.reason
    assert error.path == "data.lines[1]"
    huge = refused(b'{"n": ' + b"9" * 5000 + b"}")
    assert "out of range (more than 4,300 digits)" in huge.reason
    assert huge.line == 1


def test_nesting_up_to_the_limit_is_stored_and_one_level_more_is_refused() -> None:
    assert dumps(parse(nested(MAX_DEPTH))) == nested(MAX_DEPTH)
    error = refused(nested(MAX_DEPTH + 1))
    assert error.reason == f"arrays and objects nest deeper than {MAX_DEPTH} levels"
    assert error.path.startswith("a[0][0]")


def test_3000_nested_arrays_are_refused_not_a_crash() -> None:
    for body in (b"[" * 3000 + b"]" * 3000, b'{"a":' * 3000 + b"1" + b"}" * 3000):
        assert "nest deeper" in refused(body).reason


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"note": "[{" * 5000}).encode()
    assert loads(dumps(parse(text))) == {"note": "[{" * 5000}


def test_a_utf8_byte_order_mark_is_skipped_and_not_stored() -> None:
    assert dumps(parse(b'\xef\xbb\xbf{"a": "\xc3\xa9"}')) == '{"a":"é"}'.encode()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_text_is_refused(encoding: str) -> None:
    error = refused('{"id": "a"}'.encode(encoding))
    assert "JSON exchanged between systems is UTF-8 (RFC 8259 section 8.1)" in error.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": "\xff"}', "the text is not UTF-8"),
        (rb'{"a": "\ud800"}', "surrogate"),
        (rb'{"a": "\udc00"}', "surrogate"),
        (b'{"a": "tab\there"}', "control character"),
        (b'{"a": 1,}', "trailing comma"),
        (b'{"a": 01}', "invalid number"),
        (b"", "EOF"),
    ],
)
def test_text_that_is_not_json_says_why(body: bytes, reason: str) -> None:
    assert reason in str(refused(body))


def test_the_stored_form_is_compact_utf8_with_numbers_as_a_reader_reads_them() -> None:
    written = dumps(parse(b'{ "a" : 1.10, "b" : [ 1E2, -0.0 ], "c": "\\u00e9\\/" }'))
    assert written == '{"a":1.1,"b":[100.0,-0.0],"c":"é/"}'.encode()


def test_plain_python_values_of_a_webhook_are_written_too() -> None:
    from datetime import date
    from decimal import Decimal

    assert dumps({"d": date(2026, 1, 2), "m": Decimal("1.50")}) == b'{"d":"2026-01-02","m":"1.50"}'


_json: Any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(_json)
def test_any_json_within_the_limits_reads_back_as_json_reads_it(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert loads(dumps(parse(text.encode()))) == json.loads(text)


def test_python_data_is_read_as_its_json_would_be() -> None:
    from datetime import date
    from decimal import Decimal

    assert dumps(from_python({"a": 1.5, "d": date(2026, 1, 2), "m": Decimal("1.50")})) == (
        b'{"a":1.5,"d":"2026-01-02","m":"1.50"}'
    )
    with pytest.raises(JsonTextError) as caught:
        from_python({"data": {"lines": [1.0, float("inf")]}})
    assert caught.value.path == "data.lines[1]"


def test_integral_turns_whole_floats_into_integers_at_any_depth() -> None:
    value = {"a": [1.0, 2.5, {"b": 3.0, "c": "x"}], "d": 4.0, "e": None, "f": True, "g": 1e30}
    assert integral(value) == {
        "a": [1, 2.5, {"b": 3, "c": "x"}],
        "d": 4,
        "e": None,
        "f": True,
        "g": 1e30,
    }
    assert type(integral(value)["a"][0]) is int
    assert type(value["a"][0]) is float  # the input is not changed


def test_integral_returns_the_same_objects_when_nothing_changes() -> None:
    inner = [1, "two", None, False, {"x": 2.5}]
    value = {"list": inner, "n": 3, "s": "text"}
    assert integral(value) is value
    assert integral(inner) is inner


class _Float(float):
    pass


def test_integral_looks_at_subclasses_of_float() -> None:
    assert integral({"a": [_Float(2.0)]}) == {"a": [2]}
    assert type(integral({"a": [_Float(2.0)]})["a"][0]) is int


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=30,
    )
)
def test_integral_changes_only_whole_floats(value: Any) -> None:
    def expected(v: Any) -> Any:
        if isinstance(v, float):
            return int(v) if v.is_integer() and -(2**63) <= v <= 2**64 - 1 else v
        if isinstance(v, dict):
            return {k: expected(i) for k, i in v.items()}
        if isinstance(v, list):
            return [expected(i) for i in v]
        return v

    assert integral(value) == expected(value)


# -- canonical: the fast read of text already in the stored form ----------------------


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (0.0 and -0.0 differ, 1 and 1.0 too)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def agrees_with_parse(data: bytes) -> bool:
    """`canonical` either declines ``data`` or reads it exactly as parse + dumps would.

    True when it read it (so a test can say that the fast path was taken).
    """
    fast = canonical(data)
    if fast is NOT_CANONICAL:
        return False
    strict = parse(data)  # raises if canonical took what parse refuses
    assert same(fast, strict)
    assert dumps(strict) == data  # and the text is the stored form, byte for byte
    return True


_wide_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(st.dictionaries(st.text(max_size=8), _wide_json, min_size=1, max_size=5), st.data())
def test_canonical_reads_only_what_parse_reads_the_same(value: Any, data: st.DataObject) -> None:
    texts = [
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(value, ensure_ascii=False, indent=1).encode(),
    ]
    try:
        texts.append(dumps(value))
    except JsonTextError:
        pass  # an integer beyond 64 bits: not storable, so never canonical
    else:
        assert agrees_with_parse(texts[-1])  # the stored form is always read fast
        first = next(iter(value))
        # The same name twice: orjson would keep the last silently; parse refuses it.
        texts.append(texts[-1][:-1] + b"," + json.dumps(first).encode() + b":1}")
        texts.append(b"\xef\xbb\xbf" + texts[-2])  # a BOM before the stored form
    for text in texts:
        agrees_with_parse(text)
    assert agrees_with_parse(data.draw(st.sampled_from(texts))) in (True, False)


@pytest.mark.parametrize(
    "text",
    [
        # Other spellings of numbers than the stored form's.
        b'{"a":1E5}',
        b'{"a":1e5}',
        b'{"a":1.0e2}',
        b'{"a":1e20}',
        b'{"a":100000000000000000000.0}',
        b'{"a":-0}',
        b'{"a":0.10}',
        b'{"a":5.00}',
        # Integers past 64 bits (orjson reads them as floats), and far past them.
        b'{"a":18446744073709551616}',
        b'{"a":-9223372036854775809}',
        b'{"a":' + b"9" * 5000 + b"}",
        # Numbers JSON or a 64-bit float cannot hold.
        b'{"a":1e400}',
        b'{"a":NaN}',
        b'{"a":-Infinity}',
        # Escapes that need not be, or cannot be.
        b'{"a":"\\u00e9"}',
        b'{"a":"\\/"}',
        b'{"a":"\\u2028"}',
        b'{"a":"\\ud83d\\ude00"}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\udc00x"}',
        b'{"a":"\xed\xa0\x80"}',  # a surrogate written as UTF-8
        b'{"a":"\xff"}',
        # A BOM, whitespace, duplicate names, trailing commas, leading zeros.
        b'\xef\xbb\xbf{"a":1}',
        b'{"a": 1}',
        b'{"a":1}\n',
        b'{"a":1,"a":1}',
        b'{"a":{"b":1,"b":2}}',
        b'{"a":[1,],"b":1}',
        b'{"a":01}',
        # Deeper than the limit: parse says so.
        nested(MAX_DEPTH + 1),
    ],
)
def test_canonical_declines_what_is_not_the_stored_form(text: bytes) -> None:
    assert canonical(text) is NOT_CANONICAL


@pytest.mark.parametrize(
    "value",
    [
        {"a": 18446744073709551615, "b": -(2**63)},  # the ends of the range
        {"a": 1e20, "b": 1.5e-7, "c": -0.0, "d": 0.1, "e": 5.0, "f": 2.5e-308},
        {"a": 'é\u2028\x7f"\\\n\x00', "b": "😀"},
        {"a": None, "b": [True, False, None], "c": {}},
        {"a": [[[[1]]]]},
    ],
)
def test_the_stored_form_reads_fast_and_the_same(value: Any) -> None:
    assert agrees_with_parse(dumps(value))
    assert agrees_with_parse(nested(MAX_DEPTH))
