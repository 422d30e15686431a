"""The expression language of flows: JMESPath, evaluated safely and checked statically.

Mappings and conditions are JMESPath expressions (https://jmespath.org): no Python
is ever evaluated. An expression reads the event as it is on the wire::

    data.opportunity_id                  a field of the event's data
    subject                              an envelope attribute
    data.line_items[*].product_code      a list projection
    steps.create_account.id              the result of an earlier step
    'EUR'                                a string constant (raw literal)

`check` walks an expression against the JSON Schema of what it reads, so a flow
that reads a field the event does not have is refused before it runs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath import exceptions as jmes_errors
from jmespath.visitor import TreeInterpreter

from platypus.exceptions import MappingError

__all__ = ["Expression", "ExpressionIssue", "check", "compile_expression", "truthy"]

Schema = Mapping[str, Any] | None  # None: any value, nothing to check against

_OPTIONS = jmespath.Options(dict_cls=dict)
# One interpreter for every search: it keeps no state between calls, and building
# one per call (what ``ParsedResult.search`` does) costs more than most searches.
_INTERPRETER = TreeInterpreter(_OPTIONS)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression."""

    source: str
    _parsed: Any = field(repr=False, compare=False)
    # Most mappings are plain paths (``data.opportunity_id``): those are read with
    # dict lookups, with JMESPath's semantics (null when a step is not an object).
    _path: tuple[str, ...] | None = field(default=None, repr=False, compare=False)
    # Other common shapes (projections, multi-selects, literals) compiled to Python
    # functions with the interpreter's exact semantics; the rest is interpreted.
    _compiled: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def field_path(self) -> tuple[str, ...] | None:
        """The field names of a plain path, ``data.customer.email`` -> (data, customer, email).

        None for any other expression (a projection, an index, a function call, a
        literal): static checks that reason about one field read ask this.
        """
        return self._path

    @property
    def ast(self) -> Mapping[str, Any]:
        """The JMESPath syntax tree, for static checks."""
        tree: Mapping[str, Any] = self._parsed.parsed
        return tree

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against ``context``; a type error becomes `MappingError`."""
        if self._path is not None:
            value: Any = context
            for key in self._path:
                if not isinstance(value, dict):
                    return None
                value = value.get(key)
            return value
        try:
            if self._compiled is not None:
                return self._compiled(context)
            return _INTERPRETER.visit(self._parsed.parsed, context)
        except jmes_errors.JMESPathError as exc:
            raise MappingError(f"expression {self.source!r} failed: {exc}") from None
        except TypeError as exc:
            # jmespath orders any two "comparable" values, so a string against a
            # number reaches Python's own comparison: name the expression instead.
            raise MappingError(
                f"expression {self.source!r} failed: {exc}; compare values of one type "
                "(quote a string constant as 'text', write a number as `10`)"
            ) from None


def compile_expression(source: str) -> Expression:
    """Parse ``source``; a syntax error raises `MappingError` naming the column."""
    try:
        parsed = jmespath.compile(source)
    except jmes_errors.LexerError as exc:
        # The lexer's own reason ("Unclosed ' delimiter") is in .message; .msg is generic.
        reason = str(getattr(exc, "message", "") or exc.msg)
        raise MappingError(
            f"invalid expression {source!r} at column {exc.lex_position + 1}: {reason}"
            f"{_syntax_hint(source, reason, exc.lex_position)}"
        ) from None
    except jmes_errors.ParseError as exc:
        hint = _syntax_hint(source, str(exc.msg), exc.lex_position)
        raise MappingError(
            f"invalid expression {source!r} at column {exc.lex_position + 1}: "
            f"{exc.msg} near {exc.token_value!r}{hint}"
        ) from None
    except jmes_errors.EmptyExpressionError:
        raise MappingError("invalid expression '': an expression cannot be empty") from None
    path = _field_path(parsed.parsed)
    compiled = None if path is not None else _compile(parsed.parsed)
    return Expression(source, parsed, path, compiled)


_DASHED = re.compile(r"(?<![\w\"'`-])([A-Za-z_]\w*(?:-\w+)+)")
_BARE_WORDS = re.compile(r"(==|!=)\s*([A-Za-z][\w]*(?: [A-Za-z][\w]*)+)\s*$")
_CLOSERS = {"Unclosed ' delimiter": "'", 'Unclosed " delimiter': '"', "Unclosed ` delimiter": "`"}


def _syntax_hint(source: str, reason: str, position: int) -> str:
    """What to write instead, for the usual quoting mistakes."""
    closer = _CLOSERS.get(reason)
    if closer == '"' and source[position : position + 1] == '"':
        # "text" is a field name in JMESPath: text is 'raw'.
        fixed = source[:position] + "'" + source[position + 1 :] + "'"
        return (
            "; text is written as a 'raw string' in JMESPath (\"...\" is a field name), "
            f"e.g. {fixed}"
        )
    if closer is not None:
        return (
            f"; close the {closer} (JMESPath strings are 'raw strings' or `backtick` "
            f"literals), e.g. {source + closer}"
        )
    dashed = _DASHED.search(source)
    if dashed is not None and "-" in reason + source[dashed.start() :]:
        name = dashed.group(1)
        fixed = source[: dashed.start()] + f'"{name}"' + source[dashed.end() :]
        what = "a step name" if source[: dashed.start()].endswith("steps.") else "a name"
        return f"; {what} with a dash must be quoted with double quotes: {fixed}"
    words = _BARE_WORDS.search(source)
    if words is not None:
        text = words.group(2)
        fixed = source[: words.start(2)] + f"'{text}'" + source[words.end(2) :]
        return f"; a constant needs quotes, as a 'raw string': {fixed.rstrip()}"
    return ""


Compiled = Callable[[Any], Any]


def _compile(node: Mapping[str, Any]) -> Compiled | None:
    """A Python function doing what jmespath's TreeInterpreter does for ``node``.

    Each branch mirrors the interpreter's ``visit_<type>`` method; node types not
    handled here return None and the expression is interpreted.
    """
    kind = node["type"]
    if kind == "field":
        name = node["value"]
        return lambda value: value.get(name) if isinstance(value, dict) else None
    if kind in ("literal",):
        constant = node["value"]
        return lambda _value: constant
    if kind in ("identity", "current"):
        return lambda value: value
    if kind == "index":
        index = node["value"]

        def at(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[index]
            except IndexError:
                return None

        return at
    if not all(isinstance(child, Mapping) for child in node["children"]):
        return None  # slices keep plain numbers as children
    children = [_compile(child) for child in node["children"]]
    if any(child is None for child in children):
        return None
    parts: list[Compiled] = [c for c in children if c is not None]
    if kind in ("subexpression", "index_expression"):

        def chain(value: Any) -> Any:
            for part in parts:
                value = part(value)
            return value

        return chain
    if kind == "projection":
        left, right = parts

        def project(value: Any) -> Any:
            base = left(value)
            if not isinstance(base, list):
                return None
            collected = []
            for element in base:
                current = right(element)
                if current is not None:
                    collected.append(current)
            return collected

        return project
    if kind == "key_val_pair":
        return parts[0]
    if kind == "multi_select_dict":
        picked = _picked_fields(node)
        if picked is not None:
            return _select_fields(picked)
        pairs = [
            (child["value"], part) for child, part in zip(node["children"], parts, strict=True)
        ]
        return lambda value: None if value is None else {k: f(value) for k, f in pairs}
    if kind == "multi_select_list":
        return lambda value: None if value is None else [f(value) for f in parts]
    return None


def _picked_fields(node: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """``{x: a, y: b}`` as ((x, a), (y, b)): a multi-select of plain fields, else None."""
    if node["type"] != "multi_select_dict":
        return None
    picked = []
    for pair in node["children"]:
        (value,) = pair["children"]
        if value["type"] != "field":
            return None
        picked.append((pair["value"], value["value"]))
    return tuple(picked)


# The usual mapping of a list (``data.line_items[*].{sku: product_code, ...}``) is a
# projection onto a multi-select of fields: done without a function call per field
# of each element. Such a multi-select is null for null, its fields' values for an
# object, and null for each on anything else (a field of a non-object is null).


def _select_fields(picked: tuple[tuple[str, str], ...]) -> Compiled:
    def select(value: Any) -> Any:
        if isinstance(value, dict):
            get = value.get
            return {key: get(name) for key, name in picked}
        return None if value is None else {key: None for key, _ in picked}

    return select


def _field_path(node: Mapping[str, Any]) -> tuple[str, ...] | None:
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression":
        path: tuple[str, ...] = ()
        for child in node["children"]:
            part = _field_path(child)
            if part is None:
                return None
            path += part
        return path
    return None


def truthy(value: Any) -> bool:
    """JMESPath truth: false, null, and empty strings, lists and objects are false."""
    return not (value is None or value is False or value in ("", [], {}))


@dataclass(frozen=True, slots=True)
class ExpressionIssue:
    """A problem `check` found: the path read and what is wrong with it."""

    path: str
    message: str


def check(expr: Expression, schema: Schema, defs: Mapping[str, Any] | None = None) -> list[str]:
    """Statically check ``expr`` against the JSON Schema it will read.

    Returns human-readable problems (empty when the expression can only read
    fields that exist). ``defs`` resolves ``$ref``s; by default, the schema's own.
    """
    checker = _Checker(defs if defs is not None else (schema or {}).get("$defs", {}))
    checker.source = expr.source
    checker.bare = _bare_fields(expr.ast)
    checker.visit(expr.ast, schema, "")
    return [issue.message for issue in checker.issues]


_ANY: Schema = None
_BOOL: Schema = {"type": "boolean"}
_NUMBER: Schema = {"type": "number"}
_STRING: Schema = {"type": "string"}

_FUNCTION_RESULTS: dict[str, Schema] = {
    "abs": _NUMBER,
    "avg": _NUMBER,
    "ceil": _NUMBER,
    "contains": _BOOL,
    "ends_with": _BOOL,
    "floor": _NUMBER,
    "join": _STRING,
    "length": {"type": "integer"},
    "starts_with": _BOOL,
    "sum": _NUMBER,
    "to_number": _NUMBER,
    "to_string": _STRING,
    "type": _STRING,
}


class _Checker:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs
        self.issues: list[ExpressionIssue] = []
        # For hints: the expression's text, and the ids of its field nodes that stand
        # alone (an operand, an argument), which may be meant as constants.
        self.source = ""
        self.bare: frozenset[int] = frozenset()

    def resolve(self, schema: Schema) -> Schema:
        seen = 0
        while schema is not None and "$ref" in schema and seen < 32:
            schema = self.defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
            seen += 1
        if schema is None:
            return None
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            # Optional[X] is anyOf [X, null]: read through to X. Other unions are
            # left unchecked rather than guessed at.
            real = [o for o in options if self.resolve(o) != {"type": "null"}]
            if len(real) == 1:
                return self.resolve(real[0])
            return _ANY
        return schema

    def kind(self, schema: Schema) -> str | None:
        schema = self.resolve(schema)
        if schema is None:
            return None
        kind = schema.get("type")
        if isinstance(kind, str):
            return kind
        if "properties" in schema:
            return "object"
        return None

    def visit(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        method = getattr(self, f"_{node['type']}", None)
        if method is None:
            for child in node.get("children", []):
                self.visit(child, _ANY, path)
            return _ANY
        result: Schema = method(node, schema, path)
        return result

    # Each handler returns the schema of the value the node produces.

    def _field(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        name = str(node["value"])
        here = f"{path}.{name}" if path else name
        resolved = self.resolve(schema)
        if resolved is None:
            return _ANY
        kind = self.kind(resolved)
        if kind == "array":
            self.issues.append(
                ExpressionIssue(here, f"{path or 'the value'} is a list: use {path}[*].{name}")
            )
            return _ANY
        if kind not in (None, "object"):
            hint = ""
            if kind == "boolean" and not path and self.source.lstrip().startswith("!"):
                # `!steps.a.found` is `(!steps).a.found`: ! takes only the next name.
                fixed = "!(" + self.source.lstrip()[1:].strip() + ")"
                hint = f"; ! applies to the first name only: write {fixed}"
            self.issues.append(
                ExpressionIssue(
                    here, f"{path or 'the value'} is a {kind} and has no field {name!r}{hint}"
                )
            )
            return _ANY
        props: Mapping[str, Any] = resolved.get("properties", {})
        if name in props:
            return dict(props[name]) if isinstance(props[name], Mapping) else _ANY
        extra = resolved.get("additionalProperties", not props)
        if isinstance(extra, Mapping):
            return extra
        if extra is True or (not props and "properties" not in resolved):
            return _ANY
        close = difflib.get_close_matches(name, list(props), n=1, cutoff=0.6)
        if not close:
            # `code` for `product_code`: a word of a longer name.
            close = [key for key in props if name in key.split("_") and key != name][:1]
        prefix = f"{path}." if path else ""
        if close:
            hint = f"; did you mean {prefix + close[0]!r}?"
        else:
            deeper = self.nested_field(resolved, name)
            if deeper is not None:
                hint = f"; did you mean {prefix + deeper!r}?"
            elif id(node) in self.bare:
                hint = _constant_hint(self.source, name)
            else:
                hint = ""
        where = f"{path}" if path else "the event"
        self.issues.append(ExpressionIssue(here, f"{where} has no field {name!r}{hint}"))
        return _ANY

    def nested_field(self, schema: Schema, name: str) -> str | None:
        """The shortest path below ``schema`` to a field called ``name`` (or close to it)."""
        queue: list[tuple[Schema, str, int]] = [(schema, "", 0)]
        while queue:
            current, prefix, depth = queue.pop(0)
            resolved = self.resolve(current)
            if resolved is None or depth > 4:
                continue
            if self.kind(resolved) == "array":
                queue.append((resolved.get("items"), prefix + "[*]", depth + 1))
                continue
            props = resolved.get("properties")
            if not isinstance(props, Mapping):
                continue
            if depth > 0:
                found = difflib.get_close_matches(name, list(props), n=1, cutoff=0.8)
                if found:
                    return f"{prefix}.{found[0]}".lstrip(".")
            for key, value in props.items():
                if isinstance(value, Mapping):
                    queue.append((value, f"{prefix}.{key}", depth + 1))
        return None

    def _subexpression(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        for child in node["children"]:
            schema = self.visit(child, schema, path)
            path = _extend(path, child)
        return schema

    def _index_expression(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        left, right = node["children"]
        inner = self.visit(left, schema, path)
        return self.visit(right, inner, _extend(path, left))

    def _index(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        return self._items(schema, path, "[{}]".format(node["value"]))

    def _slice(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        self._items(schema, path, "[:]")
        return schema

    def _items(self, schema: Schema, path: str, how: str) -> Schema:
        resolved = self.resolve(schema)
        kind = self.kind(resolved)
        if resolved is None or kind is None:
            return _ANY
        if kind != "array":
            self.issues.append(ExpressionIssue(path, f"{path} is a {kind}, not a list: {how}"))
            return _ANY
        items = resolved.get("items")
        return items if isinstance(items, Mapping) else _ANY

    def _projection(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        left, right = node["children"]
        listed = self.visit(left, schema, path)
        lpath = _extend(path, left)
        element = self._items(listed, lpath, "[*]") if listed is not None else _ANY
        # A flatten already ends its path with [*].
        epath = lpath if left["type"] == "flatten" else lpath + "[*]"
        out = self.visit(right, element, epath)
        return {"type": "array", "items": out} if out is not None else {"type": "array"}

    def _flatten(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        (child,) = node["children"]
        listed = self.visit(child, schema, path)
        cpath = _extend(path, child)
        element = self._items(listed, cpath, "[]") if listed is not None else _ANY
        if self.kind(element) == "array":
            return element
        return {"type": "array", "items": element} if element is not None else {"type": "array"}

    def _value_projection(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        left, right = node["children"]
        obj = self.resolve(self.visit(left, schema, path))
        values: Schema = _ANY
        if obj is not None:
            extra = obj.get("additionalProperties")
            values = extra if isinstance(extra, Mapping) else _ANY
        self.visit(right, values, _extend(path, left) + ".*")
        return {"type": "array"}

    def _filter_projection(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        left, right, condition = node["children"]
        listed = self.visit(left, schema, path)
        lpath = _extend(path, left)
        element = self._items(listed, lpath, "[?]") if listed is not None else _ANY
        self.visit(condition, element, lpath + "[?]")
        out = self.visit(right, element, lpath + "[?]")
        return {"type": "array", "items": out} if out is not None else {"type": "array"}

    def _multi_select_dict(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        props = {}
        for pair in node["children"]:
            (value,) = pair["children"]
            props[str(pair["value"])] = self.visit(value, schema, path) or {}
        return {"type": "object", "properties": props}

    def _multi_select_list(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        for child in node["children"]:
            self.visit(child, schema, path)
        return {"type": "array"}

    def _function_expression(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        previous: Schema = _ANY
        previous_path = path
        for child in node["children"]:
            if child["type"] == "expref":
                # sort_by(list, &field): the reference applies to the list's items.
                element = (
                    self._items(previous, previous_path, "&") if previous is not None else _ANY
                )
                self.visit(child["children"][0], element, previous_path + "[*]")
            else:
                previous = self.visit(child, schema, path)
                previous_path = _extend(path, child)
        return _FUNCTION_RESULTS.get(str(node["value"]), _ANY)

    def _literal(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        value = node["value"]
        if isinstance(value, bool):
            return _BOOL
        if isinstance(value, int | float):
            return _NUMBER
        if isinstance(value, str):
            return _STRING
        return _ANY

    def _current(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        return schema

    _identity = _current

    def _pipe(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        left, right = node["children"]
        return self.visit(right, self.visit(left, schema, path), _extend(path, left))

    def _comparator(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        for child in node["children"]:
            self.visit(child, schema, path)
        return _BOOL

    def _and_expression(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        for child in node["children"]:
            self.visit(child, schema, path)
        return _ANY

    _or_expression = _and_expression

    def _not_expression(self, node: Mapping[str, Any], schema: Schema, path: str) -> Schema:
        for child in node["children"]:
            self.visit(child, schema, path)
        return _BOOL


# Nodes whose field children are read in place of a value, not as a step of a path.
_OPERANDS = {
    "comparator",
    "and_expression",
    "or_expression",
    "not_expression",
    "function_expression",
    "key_val_pair",
    "multi_select_list",
}


def _bare_fields(ast: Mapping[str, Any]) -> frozenset[int]:
    """Ids of the field nodes that are a whole operand: ``EUR`` in ``data.c == EUR``."""
    found: set[int] = set()

    def visit(node: Any, parent: str | None) -> None:
        if not isinstance(node, Mapping):
            return
        if node.get("type") == "field" and parent in (None, *_OPERANDS):
            found.add(id(node))
        kind = str(node.get("type"))
        if kind == "comparator" and node.get("value") not in ("eq", "ne"):
            kind = "ordering"  # `qty > 1` compares a field: not a constant
        for child in node.get("children", []):
            visit(child, kind)

    visit(ast, None)
    return frozenset(found)


def _constant_hint(source: str, name: str) -> str:
    """Say how to write ``name`` as text, with the expression fixed."""
    if name in ("null", "true", "false"):
        fixed = re.sub(rf"(?<![\w.'\"`]){name}(?![\w'\"`])", f"`{name}`", source, count=1)
        return f"; JMESPath has no keyword {name}: write it as a `backtick` literal: {fixed}"
    quoted = f'"{name}"'
    if quoted in source:
        fixed = source.replace(quoted, f"'{name}'", 1)
        return (
            f'; "{name}" in double quotes is a field name in JMESPath: if you mean the '
            f"text, write a 'raw string' or a `backtick` literal: {fixed}"
        )
    word = re.search(rf"(?<![\w.'\"`]){re.escape(name)}(?![\w'\"`])", source)
    if word is None:
        return ""
    fixed = source[: word.start()] + f"'{name}'" + source[word.end() :]
    # YAML takes the outer quotes of `currency: "EUR"`: the expression keeps the inner.
    yaml = f' (in YAML: "{fixed}")' if fixed == f"'{name}'" else ""
    return (
        f"; if {name} is meant as text, a constant needs quotes, as a 'raw string' or a "
        f"`backtick` literal: {fixed}{yaml}"
    )


def _extend(path: str, node: Mapping[str, Any]) -> str:
    """The path a node leads to, for messages (fields only; others keep the path)."""
    kind = node["type"]
    if kind == "field":
        return f"{path}.{node['value']}" if path else str(node["value"])
    if kind == "subexpression":
        for child in node["children"]:
            path = _extend(path, child)
        return path
    if kind == "index_expression":
        left, right = node["children"]
        return _extend(path, left) + (f"[{right['value']}]" if right["type"] == "index" else "")
    if kind in ("projection", "flatten"):
        return _extend(path, node["children"][0]) + "[*]"
    return path
