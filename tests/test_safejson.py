"""platypus.safejson: JSON parsed like json.loads, refusing what would crash its readers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platypus.safejson import MAX_DEPTH, MAX_DIGITS, UnsafeJsonError, loads, nests_deeper


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_parses_and_one_more_level_is_refused_with_its_position() -> None:
    assert loads(nested(MAX_DEPTH)) is not None
    with pytest.raises(UnsafeJsonError) as caught:
        loads(nested(MAX_DEPTH + 1))
    assert caught.value.msg == f"arrays and objects nest deeper than {MAX_DEPTH} levels"
    assert caught.value.pos == MAX_DEPTH  # the opening bracket one level too deep
    assert (caught.value.lineno, caught.value.colno) == (1, MAX_DEPTH + 1)


def test_3000_nested_arrays_or_objects_are_refused_not_a_recursion_error() -> None:
    for body in (nested(3000), '{"a":' * 3000 + "1" + "}" * 3000):
        with pytest.raises(UnsafeJsonError):
            loads(body.encode())


def test_a_refusal_is_a_json_decode_error_so_existing_handlers_answer_it() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads(nested(5000))


def test_deep_nesting_after_a_wide_prefix_is_found_where_it_is() -> None:
    wide = "[" + ",".join(["[1]"] * 500) + "," + nested(MAX_DEPTH) + "]"
    with pytest.raises(UnsafeJsonError) as caught:
        loads(wide)
    # The outer array is level 1, so the inner run's last opening bracket is one too deep.
    assert caught.value.pos == wide.index(nested(MAX_DEPTH)) + MAX_DEPTH - 1


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"note": "[{" * 5000, "escaped": 'a \\" [[[ "' * 100})
    assert loads(text) == json.loads(text)


def test_many_shallow_brackets_parse() -> None:
    text = json.dumps([{"a": [1, {"b": []}]} for _ in range(2000)])
    assert loads(text) == json.loads(text)


def test_unbalanced_brackets_are_reported_by_the_json_parser_as_malformed() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        loads("[" * 500 + "]" * 10)
    assert not isinstance(caught.value, UnsafeJsonError)
    with pytest.raises(json.JSONDecodeError) as closed_first:
        loads("]" * 200 + "[" * 200)
    assert not isinstance(closed_first.value, UnsafeJsonError)


def test_an_integer_over_the_digit_limit_is_refused_with_its_position() -> None:
    assert loads("9" * MAX_DIGITS) == int("9" * MAX_DIGITS)
    body = '{"amount": ' + "9" * 5000 + "}"
    with pytest.raises(UnsafeJsonError) as caught:
        loads(body)
    assert caught.value.msg == f"a number has more than {MAX_DIGITS} digits"
    assert caught.value.pos == body.index("9")


def test_unpaired_surrogates_are_refused_and_pairs_and_escaped_backslashes_are_not() -> None:
    assert loads(r'"\ud83d\ude00"') == "\U0001f600"
    assert loads(r'"\\ud800"') == "\\ud800"  # an escaped backslash, then text
    for text in (
        r'"\ud800"',
        r'"\udfff"',
        r'["ok", "a\ud83d b"]',
        r'"\\\ud800"',
        r'"\ud800\u0041"',
    ):
        with pytest.raises(UnsafeJsonError, match="unpaired UTF-16 surrogate"):
            loads(text)


def test_bytes_that_are_not_unicode_raise_unicode_decode_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        loads(b'{"id": "\xff\xfe\xfa"}')


def test_malformed_json_raises_the_plain_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        loads('{"a": }')
    assert not isinstance(caught.value, UnsafeJsonError)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


@given(_json)
def test_anything_json_dumps_writes_within_the_limits_parses_as_json_loads_does(
    value: Any,
) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert loads(text) == json.loads(text)
        assert loads(text.encode()) == json.loads(text.encode())


def test_nests_deeper_counts_brackets_outside_strings_and_calls_malformed_text_not_deep() -> None:
    assert not nests_deeper(nested(3).encode(), 3)
    assert nests_deeper(nested(4).encode(), 3)
    assert not nests_deeper(b'[["[[[[", {"a": "{{{{"}]]', 3)  # brackets in strings nest nothing
    assert not nests_deeper(b"[[[[[[", 3)  # unbalanced: the parser says where
