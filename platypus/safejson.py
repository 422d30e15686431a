"""JSON from the outside, parsed so that a small hostile body is refused, never a crash.

``json.loads`` has two failure modes that are not `json.JSONDecodeError` and that
a caller catching "bad JSON" misses, so they end as a 500:

* nesting deeper than Python's recursion limit (``[[[[...`` 3,000 deep is 6 KB)
  raises `RecursionError`; nesting just under it parses, then breaks whatever
  walks the value next (validation, masking, re-encoding);
* an integer of more than 4,300 digits raises a plain `ValueError` (CPython's
  guard against quadratic int-to-text conversion).

A third parses and fails later: an escaped unpaired UTF-16 surrogate
(``"\ud800"``) becomes a Python string that cannot be encoded as UTF-8, so
storing or re-encoding it raises (RFC 8259, section 8.2, calls such strings not
interoperable).

`loads` refuses all three as an `UnsafeJsonError`, a `json.JSONDecodeError`, so every
``except json.JSONDecodeError`` already in place answers it like any malformed
body, with the position and the reason. The ingress and every webhook decoder
parse through it.

The depth check costs two ``bytes.count`` calls for an ordinary event (fewer
brackets than the limit cannot nest past it); only bodies with more brackets
than `MAX_DEPTH` are measured, with C-speed string operations.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_DIGITS", "UnsafeJsonError", "loads", "nests_deeper"]

MAX_DEPTH = 128
"""Deepest nesting of arrays and objects accepted (serde_json's default limit).

Business events nest a handful of levels; 128 leaves room for any real payload
and far below what the recursive code downstream (validation, masking, JMESPath)
can walk.
"""

MAX_DIGITS = sys.get_int_max_str_digits() or 4300
"""Longest integer accepted, in digits: CPython's own limit for int-to-text conversion."""

# A JSON string, with its escapes: removed before brackets are counted, since a
# bracket inside a string does not nest anything.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
# An escaped surrogate, high or low: rare, so the careful look below runs only then.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Escapes in order, so that an escaped backslash is never read as starting another:
# a proper pair, then a lone surrogate (group 1), then any other escape.
_ESCAPE = re.compile(
    rb"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(u[dD][89a-fA-F][0-9a-fA-F]{2})|.)",
    re.DOTALL,
)
_LONG_INTEGER = re.compile(rb"-?\d{%d,}" % (MAX_DIGITS + 1))
# Every byte but the four brackets, for bytes.translate(None, delete=...).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = bytes.maketrans(b"[]{}", b"()()")


class UnsafeJsonError(json.JSONDecodeError):
    """JSON that parses but is refused: too deep, too long an integer, a lone surrogate.

    A `json.JSONDecodeError` (and so a `ValueError`): ``msg`` says what, ``pos``,
    ``lineno`` and ``colno`` where.
    """


def loads(data: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON like `json.loads`, refusing what would break the code that reads it next.

    Raises `json.JSONDecodeError` for malformed JSON, its subclass `UnsafeJsonError`
    for too deep nesting, too long an integer or an unpaired surrogate, and
    `UnicodeDecodeError` for bytes that are not Unicode text.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        _check_depth(raw, data, max_depth)
    if _SURROGATE_ESCAPE.search(raw):
        _check_surrogates(raw, data)
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        # The caller's own stack was already deep: the same refusal, without a position.
        raise UnsafeJsonError(_too_deep(max_depth), _text(data), 0) from None
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
        found = _LONG_INTEGER.search(raw)
        position = _char_offset(raw, found.start()) if found else 0
        raise UnsafeJsonError(
            f"a number has more than {MAX_DIGITS} digits", _text(data), position
        ) from None


def nests_deeper(text: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects of JSON ``text`` nest deeper than ``limit``.

    With C-speed string operations, no recursion: safe on any body. Malformed text
    (brackets that do not pair up) is not deep; the parser says where it is wrong.
    Also what `platypus.jsontext.dumps` checks the stored form of an event with.
    """
    # Keep only the brackets outside strings, as "(" and ")", then peel off the
    # innermost pairs: a document of depth d is empty after d passes.
    brackets = _STRING.sub(b"", text).translate(_OPEN, delete=_NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        peeled = brackets.replace(b"()", b"")
        if len(peeled) == len(brackets):
            return False  # unbalanced: malformed, not deep
        brackets = peeled
    return b"()" in brackets  # else what is left does not pair up: malformed, not deep


def _check_depth(raw: bytes, data: bytes | bytearray | str, max_depth: int) -> None:
    if nests_deeper(raw, max_depth):
        raise UnsafeJsonError(_too_deep(max_depth), _text(data), _deep_position(raw, max_depth))


def _check_surrogates(raw: bytes, data: bytes | bytearray | str) -> None:
    for match in _ESCAPE.finditer(raw):
        if match.group(1):
            raise UnsafeJsonError(
                f"a string holds an unpaired UTF-16 surrogate (\\{match.group(1).decode()}), "
                "which is not Unicode text",
                _text(data),
                _char_offset(raw, match.start()),
            )


def _deep_position(raw: bytes, max_depth: int) -> int:
    """Where nesting first goes past ``max_depth`` (only run on a refused body)."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return _char_offset(raw, match.start())
        elif token in (b"]", b"}"):
            depth -= 1
    return 0


def _too_deep(max_depth: int) -> str:
    return f"arrays and objects nest deeper than {max_depth} levels"


def _char_offset(raw: bytes, byte_offset: int) -> int:
    return len(raw[:byte_offset].decode("utf-8", "replace"))


def _text(data: bytes | bytearray | str) -> str:
    return data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
