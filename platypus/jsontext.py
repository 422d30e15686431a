"""JSON text from the outside, read strictly and written back canonically.

RFC 8259 leaves room that JSON readers fill in different ways: one takes the
first of two equal names in an object, another the last; one reads ``NaN``,
another refuses it; one rounds ``1e400`` to infinity. An event read one way at
the ingress and another way by the next reader is not the event that was
validated. So an event's JSON is read here once, refusing what I-JSON
(RFC 7493, the interoperable profile of RFC 8259) rules out, and written back
in one canonical form, which is what Platypus stores and every reader reads.

`parse` raises `JsonTextError` (an `EventError`: a 400 with the reason, and
line and column where there is one) for:

* text that is not UTF-8: invalid byte sequences, and UTF-16 or UTF-32 text,
  which RFC 8259 section 8.1 rules out between systems. A UTF-8 byte-order
  mark is skipped: senders must not add one, but the same section lets a
  parser ignore it, and the stored form never has one;
* duplicate names in an object (I-JSON section 2.3);
* ``NaN``, ``Infinity`` and other text that is not JSON (trailing commas,
  leading zeros, raw control characters in strings);
* unpaired UTF-16 surrogate escapes (``"\\ud800"``: not Unicode text);
* integers of more than 4,300 digits.

`dumps` writes the canonical form (UTF-8, no insignificant whitespace, orjson)
and refuses what cannot be stored as it was read, with the field's path:
integers beyond the 64-bit range (I-JSON section 2.2: send them as strings),
numbers a 64-bit float cannot hold (``1e400`` parses as infinity, which orjson
would write as ``null``: looked for only when the output holds a ``null``), and
nesting deeper than `MAX_DEPTH` (`platypus.safejson` bounds nesting for both). Every
event passes through both.

Measured per 750-byte event (``bench/ingress_codec.py``): jiter (the parser
inside pydantic) reads about twice as fast as ``json.loads`` while catching
duplicate names, which neither ``json`` (short of a Python hook per object) nor
orjson nor msgspec can; orjson writes two to three times as fast as ``json.dumps``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import jiter
import orjson

from platypus.exceptions import JsonTextError
from platypus.safejson import MAX_DEPTH, nests_deeper

__all__ = [
    "MAX_DEPTH",
    "NOT_CANONICAL",
    "canonical",
    "dumps",
    "from_python",
    "integral",
    "loads",
    "parse",
]


_BOM = b"\xef\xbb\xbf"
_POSITION = re.compile(r"^(?P<what>.*) at line (?P<line>\d+) column (?P<column>\d+)$", re.DOTALL)
_NOT_JSON_NUMBERS = re.compile(r"-?(?:NaN|Infinity)")


def parse(data: bytes) -> Any:
    """The JSON value of ``data``, read strictly; `JsonTextError` naming what and where.

    A number beyond a 64-bit float is infinity here, and refused by `dumps`.
    """
    if data[:3] == _BOM:
        data = data[3:]
    _refuse_other_encodings(data)
    try:
        return jiter.from_json(
            data,
            allow_inf_nan=False,
            catch_duplicate_keys=True,
            cache_mode="keys",
        )
    except ValueError as exc:
        raise _error(str(exc), data) from None


NOT_CANONICAL: Any = object()
"""What `canonical` returns for text that is not in the canonical form."""


def canonical(data: bytes) -> Any:
    """The value of ``data`` when ``data`` is already canonical, else `NOT_CANONICAL`.

    Canonical: exactly what `dumps` writes for the value `parse` reads from it,
    byte for byte (the stored form of every event Platypus writes). orjson reads
    such text about twice as fast as jiter, and writing the value back proves
    the two agree: a duplicate name (orjson keeps the last one silently) writes
    back shorter, and a BOM, whitespace, an escape that need not be one
    (``\\u00e9``, ``\\/``), another spelling of a number (``1E5``, ``1.0e2``,
    ``-0``) or an integer orjson reads as a float (beyond 64 bits) writes back
    otherwise. What orjson refuses (invalid UTF-8, unpaired surrogates, ``NaN``,
    ``1e400``, trailing commas, leading zeros) is not canonical either. Every
    value that passes is one `parse` would read identically, without error:
    its floats are finite and written shortest-first, its integers within 64
    bits, its nesting within `MAX_DEPTH`. For anything else the caller parses
    ``data`` with `parse`, which says what is wrong.
    """
    if data[:2] != b'{"' or data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        return NOT_CANONICAL  # only objects, in the common case; deep ones are measured by parse
    try:
        value = orjson.loads(data)
        written = orjson.dumps(value)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return NOT_CANONICAL
    return value if written == data else NOT_CANONICAL


def dumps(value: Any) -> bytes:
    """``value`` as canonical JSON bytes; `JsonTextError` if it cannot be stored as read.

    ``value`` is a parsed document (`parse`) or plain Python data (a webhook's
    events): ``Decimal`` is written as its text, dates and datetimes in RFC 3339.
    """
    try:
        out = orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError as exc:
        raise _unstorable(value, str(exc)) from None
    if b"null" in out:
        # orjson writes infinity and NaN as null: a number the parser could not hold.
        path = _non_finite(value, 0)
        if path is not None:
            raise JsonTextError(
                "a number is beyond the range of a 64-bit float (I-JSON, RFC 7493 "
                "section 2.2), or is not a number",
                path=path,
            )
    # An upper bound on the nesting, at C speed; measured only when it could be too deep.
    if out.count(b"[") + out.count(b"{") > MAX_DEPTH and nests_deeper(out, MAX_DEPTH):
        raise JsonTextError(_too_deep(), path=_deepest(value))
    # A copy of its own size (through a memoryview: ``bytes(out)`` is ``out``):
    # orjson leaves its output in a ~4 KiB allocation whatever its length, so a
    # 760-byte event held until it is appended takes 5 times its size (~0.2 us).
    return bytes(memoryview(out))


def from_python(value: Any) -> Any:
    """Plain Python data (a webhook's event) as `parse` reads it from JSON text.

    So that an event a decoder built is read as one posted to ``POST /events``
    is: a NaN or infinite float (which orjson would write as ``null``) is
    refused here with its path, and ``Decimal``, dates and datetimes become text.
    """
    try:
        text = json.dumps(
            value, allow_nan=False, default=_plain, ensure_ascii=False, separators=(",", ":")
        )
    except ValueError:
        path = _non_finite(value, 0)
        raise JsonTextError(
            "a number is NaN or infinite, which JSON cannot hold (RFC 8259 section 6)",
            path=path or "",
        ) from None
    except RecursionError:
        raise JsonTextError(_too_deep()) from None
    return parse(text.encode())


def integral(value: Any) -> Any:
    """``value`` with every number that has no fraction (``5.0``) as an integer (``5``).

    JSON has one kind of number, and JSON Schema calls 5.0 an integer: so does the
    ingress, and the stored form writes it as ``5``, the value that was validated.
    The same object is returned when nothing changes.
    """
    if isinstance(value, float):
        if value.is_integer() and _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return int(value)
        return value
    if isinstance(value, dict):
        changed = None
        for key, item in value.items():
            if type(item) in _UNCHANGED:
                continue  # most values of an event: no call needed to know
            new = integral(item)
            if new is not item:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = None
        for index, item in enumerate(value):
            if type(item) in _UNCHANGED:
                continue
            new = integral(item)
            if new is not item:
                items = items if items is not None else list(value)
                items[index] = new
        return value if items is None else items
    return value


# Exactly these types come back from `integral` as they went in (subclasses are
# looked at, since a float subclass may change).
_UNCHANGED = frozenset({str, int, bool, type(None)})


def loads(data: bytes) -> Any:
    """Plain Python data from canonical bytes (`dumps`), for code that reads values."""
    return orjson.loads(data)


_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson writes, and most readers take (jsondata too)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _non_finite(value: Any, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else ""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list | tuple)
        else ()
    )
    for key, item in items:
        found = _non_finite(item, depth + 1)
        if found is not None:
            return _join(f"[{key}]" if isinstance(key, int) else str(key), found)
    return None


def _unstorable(value: Any, message: str) -> JsonTextError:
    """Why ``value`` could not be written, and where (looked for only when it failed)."""
    found = _find(value, _INT_RANGE, 0)
    if found is not None:
        path, number = found
        return JsonTextError(
            f"the integer {number} is beyond the 64-bit range (I-JSON, RFC 7493 "
            "section 2.2): send it as a string",
            path=path,
        )
    if "ecursion" in message:
        return JsonTextError(_too_deep(), path=_deepest(value))
    return JsonTextError(f"a value cannot be written as JSON: {message}")


def _find(value: Any, bounds: tuple[int, int], depth: int) -> tuple[str, Any] | None:
    """The path and value of the first integer that cannot be written as it was read."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find(item, bounds, depth + 1)
            if found is not None:
                return _join(str(key), found[0]), found[1]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find(item, bounds, depth + 1)
            if found is not None:
                return _join(f"[{index}]", found[0]), found[1]
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not bounds[0] <= value <= bounds[1]
    ):
        return "", value
    return None


