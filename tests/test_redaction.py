"""Finding and masking personal data; structured errors from pydantic."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from platypus.redaction import (
    MASK,
    Scrubber,
    is_personal,
    is_secret_name,
    mask_data,
    normalize_path,
    personal_paths,
    personal_values,
    scrub_data,
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


def test_personal_values_ignores_one_character_values() -> None:
    # Two-character values are kept: the scrubber masks them as exact whole words.
    data = {"contact": {"name": "Al", "email": "a@b"}, "owner_email": "x", "note": " y "}
    assert personal_values(data, PATTERNS) == {"Al", "a@b"}


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
    st.sets(st.text(alphabet=st.sampled_from("abc @."), min_size=6, max_size=9), max_size=4),
)
def test_scrub_text_leaves_no_long_value_behind(text: str, values: set[str]) -> None:
    scrubbed = scrub_text(text, values).lower()
    for value in values:
        if len(value.strip()) >= 6:  # shorter ones are masked as whole words only
            assert value.strip().lower() not in scrubbed


# -- values a vendor changed -----------------------------------------------------------

EMAIL = "Xavier.Qw@Corp-Pii.example"


@pytest.mark.parametrize(
    "echoed",
    [
        "xavier.qw@corp-pii.example",
        "XAVIER.QW@CORP-PII.EXAMPLE",
        "Xavier.qw@corp-pii.Example",
        "xavier.qw\\u0040corp-pii.example",  # JSON
        "xavier.qw\\\\u0040corp-pii.example",  # JSON inside JSON
        "\\u0078avier.qw@corp-pii.example",
        "xavier.qw%40corp-pii.example",  # URL
        "xavier.qw%2540corp-pii.example",  # URL, twice
        "%78%61%76%69%65%72%2E%71%77%40corp-pii.example",
        "xavier.qw&#64;corp-pii.example",  # HTML and XML
        "xavier.qw&#x40;corp-pii.example",
        "xavier.qw&#0064corp-pii.example",
        "xavier.qw&commat;corp-pii.example",
        "xavier.qw\\x40corp-pii.example",
    ],
)
def test_an_echoed_value_is_masked_whatever_its_case_or_escaping(echoed: str) -> None:
    text = f'{{"error": "user {echoed} exists", "code": 409}}'
    assert scrub_text(text, {EMAIL}) == '{"error": "user *** exists", "code": 409}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("duplicate email Xavier.Qw@Co", "duplicate email ***"),  # cut at the end
        ("duplicate email xavier.qw@corp-p...", "duplicate email ***..."),
        ("duplicate email xavier.qw@co\u2026 (more)", "duplicate email ***\u2026 (more)"),
        ('{"email": "Xavi"}', '{"email": "***"}'),  # cut inside a quoted string
        # An excerpt starting inside; the ellipsis's last dot may be the value's own.
        ("...qw@corp-pii.example is taken", "..*** is taken"),
        ("\u2026qw@corp-pii.example is taken", "\u2026*** is taken"),
        ("w@corp-pii.example is taken", "*** is taken"),
        ("value 'xavier.qw@c' too long; the request", "value '***' too long; the request"),
        ("after: ier.qw@corp-pii.example", "after: ***"),  # 8 characters or more: anywhere
        ("duplicate Xavier.Qw@Co; the request was", "duplicate ***; the request was"),
    ],
)
def test_a_value_cut_short_is_masked(text: str, expected: str) -> None:
    assert scrub_text(text, {EMAIL}) == expected


def test_a_short_start_of_a_value_is_left_where_no_cut_shows() -> None:
    # "supp" starts "support@acme.example", but "contact support today" is no excerpt.
    assert scrub_text("contact support today", {"support@acme.example"}) == (
        "contact support today"
    )
    assert scrub_text("Xavi is not cut here", {EMAIL}) == "Xavi is not cut here"


def test_a_short_name_with_a_space_is_found_written_with_a_plus() -> None:
    assert scrub_text("q=Jo+Li&x=1", {"Jo Li"}) == "q=***&x=1"


def test_the_escapes_of_a_masked_value_are_masked_with_it() -> None:
    text = "name=Jos%C3%A9+M%C3%BCller&role=cfo"
    assert scrub_text(text, {"José Müller"}) == "name=***&role=cfo"


@pytest.mark.parametrize(
    "echoed",
    [
        "José Müller",
        "jose muller",
        "JOSÉ MÜLLER",
        "Jose\u0301 Mu\u0308ller",
        "Jos\\u00e9 M\\u00fcller",
    ],
)
def test_accents_and_their_forms_do_not_matter(echoed: str) -> None:
    assert scrub_text(f"owner {echoed}.", {"José Müller"}) == "owner ***."


def test_one_character_values_are_never_scrubbed() -> None:
    assert scrub_text("a b c", {"a"}) == "a b c"


def test_two_character_values_are_masked_as_exact_whole_words_only() -> None:
    text = "Ng and ng; Ngozi; An error: an announcement by An."
    assert scrub_text(text, {"Ng", "An"}) == "*** and ng; Ngozi; *** error: an announcement by ***."


def test_values_under_six_characters_are_masked_as_whole_words_in_any_case() -> None:
    text = "Ada, ada and ADA; not Adams, Canada or Nevada"
    assert scrub_text(text, {"Ada"}) == "***, *** and ***; not Adams, Canada or Nevada"


def test_a_whole_word_may_follow_a_json_newline_escape() -> None:
    assert scrub_text(r"line one\nAda wrote", {"Ada"}) == r"line one\n*** wrote"


def test_values_of_six_characters_or_more_are_masked_inside_words_too() -> None:
    assert scrub_text("mailto:quillfeather-ops", {"Quillfeather"}) == "mailto:***-ops"


def test_scrub_data_masks_strings_keys_and_numbers_that_are_values() -> None:
    answer = {
        "id": "w-1",
        "owner": {"email": "XAVIER.QW@corp-pii.example", "seen": ["Xavier.Qw@Corp-Pii.example"]},
        "xavier.qw@corp-pii.example": True,
        "salary": 85000,
        "ok": True,
    }
    assert scrub_data(answer, {EMAIL, "85000"}) == {
        "id": "w-1",
        "owner": {"email": MASK, "seen": [MASK]},
        MASK: True,
        "salary": MASK,
        "ok": True,
    }


def test_a_scrubber_without_values_returns_its_input() -> None:
    data = {"a": ["b"]}
    assert scrub_data(data, ()) is data
    assert not Scrubber([" ", ""])


_ALPHABET = "abcdefghij@.-"


def _escape(char: str, how: int) -> str:
    if how == 1:
        return char.upper()
    if how == 2:
        return f"\\u{ord(char):04x}"
    if how == 3:
        return f"%{ord(char):02X}"
    if how == 4:
        return f"&#{ord(char)};"
    return char


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(_ALPHABET), min_size=6, max_size=20).filter(
        lambda v: v[0].isalnum() and v[-1].isalnum()
    ),
    st.lists(st.integers(min_value=0, max_value=4), min_size=20, max_size=20),
    st.text(alphabet=st.sampled_from("xyz :;,"), max_size=10),
    st.text(alphabet=st.sampled_from("xyz :;,"), max_size=10),
)
def test_a_value_escaped_any_way_character_by_character_never_survives(
    value: str, hows: list[int], before: str, after: str
) -> None:
    echoed = "".join(_escape(c, how) for c, how in zip(value, hows, strict=False))
    scrubbed = scrub_text(f"{before} {echoed} {after}", {value})
    assert MASK in scrubbed
    assert value not in _decoded(scrubbed)


def _decoded(text: str) -> str:
    import html
    from urllib.parse import unquote

    text = html.unescape(unquote(text))
    return text.encode().decode("unicode_escape").lower()


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("client_secret", True),
        ("X-Api-Key", True),
        ("Authorization", True),
        ("refresh_token", True),
        ("Cookie", True),
        ("Cookie-Policy", False),
        ("event_id", False),
    ],
)
def test_is_secret_name_is_the_one_list_logs_and_dead_letters_use(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


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
