"""Finding and masking personal data and secrets.

Personal-data fields are found once per schema from its JSON Schema (fields marked
`platypus.schema.PersonalData`), as path patterns such as ``contact.email`` or
``line_items[*].owner_email``. Those patterns mask structured data; the concrete
values found in one event (`personal_values`) are also scrubbed from free text
(vendor error messages, stack traces, log lines, vendors' answers), since a
vendor may echo a value back anywhere, and rarely as it was sent.

How text is scrubbed (`Scrubber`, `scrub_text`)
------------------------------------------------

The text is read as a vendor may have changed it, then searched for each value:

* **case and accents** do not matter (``xavier.qw@corp-pii.example`` is
  ``Xavier.Qw@Corp-Pii.example``; ``Jose`` is ``José``);
* **escapes are read**: JSON (``\\u0040``, ``\\"``, doubled backslashes of JSON
  inside JSON), URL (``%40``, ``%2540``, and ``+`` for a space), HTML and XML
  entities (``&#64;``, ``&#x40;``, ``&commat;``); base64 is not;
* **cut values**: an excerpt cut in the middle of a value leaves a fragment. A
  start or an end of a value of 6 characters or more is masked when it is at
  least 8 characters long, or at least 4 where the cut shows: at the start or end
  of the text, next to an ellipsis (``...``, ``…``, ``[truncated``) or a quote.

What is masked is the text as written (the escapes with it), replaced by `MASK`.

**Short values** would otherwise mask half of every message. One character is
never scrubbed (it identifies no one). Two characters (``Li``, ``Ng``) are masked
only as a whole word written exactly so: ``Ng`` but not ``ng`` or ``Ngozi``.
Three to five characters (``Ada``, ``Quinn``) are masked only as a whole word, in
any case: ``ada`` but not ``Adams`` or ``Canada``. A whole word is one not
preceded or followed by a letter or a digit. Values of 6 characters or more are
masked wherever they appear.

**Cost.** The processor finds an event's values only when a line is written, a
dead letter is built or a final step's answer is stored (`scrub_data`, which
rules out the usual answer with a probe per value before building anything).
Finding them follows the schema's paths (not every node of the event), and
scrubbing is one pass over the text plus a ``str.find`` per value, with no
regular expression built per value.
"""

from __future__ import annotations

import codecs
import functools
import html
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from platypus.schema import PERSONAL_DATA_KEY

__all__ = [
    "MASK",
    "SECRET_WORDS",
    "Scrubber",
    "is_secret_name",
    "mask_data",
    "personal_paths",
    "personal_values",
    "scrub_data",
    "scrub_text",
    "scrubber",
]

MASK = "***"

SECRET_WORDS = (
    "authorization",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "credential",
    "private_key",
)
"""Words that make a name (a log key, a header) hold a credential: its value is masked."""

_SECRET_NAMES = frozenset({"cookie", "set-cookie"})


def is_secret_name(name: str) -> bool:
    """Whether a key or header called ``name`` holds a credential.

    Names containing one of `SECRET_WORDS`, and the ``Cookie`` and ``Set-Cookie``
    headers themselves (not ``Cookie-Policy``).
    """
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in SECRET_WORDS)


_INDEX = re.compile(r"\[\d+\]")


def personal_paths(model: type[BaseModel]) -> frozenset[str]:
    """Path patterns of every personal-data field in ``model`` (lists as ``[*]``)."""
    schema = model.model_json_schema()
    defs: Mapping[str, Any] = schema.get("$defs", {})
    found: set[str] = set()
    _walk_schema(schema, "", defs, found, depth=0)
    return frozenset(found)


def _walk_schema(
    node: Mapping[str, Any], path: str, defs: Mapping[str, Any], out: set[str], depth: int
) -> None:
    if depth > 32:  # recursive models: deep enough for any real payload
        return
    if "$ref" in node:
        target = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        _walk_schema(merged, path, defs, out, depth + 1)
        return
    if node.get(PERSONAL_DATA_KEY):
        out.add(path)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for option in node.get(key, []):
            _walk_schema(option, path, defs, out, depth + 1)
    for name, sub in node.get("properties", {}).items():
        _walk_schema(sub, f"{path}.{name}" if path else name, defs, out, depth + 1)
    items = node.get("items")
    if isinstance(items, Mapping):
        _walk_schema(items, f"{path}[*]", defs, out, depth + 1)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        _walk_schema(extra, f"{path}.*" if path else "*", defs, out, depth + 1)