def _deepest(value: Any) -> str:
    """Where nesting goes past `MAX_DEPTH`: the first three steps of the path there."""
    found = _too_deep_at(value, 1)
    if found is None:
        return ""
    shown = "".join(found[:3]).lstrip(".")
    return shown + ("..." if len(found) > 3 else "")


def _too_deep_at(value: Any, depth: int) -> list[str] | None:
    if not isinstance(value, dict | list):
        return None
    if depth > MAX_DEPTH:
        return []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        found = _too_deep_at(item, depth + 1)
        if found is not None:
            step = f"[{key}]" if isinstance(key, int) else f".{key}"
            return [step, *found]
    return None


def _join(head: str, tail: str) -> str:
    if not tail:
        return head
    return head + tail if tail.startswith("[") else f"{head}.{tail}"


def _refuse_other_encodings(data: bytes) -> None:
    # JSON text starts with ASCII, so UTF-16 and UTF-32 put a NUL byte in the
    # first two (RFC 4627 section 3 detected the encoding that way), and their
    # byte-order marks start with FE FF or FF FE.
    head = data[:4]
    if head[:2] in (b"\xfe\xff", b"\xff\xfe") or head[:4] == b"\x00\x00\xfe\xff":
        found = "UTF-16 or UTF-32 (it starts with their byte-order mark)"
    elif len(head) >= 2 and (head[0] == 0 or head[1] == 0):
        found = "UTF-16 or UTF-32 (NUL bytes among the first characters)"
    else:
        return
    raise JsonTextError(
        f"the body is {found}: JSON exchanged between systems is UTF-8 "
        "(RFC 8259 section 8.1); send it as UTF-8"
    )


