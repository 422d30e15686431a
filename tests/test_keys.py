"""Ordering keys: which events go one after another, decided once, when appended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from platypus.config import IngressSettings, load_config
from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError
from platypus.ingress import Ingress
from platypus.keys import OrderingKeys, ordering_key
from platypus.records import NewRecord
from platypus.schema_registry import SchemaRegistry
from tests.support import closed_won

OPPORTUNITY = "sales.opportunity.closed_won.v1"
BY_ACCOUNT = OrderingKeys.model_validate({OPPORTUNITY: "data.account_id"})


def test_without_a_declaration_the_key_is_the_subject() -> None:
    event = closed_won()
    assert ordering_key(event) == event["subject"]
    assert ordering_key(event, OrderingKeys()) == event["subject"]


def test_a_declared_expression_keys_the_type_by_another_field() -> None:
    event = closed_won(account_id="001ACCOUNT000000042")
    assert ordering_key(event, BY_ACCOUNT) == "001ACCOUNT000000042"


def test_other_event_types_keep_their_subject() -> None:
    keys = OrderingKeys.model_validate({"people.worker.hired.v1": "data.position.department"})
    event = closed_won()
    assert ordering_key(event, keys) == event["subject"]


def test_a_validated_cloud_event_and_its_wire_form_get_the_same_key() -> None:
    raw = closed_won(account_id="001XYZ")
    assert ordering_key(CloudEvent.model_validate(raw), BY_ACCOUNT) == ordering_key(raw, BY_ACCOUNT)


@pytest.mark.parametrize(("value", "key"), [(42, "42"), (42.0, "42"), (4.5, "4.5"), ("x", "x")])
def test_strings_and_numbers_are_keys(value: Any, key: str) -> None:
    keys = OrderingKeys.model_validate({OPPORTUNITY: "data.rank"})
    assert ordering_key(closed_won(rank=value), keys) == key


@pytest.mark.parametrize("value", [None, "", [], ["a"], {"a": 1}, True, False])
def test_a_value_that_is_no_key_falls_back_to_the_subject(value: Any) -> None:
    keys = OrderingKeys.model_validate({OPPORTUNITY: "data.rank"})
    event = closed_won(rank=value)
    assert ordering_key(event, keys) == event["subject"]


def test_an_expression_that_fails_on_the_event_falls_back_to_the_subject() -> None:
    keys = OrderingKeys.model_validate({OPPORTUNITY: "abs(data.account_name)"})
    event = closed_won()
    assert ordering_key(event, keys) == event["subject"]


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_the_key_is_the_field_whatever_the_subject(subject: str, account: str) -> None:
    event = {"type": OPPORTUNITY, "subject": subject, "data": {"account_id": account}}
    assert ordering_key(event, BY_ACCOUNT) == account


def test_keys_dump_as_the_expressions_written() -> None:
    assert BY_ACCOUNT.model_dump() == {OPPORTUNITY: "data.account_id"}
    assert OrderingKeys.model_validate(BY_ACCOUNT.model_dump()) == BY_ACCOUNT


@pytest.mark.parametrize("bad", [{OPPORTUNITY: "data.("}, {OPPORTUNITY: ""}, {OPPORTUNITY: 3}, [1]])
def test_a_declaration_that_is_no_expression_is_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        OrderingKeys.model_validate(bad)


def test_problems_name_unknown_event_types_and_fields() -> None:
    schemas = SchemaRegistry.default()
    keys = OrderingKeys.model_validate(
        {OPPORTUNITY: "data.acount_id", "sales.opportunity.closed_lost.v1": "subject"}
    )
    problems = keys.problems((s.type for s in schemas), schemas.json_schema)
    assert problems[0] == "ordering: sales.opportunity.closed_lost.v1: no such event type"
    assert "data.acount_id" in problems[1]
    assert "account_id" in problems[1]  # did you mean


def test_platypus_yaml_declares_ordering_per_event_type(tmp_path: Path) -> None:
    (tmp_path / "platypus.yaml").write_text(f"ordering:\n  {OPPORTUNITY}: data.account_id\n")
    config = load_config(root=tmp_path)
    assert config.ordering == BY_ACCOUNT


def test_a_broken_ordering_expression_stops_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "platypus.yaml").write_text(f"ordering:\n  {OPPORTUNITY}: 'data.['\n")
    with pytest.raises(ConfigurationError, match=r"ordering.*invalid expression"):
        load_config(root=tmp_path)


class _Sink:
    def __init__(self) -> None:
        self.items: list[NewRecord] = []

    async def append(self, topic: str, items: Any) -> list[tuple[int, int] | None]:
        self.items.extend(items)
        return [(0, n) for n in range(len(items))]

    async def reject(self, reason: str, errors: Any, body: bytes) -> int:
        raise AssertionError(f"refused: {reason} {errors}")


async def test_the_ingress_keys_each_appended_record_by_the_declaration() -> None:
    sink = _Sink()
    ingress = Ingress(sink, SchemaRegistry.default(), IngressSettings(), "events", keys=BY_ACCOUNT)
    one = closed_won(account_id="001SAME00000042")
    two = closed_won(account_id="001SAME00000042")
    await ingress.accept(json.dumps(one).encode(), "application/cloudevents+json")
    await ingress.accept_events([two], json.dumps(two).encode())
    assert [item.key for item in sink.items] == ["001SAME00000042", "001SAME00000042"]
    assert one["subject"] != two["subject"]


def test_the_ingress_refuses_to_start_with_an_ordering_it_cannot_apply() -> None:
    keys = OrderingKeys.model_validate({"sales.opportunity.won.v1": "data.account_id"})
    with pytest.raises(ConfigurationError, match="no such event type"):
        Ingress(_Sink(), SchemaRegistry.default(), IngressSettings(), "events", keys=keys)