def normalize_path(path: str) -> str:
    """``line_items[3].email`` -> ``line_items[*].email``, to compare with patterns."""
    return _INDEX.sub("[*]", path)


def is_personal(path: str, patterns: Iterable[str]) -> bool:
    """Whether a concrete path is, or is inside, a personal-data field."""
    norm = normalize_path(path)
    for pattern in patterns:
        if norm == pattern or norm.startswith(pattern + ".") or norm.startswith(pattern + "["):
            return True
        # ``emails.*`` (values of a dict) matches any key: ``emails.work``.
        if "*" in pattern.replace("[*]", "") and _wildcard(pattern).match(norm):
            return True
    return False


def _wildcard(pattern: str) -> re.Pattern[str]:
    """A regex for a pattern whose ``*`` segments stand for any one dict key."""
    parts = [
        r"[^.\[]+" + re.escape(part[1:]) if part.startswith("*") else re.escape(part)
        for part in pattern.split(".")
    ]
    return re.compile(r"\.".join(parts) + r"(?:$|[.\[])")


def mask_data(data: Any, patterns: Iterable[str]) -> Any:
    """A copy of ``data`` with every personal-data value replaced by `MASK`."""
    pats = frozenset(patterns)
    if not pats:
        return data
    return _mask(data, "", pats)


def _mask(value: Any, path: str, patterns: frozenset[str]) -> Any:
    if path and is_personal(path, patterns):
        return None if value is None else MASK
    if isinstance(value, Mapping):
        return {k: _mask(v, f"{path}.{k}" if path else str(k), patterns) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, f"{path}[{i}]", patterns) for i, v in enumerate(value)]
    return value


def personal_values(data: Any, patterns: Iterable[str]) -> set[str]:
    """The concrete personal-data values in ``data``, as strings, for scrubbing text.

    Walks only along the patterns' paths; everything under a personal field counts.
    Values of one character, None and booleans are left out; numbers are text.
    """
    found: set[str] = set()
    for pattern in patterns:
        _follow(data, _steps(pattern), 0, found)
    return found


_ITEMS = object()  # [*]: every item of a list
_ANY_KEY = object()  # *: every value of a mapping


@functools.lru_cache(maxsize=4096)
def _steps(pattern: str) -> tuple[Any, ...]:
    """``lines[*].buyer.*`` -> ("lines", _ITEMS, "buyer", _ANY_KEY)."""
    steps: list[Any] = []
    for part in pattern.split(".") if pattern else []:
        name, _, rest = part.partition("[")
        steps.append(_ANY_KEY if name == "*" else name)
        steps.extend(_ITEMS for _ in range(rest.count("*]")))
    return tuple(steps)


def _follow(node: Any, steps: tuple[Any, ...], index: int, out: set[str]) -> None:
    if index == len(steps):
        _leaves(node, out)
        return
    step = steps[index]
    if step is _ITEMS:
        if isinstance(node, list):
            for item in node:
                _follow(item, steps, index + 1, out)
    elif isinstance(node, Mapping):
        if step is _ANY_KEY:
            for value in node.values():
                _follow(value, steps, index + 1, out)
        elif step in node:
            _follow(node[step], steps, index + 1, out)


