"""YAML to plain values, remembering where every node came from.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two equal
keys. Flow files need both: a pydantic error ``loc`` such as ``("steps", 1, "to")``
must become ``flows/billing.yaml:14:9``, and a duplicated ``payload:`` must be an
error rather than half a flow vanishing. So the document is composed into nodes
(which carry marks) and converted here, recording the position of each value and
each mapping key by its key path.

Only the safe types are built: mappings, sequences and the scalars `SafeLoader`
knows. Anchors, aliases and ``<<`` merge keys work. Mapping keys are kept as the
text written in the file (``on:`` is the key ``"on"``, not ``True``), because a
flow is a JSON-like document whose keys are names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from platypus.exceptions import FieldError, SourceLocation
from platypus.validation import format_loc

__all__ = ["Locations", "ParsedYaml", "Problem", "YamlPath", "parse_yaml"]

YamlPath = tuple[str | int, ...]
"""Keys and list indices from the document root to a node, like a pydantic ``loc``."""

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

# Aliases let a small file expand into a huge value ("billion laughs"); a flow
# has a few hundred nodes at most.
_MAX_NODES = 100_000


@dataclass(frozen=True, slots=True)
class Problem:
    """A finding about a file: a stable ``code`` for tools and the error itself."""

    code: str
    error: FieldError


@dataclass(frozen=True, slots=True)
class Locations:
    """Where each node of a YAML document starts (1-based line and column), by path.

    ``values`` holds the position of every value (the root is ``()``); ``keys``
    the position of the key of every mapping entry.
    """

    file: str
    values: Mapping[YamlPath, tuple[int, int]] = field(default_factory=dict)
    keys: Mapping[YamlPath, tuple[int, int]] = field(default_factory=dict)

    def __contains__(self, path: object) -> bool:
        return path in self.values

    def deepest(self, path: YamlPath) -> YamlPath:
        """The longest prefix of ``path`` that exists in the document."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.values:
                return path[:end]
        return ()

    def value(self, path: YamlPath) -> SourceLocation:
        """Where the value at ``path`` starts, or its deepest existing parent."""
        line, column = self.values.get(self.deepest(path), (1, 1))
        return SourceLocation(self.file, line, column)

    def key(self, path: YamlPath) -> SourceLocation:
        """Where the key of the entry at ``path`` is written; else like `value`."""
        found = self.keys.get(path)
        if found is None:
            return self.value(path)
        return SourceLocation(self.file, *found)


@dataclass(frozen=True, slots=True)
class ParsedYaml:
    """A document as plain values, its node positions, and what was wrong with it.

    ``value`` is ``None`` when the text is not YAML at all (a ``yaml-syntax``
    problem) or the document is empty.
    """

    value: Any
    locations: Locations
    problems: list[Problem]


