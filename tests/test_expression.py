"""Expressions: evaluation on wire-format events, syntax errors, and the static checker."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platypus.exceptions import MappingError
from platypus.expression import check, compile_expression, truthy
from platypus.schema_registry import SchemaRegistry

EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "/sf",
    "type": "sales.opportunity.closed_won.v1",
    "subject": "0065g00000ABCDE",
    "data": {
        "opportunity_id": "0065g00000ABCDE",
        "amount": 1500,
        "billing_contact": {"name": "Alice", "email": "alice@example.com"},
        "line_items": [
            {"product_code": "P-1", "quantity": 2},
            {"product_code": "P-2", "quantity": 5},
        ],
    },
    "steps": {"create-account": {"id": "acc-9"}},
}

STRING = {"type": "string"}
NULLABLE = {"anyOf": [STRING, {"type": "null"}]}


def run(source: str) -> Any:
    return compile_expression(source).evaluate(EVENT)


# -- evaluation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("subject", "0065g00000ABCDE"),
        ("data.opportunity_id", "0065g00000ABCDE"),
        ("data.billing_contact.email", "alice@example.com"),
        ("data.line_items[*].product_code", ["P-1", "P-2"]),
        ("data.line_items[1].quantity", 5),
        ("sum(data.line_items[*].quantity)", 7),
        ("data.amount > `1000`", True),
        ("data.amount > `2000`", False),
        ('steps."create-account".id', "acc-9"),
        ("data.missing", None),
        ("'EUR'", "EUR"),
        ("'data.amount'", "data.amount"),
        ("`[1, 2]`", [1, 2]),
        ("{id: id, n: length(data.line_items)}", {"id": "evt-1", "n": 2}),
    ],
)
def test_evaluate_reads_the_wire_format_event(source: str, expected: Any) -> None:
    assert run(source) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="'\\"), max_size=30))
def test_raw_string_literal_evaluates_to_itself(text: str) -> None:
    assert compile_expression(f"'{text}'").evaluate({}) == text


def test_a_type_error_at_evaluation_is_a_mapping_error_naming_the_expression() -> None:
    with pytest.raises(MappingError, match=r"expression 'abs\(subject\)' failed"):
        run("abs(subject)")


@pytest.mark.parametrize("source", ["a > `0`", "a < b", "steps.x.total > `0`"])
def test_ordering_a_string_against_a_number_is_a_mapping_error_not_a_type_error(
    source: str,
) -> None:
    context = {"a": "x", "b": 1, "steps": {"x": {"total": "3"}}}
    with pytest.raises(MappingError, match="compare values of one type"):
        compile_expression(source).evaluate(context)


def test_an_unknown_function_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="nope"):
        run("nope(subject)")


@pytest.mark.parametrize(
    ("source", "column"),
    [("foo bar", 5), ("a.`x", 3), ("data.[", 7), ("'abc", 1), ("a[", 3)],
)
def test_a_syntax_error_is_a_mapping_error_naming_the_column(source: str, column: int) -> None:
    with pytest.raises(MappingError, match=f"at column {column}:") as caught:
        compile_expression(source)
    assert repr(source) in str(caught.value)


def test_the_empty_expression_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="cannot be empty"):
        compile_expression("")


def test_expression_keeps_its_source_and_compares_by_it() -> None:
    assert compile_expression("data.x").source == "data.x"
    assert compile_expression("data.x") == compile_expression("data.x")
    assert compile_expression("data.x") != compile_expression("data.y")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),
        (0.0, True),
        ("false", True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_truthy_follows_jmespath(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.lists(st.integers())))
def test_truthy_agrees_with_jmespath_not(value: Any) -> None:
    # `!@` is JMESPath's own negation of truth.
    assert truthy(value) is not compile_expression("!@").evaluate(value)


# -- static checks ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def wire() -> tuple[dict[str, Any], dict[str, Any]]:
    """The closed-won event on the wire, as lint builds it, and its $defs."""
    data = dict(SchemaRegistry.default().json_schema("sales.opportunity.closed_won.v1"))
    defs = data.pop("$defs")
    schema = {
        "type": "object",
        "properties": {
            "id": STRING,
            "source": STRING,
            "type": STRING,
            "specversion": STRING,
            "subject": STRING,
            "time": NULLABLE,
            "data": data,
            "steps": {"type": "object"},
        },
        "additionalProperties": False,
    }
    return schema, defs


def issues(source: str, wire: tuple[dict[str, Any], dict[str, Any]]) -> list[str]:
    schema, defs = wire
    return check(compile_expression(source), schema, defs)


@pytest.mark.parametrize(
    "source",
    [
        "subject",
        "time",
        "data.opportunity_id",
        "data.billing_contact.email",
        "data.line_items[*].product_code",
        "data.line_items[0].quantity",
        "data.line_items[].currency",
        "data.line_items[0:2].currency",
        "data.line_items[?quantity > `1`].product_code",
        "length(data.line_items)",
        "sum(data.line_items[*].quantity)",
        "sort_by(data.line_items, &quantity)[0].product_code",
        "data.line_items | [0].unit_price",
        "{a: data.amount, b: subject}",
        "[data.amount, subject]",
        "data.amount > `1000` && subject",
        "'EUR'",
        "steps.anything.at.all",
        "data.amount.whatever",
    ],
)
def test_check_accepts_expressions_that_read_existing_fields(
    source: str, wire: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    assert issues(source, wire) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("subjct", "the event has no field 'subjct'; did you mean 'subject'?"),
        (
            "xyz",
            "the event has no field 'xyz'; if xyz is meant as text, a constant needs quotes, "
            "as a 'raw string' or a `backtick` literal: 'xyz' (in YAML: \"'xyz'\")",
        ),
        (
            "data.oportunity_id",
            "data has no field 'oportunity_id'; did you mean 'data.opportunity_id'?",
        ),
        (
            "data.billing_contact.emial",
            "data.billing_contact has no field 'emial'; did you mean 'data.billing_contact.email'?",
        ),
        (
            "data.line_items[*].prodct_code",
            "data.line_items[*] has no field 'prodct_code'; "
            "did you mean 'data.line_items[*].product_code'?",
        ),
        ("data.line_items[0].qty", "data.line_items[0] has no field 'qty'"),
        ("data.line_items[].qty", "data.line_items[*] has no field 'qty'"),
        ("data.line_items[?qty > `1`].currency", "data.line_items[?] has no field 'qty'"),
        ("sort_by(data.line_items, &qty)", "data.line_items[*] has no field 'qty'"),
        (
            "data.line_items.product_code",
            "data.line_items is a list: use data.line_items[*].product_code",
        ),
        ("data.opportunity_id[0]", "data.opportunity_id is a string, not a list: [0]"),
        ("data.opportunity_id[*]", "data.opportunity_id is a string, not a list: [*]"),
        ("time.zone", "time is a string and has no field 'zone'"),
        (
            "data.billing_contact.phone.x",
            "data.billing_contact.phone is a string and has no field 'x'",
        ),
        ("to_string(data.amount).x", "the value is a string and has no field 'x'"),
        ("{a: data.nope}", "data has no field 'nope'"),
    ],
)
def test_check_reports_unknown_fields_and_wrong_shapes(
    source: str, message: str, wire: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    assert issues(source, wire) == [message]


def test_check_reports_every_problem_in_order(wire: tuple[dict[str, Any], dict[str, Any]]) -> None:
    assert issues("[data.a, data.b]", wire) == ["data has no field 'a'", "data has no field 'b'"]


def test_check_against_no_schema_accepts_anything() -> None:
    assert check(compile_expression("a.b[0].c"), None) == []


def test_check_resolves_refs_from_the_schema_s_own_defs() -> None:
    schema = {
        "type": "object",
        "properties": {"who": {"$ref": "#/$defs/Person"}},
        "additionalProperties": False,
        "$defs": {"Person": {"type": "object", "properties": {"email": STRING}}},
    }
    assert check(compile_expression("who.email"), schema) == []
    assert check(compile_expression("who.mail"), schema) == [
        "who has no field 'mail'; did you mean 'who.email'?"
    ]


def test_check_reads_through_nullable_refs() -> None:
    schema = {
        "type": "object",
        "properties": {"who": {"anyOf": [{"$ref": "#/$defs/P"}, {"type": "null"}]}},
    }
    defs = {"P": {"type": "object", "properties": {"email": STRING}}}
    assert check(compile_expression("who.email"), schema, defs) == []
    assert check(compile_expression("who.x"), schema, defs) == ["who has no field 'x'"]


def test_check_leaves_real_unions_unchecked() -> None:
    schema = {"type": "object", "properties": {"v": {"anyOf": [STRING, {"type": "array"}]}}}
    assert check(compile_expression("v.anything"), schema) == []


def test_check_leaves_a_dangling_ref_unchecked() -> None:
    schema = {"type": "object", "properties": {"v": {"$ref": "#/$defs/Missing"}}}
    assert check(compile_expression("v.anything"), schema) == []


def test_open_objects_accept_any_field() -> None:
    assert check(compile_expression("a.b"), {"type": "object"}) == []
    typed = {"type": "object", "additionalProperties": {"type": "object", "properties": {}}}
    assert check(compile_expression("anykey.x"), typed) == []


def test_additional_properties_schema_is_used_for_unknown_keys() -> None:
    schema = {"type": "object", "additionalProperties": STRING}
    assert check(compile_expression("anykey.x"), schema) == [
        "anykey is a string and has no field 'x'"
    ]


def test_pipe_continues_from_the_left_side_s_result() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": STRING}}},
    }
    assert check(compile_expression("a | b"), schema) == []
    assert check(compile_expression("a | bb"), schema) == [
        "a has no field 'bb'; did you mean 'a.b'?"
    ]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    context=st.dictionaries(st.sampled_from(["a", "b", "c"]), _json, max_size=3),
    path=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4),
)
def test_plain_paths_read_by_lookup_agree_with_jmespath(
    context: dict[str, Any], path: list[str]
) -> None:
    source = ".".join(path)
    expr = compile_expression(source)
    assert expr._path == tuple(path)  # the fast path is the one under test
    assert expr.evaluate(context) == jmespath.search(source, context)


COMPILED_SHAPES = [
    "a[*].b",
    "a[*]",
    "a.b[*].c.a",
    "a[*].{x: b, y: c}",
    "a[*].{x: b, y: c, z: a}",
    "a[*].{x: b, y: c.a}",
    "{x: a, y: b}",
    "a.b[*].{x: c}",
    "a.{x: b, y: c.a}",
    "a.[b, c]",
    "[a, b.c]",
    "{x: a, y: `1`}",
    "a[0]",
    "a[-1].b",
    "a[0][1]",
    "a[*].b[*].c",
    "'lit'",
    "`[1, 2]`",
    "@",
    "a[*].[@, b]",
]


@settings(max_examples=200, deadline=None)
@given(
    context=st.dictionaries(st.sampled_from(["a", "b", "c"]), _json, max_size=3),
    source=st.sampled_from(COMPILED_SHAPES),
)
def test_compiled_shapes_agree_with_jmespath(context: dict[str, Any], source: str) -> None:
    expr = compile_expression(source)
    assert expr._compiled is not None  # the compiled path is the one under test
    assert expr.evaluate(context) == jmespath.search(source, context)


def test_shapes_not_compiled_are_still_evaluated_by_jmespath() -> None:
    expr = compile_expression("length(a[?b > `1`])")
    assert expr._compiled is None
    assert expr.evaluate({"a": [{"b": 1}, {"b": 2}, {"b": 3}]}) == 2