def _error(message: str, data: bytes) -> JsonTextError:
    found = _POSITION.match(message)
    what, line, column = message, 0, 0
    if found:
        what, line, column = found["what"], int(found["line"]), int(found["column"])
    if what.startswith("Detected duplicate key"):
        name = what.removeprefix("Detected duplicate key").strip()
        what = f"duplicate name {name} in an object: names must be unique (I-JSON, RFC 7493)"
    elif what == "recursion limit exceeded":
        what = _too_deep()
    elif what == "number out of range":
        what = "a number is out of range (more than 4,300 digits): send it as a string"
    elif what == "invalid unicode code point":
        what = "the text is not UTF-8"
    elif "surrogate" in what or what == "unexpected end of hex escape":
        what = "a \\u escape is an unpaired UTF-16 surrogate, which is not Unicode text"
    elif what in ("expected value", "invalid number") and _not_json_number(data, line, column):
        what = "NaN and Infinity are not JSON numbers (RFC 8259 section 6)"
    return JsonTextError(what, line, column)


def _not_json_number(data: bytes, line: int, column: int) -> bool:
    if not line:
        return False
    lines = data.split(b"\n", line)
    if len(lines) < line:
        return False
    text = lines[line - 1].decode("utf-8", "replace")
    # jiter points at the character it could not read, or just after a sign.
    start = max(column - 2, 0)
    return bool(_NOT_JSON_NUMBERS.match(text, start) or _NOT_JSON_NUMBERS.match(text, column - 1))


def _too_deep() -> str:
    return f"arrays and objects nest deeper than {MAX_DEPTH} levels"