def parse_yaml(text: str, file: str) -> ParsedYaml:
    """Parse one YAML document in ``text``, read from ``file`` (used in locations).

    Syntax errors, duplicate keys and unsupported constructs are returned as
    problems with their line and column, never raised.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return ParsedYaml(None, Locations(file, {(): (1, 1)}), [])
        builder = _Builder(loader, file)
        value = builder.build(root, ())
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(None, Locations(file), [_syntax_problem(exc, file, text)])
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML marks all it raises
        error = FieldError(path="", message=f"invalid YAML: {exc}")
        return ParsedYaml(None, Locations(file), [Problem("yaml-syntax", error)])
    finally:
        loader.dispose()
    return ParsedYaml(value, Locations(file, builder.values, builder.keys), builder.problems)


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str, text: str = "") -> Problem:
    mark = exc.problem_mark or exc.context_mark
    location = SourceLocation(file, mark.line + 1, mark.column + 1) if mark else None
    parts = [p for p in (exc.context, exc.problem) if p]
    reason = ", ".join(parts) if parts else "cannot parse"
    message = "invalid YAML: " + reason
    if exc.context_mark is not None and exc.problem_mark is not None and exc.context:
        message += f" (the {exc.context.split()[-1]} starts at line {exc.context_mark.line + 1})"
    # A quote left open makes YAML read on, often to the end of the file: the
    # mistake is where the quote opens, so that is where it is reported.
    upto = mark.line + 1 if mark else len(text.splitlines())
    unclosed = _unclosed_quote(text, upto)
    if unclosed is not None and mark is not None:
        line, column, quote, fixed = unclosed
        location = SourceLocation(file, line, column)
        message = (
            f"unclosed {quote} quote: the string that starts here does not end on its line, "
            f"so YAML reads on and fails at line {mark.line + 1} ({reason}); close it: "
            f"{fixed}"
        )
    return Problem("yaml-syntax", FieldError(path="", message=message, location=location))


_BLOCK_SCALAR = re.compile(r":\s+[|>][-+0-9]*\s*(#.*)?$")
_QUOTED_VALUE = re.compile(r"""^(\s*(?:-\s+)?(?:[^\s'"#{}\[\],][^:#]*:\s+)?)(["'])(.*)$""")


def _unclosed_quote(text: str, upto: int) -> tuple[int, int, str, str] | None:
    """(line, column, quote, line as fixed) of the first value whose quote is not closed
    on its own line, up to line ``upto``; None if every quoted value closes."""
    block: int | None = None  # indent of the key of a block scalar (| or >) being read
    for number, line in enumerate(text.splitlines()[:upto], start=1):
        indent = len(line) - len(line.lstrip())
        if block is not None and (not line.strip() or indent > block):
            continue  # text of a block scalar: quotes there are just characters
        block = indent if _BLOCK_SCALAR.search(line) else None
        found = _QUOTED_VALUE.match(line)
        if found is None:
            continue
        quote, rest = found.group(2), found.group(3)
        if _closes(rest, quote):
            continue
        fixed = line.strip().rstrip() + quote
        return number, len(found.group(1)) + 1, quote, fixed
    return None


def _closes(rest: str, quote: str) -> bool:
    index = 0
    while index < len(rest):
        char = rest[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and rest[index + 1 : index + 2] == "'":
                index += 2  # '' is a quote inside a single-quoted string
                continue
            return True
        index += 1
    return False


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.values: dict[YamlPath, tuple[int, int]] = {}
        self.keys: dict[YamlPath, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.active: set[int] = set()  # nodes being built: an alias to one is recursive

    def problem(self, code: str, path: YamlPath, node: Node, message: str) -> None:
        mark = node.start_mark
        location = SourceLocation(self.file, mark.line + 1, mark.column + 1)
        self.problems.append(
            Problem(code, FieldError(format_loc(path), message, location=location))
        )

    def build(self, node: Node, path: YamlPath) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            if self.count == _MAX_NODES + 1:
                self.problem(
                    "yaml-unsupported", path, node, "the document expands to too many nodes"
                )
            return None
        self.values.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if id(node) in self.active:
            self.problem("yaml-unsupported", path, node, "an alias refers to a node containing it")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                return self.sequence(node, path)
        finally:
            self.active.discard(id(node))
        return None  # pragma: no cover - the composer makes only these three kinds

    def scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.problem("yaml-unsupported", path, node, f"unsupported value: {exc.problem or exc}")
            return None

    def sequence(self, node: SequenceNode, path: YamlPath) -> list[Any]:
        if node.tag != _SEQ_TAG:
            self.problem("yaml-unsupported", path, node, f"unsupported tag {node.tag!r}")
        return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]

    def mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            self.problem("yaml-unsupported", path, node, f"unsupported tag {node.tag!r}")
        out: dict[str, Any] = {}
        seen: dict[str, Node] = {}
        for key_node, value_node, merged in self.pairs(node, path):
            key = self.key_text(key_node, path)
            if key is None:
                continue
            entry = (*path, key)
            if key in out:
                if not merged and key in seen:
                    first = seen[key].start_mark.line + 1
                    self.problem(
                        "duplicate-key",
                        entry,
                        key_node,
                        f"duplicate key {key!r} (first at line {first}): YAML would keep "
                        "only the last one; remove or rename one of them",
                    )
                # The later entry wins, as in YAML: forget where the earlier one was.
                for stale in [p for p in self.values if p[: len(entry)] == entry]:
                    del self.values[stale]
                for stale in [p for p in self.keys if p[: len(entry)] == entry]:
                    del self.keys[stale]
            if not merged:
                seen[key] = key_node
            self.keys[entry] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, entry)
        return out

    def pairs(self, node: MappingNode, path: YamlPath) -> Iterator[tuple[Node, Node, bool]]:
        """Entries of ``node`` and whether each was merged in by ``<<``.

        Merged entries come first so that the mapping's own keys override them;
        of several merged mappings the first wins, as in YAML.
        """
        own = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node, False))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in reversed(sources):
                if not isinstance(source, MappingNode):
                    self.problem(
                        "yaml-unsupported", path, source, "a '<<' merge takes a mapping or a list"
                    )
                    continue
                for key_node, inner, _ in self.pairs(source, path):
                    yield key_node, inner, True
        yield from own

    def key_text(self, node: Node, path: YamlPath) -> str | None:
        if isinstance(node, ScalarNode):
            return str(node.value)
        self.problem("yaml-unsupported", path, node, "a mapping key must be a plain scalar")
        return None
