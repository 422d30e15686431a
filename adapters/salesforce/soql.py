"""SOQL with ``:name`` binds: values from an event are escaped, never pasted in.

A lookup step writes its query once, in the flow, and takes the values from the
event, the way Apex bind variables do::

    SELECT Id, Name FROM Account WHERE External_Id__c = :customer_id LIMIT 1

`bind` replaces each ``:name`` outside a string literal with the payload's value
as a SOQL literal: strings quoted and escaped, numbers, ``true``/``false``,
``null``, and a list as ``('a', 'b')`` for ``IN``. So a value such as
``x' OR Name != '`` stays one string and cannot change the query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["bind", "bind_names", "literal"]

_BIND = re.compile(r"(?<![A-Za-z0-9_:]):([A-Za-z_][A-Za-z0-9_]*)")
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def literal(value: Any) -> str:
    """``value`` as a SOQL literal; ValueError for a type SOQL has no literal for."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no SOQL literal")
        return repr(value)
    if isinstance(value, str):
        return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("an empty list cannot be bound (IN () is not valid SOQL)")
        return "(" + ", ".join(literal(item) for item in value) + ")"
    raise ValueError(f"a {type(value).__name__} has no SOQL literal")


def bind(soql: str, values: Mapping[str, Any]) -> str:
    """``soql`` with every ``:name`` outside string literals replaced by ``values[name]``.

    A name missing from ``values``, or a value with no SOQL literal, is a ValueError
    that names it.
    """
    out: list[str] = []
    for index, part in enumerate(_split_strings(soql)):
        if index % 2:  # a string literal, kept as written
            out.append(part)
            continue

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                known = ", ".join(sorted(values)) or "(none)"
                raise ValueError(f"bind :{name} has no value in the payload (it has: {known})")
            try:
                return literal(values[name])
            except ValueError as exc:
                raise ValueError(f"bind :{name}: {exc}") from None

        out.append(_BIND.sub(substitute, part))
    return "".join(out)


def bind_names(soql: str) -> list[str]:
    """The names ``soql`` binds (``:name`` outside string literals), each once, in order.

    `bind` needs a value for each; ``platypus flows lint`` checks the payload maps them.
    """
    found: list[str] = []
    for part in _split_strings(soql)[::2]:  # the code between string literals
        for name in _BIND.findall(part):
            if name not in found:
                found.append(name)
    return found


def _split_strings(soql: str) -> list[str]:
    """Alternating [code, literal, code, literal, ..., code] pieces of ``soql``."""
    pieces: list[str] = []
    start = 0
    i = 0
    while i < len(soql):
        if soql[i] == "'":
            pieces.append(soql[start:i])
            j = i + 1
            while j < len(soql) and soql[j] != "'":
                j += 2 if soql[j] == "\\" else 1
            pieces.append(soql[i : j + 1])
            start = i = j + 1
        else:
            i += 1
    pieces.append(soql[start:])
    return pieces
