"""Finding and masking personal data; structured errors from pydantic."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from platypus.redaction import (
    MASK,
    is_personal,
    mask_data,
    normalize_path,
    personal_paths,
    personal_values,
    scrub_text,
)
from platypus.schema import PersonalData
from platypus.validation import field_errors, format_loc


class Contact(BaseModel):
    name: Annotated[str, PersonalData]
    email: Annotated[str, PersonalData]
    role: str = ""


class Line(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    buyer: Contact | None = None


class Order(BaseModel):
    order_id: str
    owner_email: Annotated[str, PersonalData]
    note: Annotated[str | None, PersonalData] = None
    contact: Contact | None = None
    lines: list[Line] = []
    cc: list[Annotated[str, PersonalData]] = []
    phones: Annotated[list[str], PersonalData] = []
    by_team: dict[str, Annotated[str, PersonalData]] = {}
    people: dict[str, Contact] = {}


class Node(BaseModel):
    secret: Annotated[str, PersonalData]
    children: list[Node] = []


PATTERNS = personal_paths(Order)


def test_personal_paths_cover_nested_lists_optionals_and_dicts() -> None:
    assert personal_paths(Order) == {
        "owner_email",
        "note",
        "contact.name",
        "contact.email",
        "lines[*].buyer.name",
        "lines[*].buyer.email",
        "cc[*]",
        "phones",
        "by_team.*",
        "people.*.name",
        "people.*.email",
    }


def test_personal_paths_of_a_model_without_personal_data_are_empty() -> None:
    class Plain(BaseModel):
        a: int
        b: list[str]

    assert personal_paths(Plain) == frozenset()


def test_personal_paths_of_a_recursive_model_terminate() -> None:
    found = personal_paths(Node)
    assert "secret" in found
    assert "children[*].secret" in found


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a[3].b[12].c", "a[*].b[*].c"), ("a", "a"), ("a[*]", "a[*]"), ("a.b0", "a.b0")],
)
def test_normalize_path_replaces_indices(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("owner_email", True),
        ("owner_emails", False),
        ("owner", False),
        ("contact.email", True),
        ("contact.role", False),
        ("contact", False),
        ("lines[4].buyer.name", True),
        ("lines[4].sku", False),
        ("cc[0]", True),
        ("phones", True),
        ("phones[2]", True),
        ("by_team.sales", True),
        ("by_team", False),
        ("people.ann.email", True),
        ("people.ann.role", False),
        ("people.ann", False),
    ],
)
def test_is_personal_matches_concrete_paths(path: str, expected: bool) -> None:
    assert is_personal(path, PATTERNS) is expected


ORDER: dict[str, Any] = {
    "order_id": "o-1",
    "owner_email": "owner@example.com",
    "note": None,
    "contact": {"name": "Alice Smith", "email": "alice@example.com", "role": "buyer"},
    "lines": [
        {"sku": "s-1", "quantity": 1, "buyer": {"name": "Bob", "email": "bob@example.com"}},
        {"sku": "s-2", "quantity": 2},
    ],
    "cc": ["carol@example.com"],
    "phones": ["+44 20 7946 0000"],
    "by_team": {"sales": "dan@example.com"},
    "people": {"ann": {"name": "Ann", "email": "ann@example.com", "role": "cfo"}},
}


def test_mask_data_masks_every_personal_value_and_keeps_the_rest() -> None:
    assert mask_data(ORDER, PATTERNS) == {
        "order_id": "o-1",
        "owner_email": MASK,
        "note": None,
        "contact": {"name": MASK, "email": MASK, "role": "buyer"},
        "lines": [
            {"sku": "s-1", "quantity": 1, "buyer": {"name": MASK, "email": MASK}},
            {"sku": "s-2", "quantity": 2},
        ],
        "cc": [MASK],
        "phones": MASK,
        "by_team": {"sales": MASK},
        "people": {"ann": {"name": MASK, "email": MASK, "role": "cfo"}},
    }


def test_mask_data_does_not_change_its_input() -> None:
    before = repr(ORDER)
    mask_data(ORDER, PATTERNS)
    assert repr(ORDER) == before


def test_mask_data_without_patterns_returns_the_data() -> None:
    assert mask_data(ORDER, ()) is ORDER


def test_personal_values_collects_every_personal_string() -> None:
    assert personal_values(ORDER, PATTERNS) == {
        "owner@example.com",
        "Alice Smith",
        "alice@example.com",
        "Bob",
        "bob@example.com",
        "carol@example.com",
        "+44 20 7946 0000",
        "dan@example.com",
        "Ann",
        "ann@example.com",
    }


def test_personal_values_ignores_values_shorter_than_three_characters() -> None:
    data = {"contact": {"name": "Al", "email": "a@b"}, "owner_email": "x"}
    assert personal_values(data, PATTERNS) == {"a@b"}


def test_personal_values_ignores_null_and_booleans_and_stringifies_numbers() -> None:
    data = {"owner_email": True, "note": None, "phones": [12345, False]}
    assert personal_values(data, PATTERNS) == {"12345"}


def test_personal_values_without_patterns_is_empty() -> None:
    assert personal_values(ORDER, []) == set()


def test_scrub_text_replaces_every_occurrence() -> None:
    text = "alice@example.com rejected; alice@example.com again"
    assert scrub_text(text, {"alice@example.com"}) == f"{MASK} rejected; {MASK} again"


def test_scrub_text_replaces_longest_values_first() -> None:
    # "Alice" first would leave "*** Smith" behind.
    assert scrub_text("to Alice Smith", ["Alice", "Alice Smith"]) == f"to {MASK}"


def test_scrub_text_ignores_empty_values() -> None:
    assert scrub_text("hello", ["", "zzz"]) == "hello"


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("abc* @."), max_size=40),
    st.sets(st.text(alphabet=st.sampled_from("abc @."), min_size=3, max_size=6), max_size=4),
)
def test_scrub_text_leaves_no_value_behind(text: str, values: set[str]) -> None:
    scrubbed = scrub_text(text, values)
    for value in values:
        assert value not in scrubbed


# -- field errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loc", "prefix", "expected"),
    [
        (("line_items", 0, "quantity"), "", "line_items[0].quantity"),
        (("a",), "data", "data.a"),
        ((0, "a"), "", "[0].a"),
        ((), "payload", "payload"),
        (("a", 1, 2), "data", "data.a[1][2]"),
    ],
)
def test_format_loc(loc: tuple[Any, ...], prefix: str, expected: str) -> None:
    assert format_loc(loc, prefix) == expected


def errors_for(data: Any, **kwargs: Any) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationError) as caught:
        Order.model_validate(data)
    return [(e.path, e.expected, e.got) for e in field_errors(caught.value, **kwargs)]


def test_field_errors_name_the_path_expected_and_got() -> None:
    data = {**ORDER, "lines": [{"sku": "s", "quantity": 0}, {"sku": 5, "quantity": "x"}]}
    assert errors_for(data) == [
        ("lines[0].quantity", "gt=0", "0"),
        ("lines[1].sku", "string", "5"),
        ("lines[1].quantity", "int", "'x'"),
    ]


def test_field_errors_prefix_paths() -> None:
    data = {**ORDER, "order_id": 1}
    assert errors_for(data, prefix="data") == [("data.order_id", "string", "1")]


def test_missing_fields_expect_a_value_and_got_nothing() -> None:
    data = {k: v for k, v in ORDER.items() if k != "order_id"}
    assert errors_for(data) == [("order_id", "a value (field is required)", "")]


def test_got_of_personal_fields_is_masked() -> None:
    data = {**ORDER, "owner_email": 42, "contact": {"name": ["Alice"], "email": "e"}}
    assert errors_for(data, prefix="data", personal=PATTERNS) == [
        ("data.owner_email", "string", MASK),
        ("data.contact.name", "string", MASK),
    ]


def test_got_of_personal_fields_inside_lists_and_dicts_is_masked() -> None:
    data = {
        **ORDER,
        "lines": [{"sku": "s", "quantity": 1, "buyer": {"name": 7, "email": "e"}}],
        "by_team": {"ops": 99},
    }
    assert errors_for(data, personal=PATTERNS) == [
        ("lines[0].buyer.name", "string", MASK),
        ("by_team.ops", "string", MASK),
    ]


class Wrapper(BaseModel):
    data: Order


def test_personal_prefix_strips_a_prefix_before_matching_patterns() -> None:
    with pytest.raises(ValidationError) as caught:
        Wrapper.model_validate({"data": {**ORDER, "owner_email": 42}})
    masked = field_errors(caught.value, personal=PATTERNS, personal_prefix="data")
    shown = field_errors(caught.value, personal=PATTERNS)
    assert [(e.path, e.got) for e in masked] == [("data.owner_email", MASK)]
    assert [(e.path, e.got) for e in shown] == [("data.owner_email", "42")]


def test_got_is_shown_when_no_personal_patterns_are_given() -> None:
    assert errors_for({**ORDER, "owner_email": 42}) == [("owner_email", "string", "42")]


def test_long_got_values_are_cut_to_120_characters() -> None:
    [(_, _, got)] = errors_for({**ORDER, "order_id": ["x" * 500]})
    assert len(got) == 120
    assert got.endswith("...")


def test_got_is_masked_where_an_object_holding_personal_fields_belongs() -> None:
    from pydantic import BaseModel, ValidationError

    class Contact(BaseModel):
        name: Annotated[str, PersonalData]

    class Deal(BaseModel):
        contact: Contact
        amount: int

    try:
        Deal.model_validate({"contact": "Alice <alice@example.com>", "amount": "x"})
    except ValidationError as exc:
        errors = {e.path: e.got for e in field_errors(exc, personal=["contact.name"])}
    assert errors == {"contact": MASK, "amount": "'x'"}