def _leaves(value: Any, out: set[str]) -> None:
    if isinstance(value, Mapping):
        for item in value.values():
            _leaves(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _leaves(item, out)
    elif value is not None and not isinstance(value, bool):
        text = str(value).strip()
        if len(text) >= 2:
            out.add(text)


# -- scrubbing free text -----------------------------------------------------------

WHOLE_WORD_BELOW = 6
"""Values shorter than this many characters are masked only as whole words."""
FRAGMENT_AT_CUT = 4
"""Shortest start or end of a value masked where a cut shows (text edge, ellipsis, quote)."""
FRAGMENT_ANYWHERE = 8
"""Shortest start or end of a value masked wherever it appears."""

_CUT_AFTER = ("...", "\u2026", "[truncated", "(truncated", "<truncated", '"', "'")
_CUT_BEFORE = ("...", "\u2026", '"', "'")

# Anything that may stand for other characters: JSON escapes (any number of
# backslashes, for JSON inside JSON), \xHH, runs of URL escapes (%XX, %25XX), and
# HTML/XML character references. Texts without a backslash, % or & skip this.
_HINT = re.compile(r"[\\%&]")
_ESCAPE = re.compile(
    r"(?P<pair>\\+u([dD][89abAB][0-9a-fA-F]{2})\\+u([dD][c-fC-F][0-9a-fA-F]{2}))"
    r"|(?P<u>\\+u([0-9a-fA-F]{4}))"
    r"|(?P<x>\\+x([0-9a-fA-F]{2}))"
    r"|(?P<short>\\+([\"\\/bfnrt]))"
    r"|(?P<url>(?:%(?:25)*[0-9a-fA-F]{2})+)"
    r"|(?P<ent>&(?:#[0-9]{1,7};?|#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};))"
)
_URL_BYTE = re.compile(r"%(?:25)*([0-9a-fA-F]{2})")
_SHORT = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SPACES = str.maketrans(dict.fromkeys("\t\n\r\x0c\x0b", " "))
_OTHER_SPACES = re.compile(r"[\t\n\r\x0c\x0b]")


@functools.lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """One character as compared: no accents, case-folded, any space a space."""
    if char.isascii():
        return " " if char.isspace() else char.lower()
    if char.isspace():
        return " "
    base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
    return base.casefold()


@functools.lru_cache(maxsize=8192)
def _plain_char(char: str) -> str:
    """One character as compared exactly (two-character values): accents off only."""
    if char.isascii():
        return " " if char.isspace() else char
    return "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))


class _Reading:
    """A text as compared: each compared character knows the span of text it came from."""

    __slots__ = ("exact", "exact_map", "folded", "folded_map", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        if text.isascii() and not _HINT.search(text):
            # Most texts: one compared character per character, found by position.
            self.exact = text.translate(_SPACES)
            self.folded = self.exact.lower()
            self.exact_map: list[tuple[int, int]] | None = None
            self.folded_map: list[tuple[int, int]] | None = None
            return
        folded: list[str] = []
        exact: list[str] = []
        folded_map: list[tuple[int, int]] = []
        exact_map: list[tuple[int, int]] = []

        def emit(chars: str, start: int, end: int) -> None:
            for char in chars:
                for out, where, fold in (
                    (folded, folded_map, _fold_char),
                    (exact, exact_map, _plain_char),
                ):
                    shown = fold(char)
                    if shown:
                        out.append(shown)
                        where.extend([(start, end)] * len(shown))
                    elif where:  # a combining accent: part of the character before it
                        where[-1] = (where[-1][0], end)

        position = 0
        for match in _ESCAPE.finditer(text):
            for offset in range(position, match.start()):
                emit(text[offset], offset, offset + 1)
            for chars, start, end in _decode(match):
                emit(chars, start, end)
            position = match.end()
        for offset in range(position, len(text)):
            emit(text[offset], offset, offset + 1)
        self.folded, self.folded_map = "".join(folded), folded_map
        self.exact, self.exact_map = "".join(exact), exact_map

    def span(self, start: int, end: int, *, exact: bool = False) -> tuple[int, int]:
        """The text's span of compared characters ``start:end``."""
        where = self.exact_map if exact else self.folded_map
        if where is None:
            return start, end
        return where[start][0], where[end - 1][1]


def _decode(match: re.Match[str]) -> list[tuple[str, int, int]]:
    """What an escape stands for, as (characters, start, end) in the text."""
    start, end = match.span()
    kind = match.lastgroup
    if kind == "pair":
        high, low = int(match.group(2), 16), int(match.group(3), 16)
        return [(chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), start, end)]
    if kind == "u":
        code = int(match.group(5), 16)
        return [("" if 0xD800 <= code < 0xE000 else chr(code), start, end)]
    if kind == "x":
        return [(chr(int(match.group(7), 16)), start, end)]
    if kind == "short":
        char = match.group(9)
        return [(_SHORT.get(char, char), start, end)]
    if kind == "url":
        # Byte by byte, so that each character maps to the escapes of its own bytes.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out: list[tuple[str, int, int]] = []
        first = start
        for byte in _URL_BYTE.finditer(match.group(), 0):
            chars = decoder.decode(bytes([int(byte.group(1), 16)]))
            if chars:
                out.append((chars, first, start + byte.end()))
                first = start + byte.end()
        return out
    raw = match.group()
    decoded = html.unescape(raw)
    return [(decoded if decoded != raw else raw, start, end)]


@dataclass(frozen=True, slots=True)
class _Needle:
    """One value as searched for."""

    folded: str
    exact: str
    whole_word: bool
    exact_case: bool
    fragments: bool
    head: str
    tail: str


def _variants(value: str) -> set[str]:
    variants = {value}
    if " " in value:
        variants.add(value.replace(" ", "+"))  # a space as a form-encoded URL writes it
    return variants


def _needles(value: str) -> list[_Needle]:
    out = []
    for variant in _variants(value):
        if variant.isascii():
            exact = variant.translate(_SPACES)
            folded = exact.lower()
        else:
            folded = "".join(_fold_char(c) for c in variant)
            exact = "".join(_plain_char(c) for c in variant)
        size = len(value)
        out.append(
            _Needle(
                folded=folded,
                exact=exact,
                whole_word=size < WHOLE_WORD_BELOW,
                exact_case=size < 3,
                fragments=size >= WHOLE_WORD_BELOW and len(folded) > FRAGMENT_AT_CUT,
                head=folded[:FRAGMENT_AT_CUT],
                tail=folded[-FRAGMENT_AT_CUT:],
            )
        )
    return out


class Scrubber:
    """Masks a set of values (one event's personal data) in text and in data.

    See the module docstring for what counts as an occurrence. Build one per set
    of values (`scrubber` caches them) and use it for every text of that event.
    """

    def __init__(self, values: Iterable[str]) -> None:
        self.values = frozenset(s for v in values if len(s := v.strip()) >= 2)
        # What every occurrence, whole or cut, contains: a cheap test that rules out
        # most texts. The needles themselves are made on the first text that passes.
        self._probes = [
            (folded[:FRAGMENT_AT_CUT], folded[-FRAGMENT_AT_CUT:])
            for v in self.values
            for variant in _variants(v)
            for folded in (
                variant.lower().translate(_SPACES)
                if variant.isascii()
                else "".join(map(_fold_char, variant)),
            )
        ]
        self._needles: list[_Needle] | None = None

    def __bool__(self) -> bool:
        return bool(self.values)

    def _all_needles(self) -> list[_Needle]:
        if self._needles is None:
            self._needles = [n for v in self.values for n in _needles(v)]
        return self._needles

    def text(self, text: str) -> str:
        """``text`` with every occurrence of a value (changed or cut) replaced by `MASK`."""
        if not self.values or len(text) < 2:
            return text
        if text.isascii() and not _HINT.search(text):
            # Most texts hold no value at all: ruled out without reading them closely.
            low = text.lower()
            if _OTHER_SPACES.search(low):
                low = low.translate(_SPACES)
            if not any(head in low or tail in low for head, tail in self._probes):
                return text
        reading = _Reading(text)
        spans: list[tuple[int, int]] = []
        for needle in self._all_needles():
            spans.extend(_occurrences(reading, needle))
        if not spans:
            return text
        spans.sort()
        merged: list[tuple[int, int]] = []
        for start, stop in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
            else:
                merged.append((start, stop))
        out: list[str] = []
        position = 0
        for start, stop in merged:
            out.append(text[position:start])
            out.append(MASK)
            position = stop
        out.append(text[position:])
        return "".join(out)

    def data(self, value: Any) -> Any:
        """A copy of ``value`` (JSON-like) with values masked in every string and key.

        A number equal to a value (a salary echoed back) becomes `MASK` too.
        """
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                (self.text(k) if isinstance(k, str) else k): self.data(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return MASK if str(value) in self.values else value
        return value


def _occurrences(reading: _Reading, needle: _Needle) -> list[tuple[int, int]]:
    if needle.exact_case:
        if needle.exact not in reading.exact:
            return []
        return _whole(reading, reading.exact, needle.exact, exact=True)
    text = reading.folded
    if needle.whole_word:
        return _whole(reading, text, needle.folded, exact=False) if needle.folded in text else []
    found: list[tuple[int, int]] = []
    if needle.folded in text:
        size = len(needle.folded)
        found = [reading.span(i, i + size) for i in _finds(text, needle.folded)]
    if needle.fragments and (needle.head in text or needle.tail in text):
        found.extend(_fragments(reading, needle.folded))
    return found


def _finds(haystack: str, needle: str) -> Iterable[int]:
    index = haystack.find(needle)
    while index >= 0:
        yield index
        index = haystack.find(needle, index + 1)


def _word_char(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index].isalnum()


def _whole(reading: _Reading, haystack: str, needle: str, *, exact: bool) -> list[tuple[int, int]]:
    size = len(needle)
    return [
        reading.span(i, i + size, exact=exact)
        for i in _finds(haystack, needle)
        if not (needle[0].isalnum() and _word_char(haystack, i - 1))
        and not (needle[-1].isalnum() and _word_char(haystack, i + size))
    ]


def _fragments(reading: _Reading, needle: str) -> list[tuple[int, int]]:
    """Starts and ends of ``needle`` cut short (see the module docstring)."""
    text, size = reading.folded, len(needle)
    found: list[tuple[int, int]] = []
    for start in _finds(text, needle[:FRAGMENT_AT_CUT]):
        if text.startswith(needle, start):
            continue  # whole: found already
        # The longest start of the needle here, by halving (each test runs in C).
        low, high = FRAGMENT_AT_CUT, size - 1
        while low < high:
            middle = (low + high + 1) // 2
            if text.startswith(needle[:middle], start):
                low = middle
            else:
                high = middle - 1
        if low < FRAGMENT_ANYWHERE:
            # A short start counts only as a word's start, and only where a cut shows.
            rest = text[start + low :]
            if (needle[0].isalnum() and _word_char(text, start - 1)) or not (
                not rest.strip() or rest.lstrip().startswith(_CUT_AFTER)
            ):
                continue
        found.append(reading.span(start, start + low))
    for start in _finds(text, needle[-FRAGMENT_AT_CUT:]):
        stop = start + FRAGMENT_AT_CUT
        if text.endswith(needle, 0, stop):
            continue
        low, high = FRAGMENT_AT_CUT, size - 1
        while low < high:
            middle = (low + high + 1) // 2
            if text.endswith(needle[-middle:], 0, stop):
                low = middle
            else:
                high = middle - 1
        if low < FRAGMENT_ANYWHERE:
            before = text[: stop - low].rstrip()
            if (needle[-1].isalnum() and _word_char(text, stop)) or not (
                not before or before.endswith(_CUT_BEFORE)
            ):
                continue
        found.append(reading.span(stop - low, stop))
    return found


@functools.lru_cache(maxsize=256)
def _cached(values: frozenset[str]) -> Scrubber:
    return Scrubber(values)


def scrubber(values: Iterable[str] | Scrubber) -> Scrubber:
    """The `Scrubber` of ``values`` (cached: an event's texts share one)."""
    if isinstance(values, Scrubber):
        return values
    return _cached(frozenset(values))


def scrub_text(text: str, values: Iterable[str] | Scrubber) -> str:
    """Replace every occurrence of any of ``values`` in ``text`` by `MASK`.

    Occurrences include changed and cut ones: see the module docstring.
    """
    return scrubber(values).text(text)


def scrub_data(data: Any, values: Iterable[str] | Scrubber) -> Any:
    """A copy of JSON-like ``data`` with ``values`` masked in every string (`Scrubber.data`).

    Runs for every delivered event with personal data (its vendor's answer is
    stored), so the usual answer (ids, statuses) is ruled out first without
    building a `Scrubber`; ``data`` itself is returned then.
    """
    if isinstance(values, Scrubber):
        return values.data(data)
    texts: list[str] = []
    if _plain_texts(data, texts) and _none_in("\x00".join(texts).lower(), values):
        return data
    return scrubber(values).data(data)


def _none_in(low: str, values: Iterable[str]) -> bool:
    """Whether no start or end of any of ``values`` (all ASCII) is in ``low`` for sure."""
    if _OTHER_SPACES.search(low):
        low = low.translate(_SPACES)
    for value in values:
        if not value.isascii():
            return False
        value = value.strip().lower()
        if len(value) < 2:
            continue
        if value[:FRAGMENT_AT_CUT] in low or value[-FRAGMENT_AT_CUT:] in low:
            return False
        if " " in value and value.replace(" ", "+")[:FRAGMENT_AT_CUT] in low:
            return False
    return True


def _plain_texts(value: Any, out: list[str]) -> bool:
    """Collect the strings (and numbers) of ``value``; False if one needs a close reading."""
    if isinstance(value, str):
        out.append(value)
        return value.isascii() and _HINT.search(value) is None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not (_plain_texts(key, out) and _plain_texts(item, out)):
                return False
        return True
    if isinstance(value, list | tuple):
        return all(_plain_texts(item, out) for item in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        out.append(str(value))
    return True
