"""Personal data sent to free text: which fields a step posts where people read them.

A schema marks personal fields (`platypus.schema.PersonalData`); an action's input
model marks free-text fields (`platypus.adapter.FreeText`: a Slack message, a
comment). Text in such a field is kept by the vendor and searchable by everyone
who can read it, so a step that maps personal data there must say so::

    - name: notify_it
      to: slack.post_message
      allow_personal_data: [first_name, last_name, work_email]
      payload:
        text: "join(' ', [data.first_name, data.last_name, data.work_email])"

``platypus flows lint`` reports any other (``personal-data``), and the runtime
refuses to start such a flow (`unallowed_personal_data`), so the rule is the
same before and while it runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from platypus.adapter import FREE_TEXT_KEY
from platypus.expression import Expression, _Checker, _extend
from platypus.flow.model import StepSpec
from platypus.schema import PERSONAL_DATA_KEY

__all__ = ["free_text_values", "personal_reads", "unallowed_personal_data"]


class _PersonalReads(_Checker):
    """The expression walk, remembering the personal fields whose values it produces."""

    def __init__(self, defs: Mapping[str, Any]) -> None:
        super().__init__(defs)
        self.found: list[str] = []
        self.conditions = 0  # inside a comparison a value is tested, not sent
        # Nodes whose whole value is read by their parent (a function's argument,
        # an element of a [list] or {object}): `to_string(data.billing_contact)`
        # sends every personal field inside the object, though none is named.
        self.consumed: set[int] = set()

    def note(self, path: str) -> None:
        if path not in self.found and not self.conditions:
            self.found.append(path)

    def visit(self, node: Mapping[str, Any], schema: Any, path: str) -> Any:
        result = super().visit(node, schema, path)
        # A [list] or {object} is made of its elements, each consumed and noted already.
        built = node["type"] in ("multi_select_list", "multi_select_dict")
        if id(node) in self.consumed and not built and isinstance(result, Mapping):
            for found in _personal_below(result, self.defs, _extend(path, node), 0):
                self.note(found)
        return result

    def _consume(self, node: Mapping[str, Any]) -> None:
        self.consumed.update(id(child) for child in node.get("children", []))

    def _function_expression(self, node: Mapping[str, Any], schema: Any, path: str) -> Any:
        self._consume(node)
        return super()._function_expression(node, schema, path)

    def _multi_select_list(self, node: Mapping[str, Any], schema: Any, path: str) -> Any:
        self._consume(node)
        return super()._multi_select_list(node, schema, path)

    def _multi_select_dict(self, node: Mapping[str, Any], schema: Any, path: str) -> Any:
        for pair in node["children"]:
            self._consume(pair)
        return super()._multi_select_dict(node, schema, path)

    def _field(self, node: Mapping[str, Any], schema: Any, path: str) -> Any:
        result = super()._field(node, schema, path)
        if isinstance(result, Mapping) and result.get(PERSONAL_DATA_KEY):
            self.note(f"{path}.{node['value']}" if path else str(node["value"]))
        return result

    def _comparator(self, node: Mapping[str, Any], schema: Any, path: str) -> Any:
        self.conditions += 1
        try:
            return super()._comparator(node, schema, path)
        finally:
            self.conditions -= 1


def personal_reads(
    expr: Expression, schema: Mapping[str, Any], defs: Mapping[str, Any]
) -> list[str]:
    """Paths of the personal fields whose values ``expr`` passes on, in reading order.

    ``schema`` is what the expression reads (the event on the wire). A field only
    compared (``data.reason != null``) is not passed on; an object mapped whole
    passes on every personal field inside it.
    """
    reader = _PersonalReads(defs)
    produced = reader.visit(expr.ast, schema, "")
    if isinstance(produced, Mapping) and expr.field_path is not None:
        for found in _personal_below(produced, defs, ".".join(expr.field_path), 0):
            reader.note(found)
    return reader.found


def _personal_below(
    schema: Mapping[str, Any], defs: Mapping[str, Any], path: str, depth: int
) -> Iterator[str]:
    if depth > 8:
        return
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if schema.get(PERSONAL_DATA_KEY):
        if depth:  # the value itself was noted when its field was read
            yield path
        return
    for option in schema.get("anyOf", []) or []:
        if isinstance(option, Mapping):
            yield from _personal_below(option, defs, path, depth + 1)
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for key, value in properties.items():
            if isinstance(value, Mapping):
                yield from _personal_below(value, defs, f"{path}.{key}", depth + 1)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _personal_below(items, defs, f"{path}[*]", depth + 1)


def free_text_values(model: type[BaseModel], payload: Any) -> Iterator[tuple[str, Any]]:
    """(label, template) of each part of a payload template mapped to a free-text field."""
    if not isinstance(payload, dict):
        return
    schema = model.model_json_schema()
    yield from _free_text(schema, schema.get("$defs", {}), payload, "")


def _free_text(
    schema: Mapping[str, Any], defs: Mapping[str, Any], value: dict[str, Any], prefix: str
) -> Iterator[tuple[str, Any]]:
    properties = schema.get("properties", {})
    for key, item in value.items():
        target = properties.get(key)
        if not isinstance(target, Mapping):
            continue
        if target.get(FREE_TEXT_KEY):
            yield f"{prefix}{key}", item
            continue
        inner = _object(target, defs)
        if isinstance(item, dict) and inner is not None:
            yield from _free_text(inner, defs, item, f"{prefix}{key}.")


def _object(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if "$ref" in schema:
        found = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        return _object(found, defs) if isinstance(found, Mapping) else None
    if "properties" in schema:
        return schema
    for option in schema.get("anyOf", []) or []:
        if isinstance(option, Mapping):
            found = _object(option, defs)
            if found is not None:
                return found
    return None


def _templates(value: Any) -> Iterator[Expression]:
    if isinstance(value, Expression):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _templates(item)
    elif isinstance(value, list):
        for item in value:
            yield from _templates(item)


def unallowed_personal_data(
    step: StepSpec,
    model: type[BaseModel] | None,
    schemas: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
) -> dict[str, list[str]]:
    """Personal fields the step sends to free text without ``allow_personal_data``.

    ``model`` is the action's input model; ``schemas`` the (wire schema, $defs) of
    each event type the flow consumes. Returns the fields by free-text input label.
    """
    found: dict[str, list[str]] = {}
    if model is None:
        return found
    for label, template in free_text_values(model, step.payload):
        for expr in _templates(template):
            for schema, defs in schemas:
                for field in personal_reads(expr, schema, defs):
                    if step.allows_personal(field):
                        continue
                    fields = found.setdefault(label, [])
                    if field not in fields:
                        fields.append(field)
    return found
