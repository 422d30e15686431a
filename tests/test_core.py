"""The I/O-free core: routing, conditions, payload rendering, classification, policies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from platypus.core import (
    Deliver,
    Failed,
    Filtered,
    check_payload,
    classify,
    decide_flow,
    decide_step,
    event_context,
    on_error,
    render,
    renderer,
    retry_policy,
    route,
)
from platypus.exceptions import (
    DeliveryError,
    EventValidationError,
    FieldError,
    PermanentError,
    RetryableError,
)
from platypus.expression import compile_expression
from platypus.flow.model import FlowSpec, OnError
from platypus.retry import RetryPolicy

CLOSED_WON = "sales.opportunity.closed_won.v1"

EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "/sf",
    "type": CLOSED_WON,
    "subject": "0065g00000ABCDE",
    "data": {
        "opportunity_id": "0065g00000ABCDE",
        "amount": 1500,
        "currency": "EUR",
        "line_items": [
            {"product_code": "P-1", "quantity": 2},
            {"product_code": "P-2", "quantity": 5},
        ],
    },
}


def flow(**changes: Any) -> FlowSpec:
    spec: dict[str, Any] = {
        "name": "closed-won-to-billing",
        "consumes": [CLOSED_WON],
        "steps": [
            {"name": "notify", "to": "billing.post", "payload": {"id": "data.opportunity_id"}}
        ],
    }
    spec.update(changes)
    return FlowSpec.model_validate(spec)


def one_step(**step: Any) -> FlowSpec:
    return flow(steps=[{"name": "notify", "to": "billing.post", **step}])


def ctx(results: dict[str, Any] | None = None) -> dict[str, Any]:
    return event_context(EVENT, results or {})


# -- routing ---------------------------------------------------------------------------


def test_route_picks_the_flows_that_consume_the_type_sorted_by_name() -> None:
    flows = [
        flow(name="zeta", consumes=[CLOSED_WON]),
        flow(name="other", consumes=["finance.invoice.posted.v1"]),
        flow(name="alpha", consumes=["people.worker.hired.v1", CLOSED_WON]),
        flow(name="mid", consumes=CLOSED_WON),
    ]
    assert [f.name for f in route(flows, CLOSED_WON)] == ["alpha", "mid", "zeta"]


def test_route_of_an_unconsumed_type_is_empty() -> None:
    assert route([flow()], "nobody.reads.this.v1") == []


def test_event_context_adds_step_results_without_changing_the_event() -> None:
    context = event_context(EVENT, {"a": {"id": 1}})
    assert context["steps"] == {"a": {"id": 1}}
    assert context["data"] is EVENT["data"]
    assert "steps" not in EVENT


# -- flow and step conditions ----------------------------------------------------------


def test_flow_without_condition_runs() -> None:
    assert decide_flow(flow(), ctx()) is None


def test_flow_with_a_truthy_condition_runs() -> None:
    assert decide_flow(flow(when="data.amount > `1000`"), ctx()) is None


def test_flow_with_a_falsy_condition_is_filtered_naming_the_condition() -> None:
    decision = decide_flow(flow(when="data.amount > `2000`"), ctx())
    assert decision == Filtered("flow condition is false: data.amount > `2000`")


def test_flow_condition_on_a_missing_field_is_filtered() -> None:
    assert isinstance(decide_flow(flow(when="data.nope"), ctx()), Filtered)


def test_flow_condition_that_fails_is_a_permanent_failure() -> None:
    decision = decide_flow(flow(when="abs(subject)"), ctx())
    assert isinstance(decision, Failed)
    assert decision.retryable is False
    assert decision.error_class == "platypus.exceptions.MappingError"
    assert "abs(subject)" in decision.message


def test_step_with_a_falsy_condition_is_filtered_naming_the_condition() -> None:
    spec = one_step(when="data.currency == 'USD'", payload={"a": "subject"})
    decision = decide_step(spec, spec.steps[0], ctx())
    assert decision == Filtered("step condition is false: data.currency == 'USD'")


def test_step_with_a_truthy_condition_delivers() -> None:
    spec = one_step(when="data.currency == 'EUR'", payload={"a": "subject"})
    assert decide_step(spec, spec.steps[0], ctx()) == Deliver({"a": "0065g00000ABCDE"})


def test_step_condition_that_fails_is_a_permanent_failure() -> None:
    spec = one_step(when="length(data.amount)")
    decision = decide_step(spec, spec.steps[0], ctx())
    assert isinstance(decision, Failed)
    assert decision.retryable is False


def test_payload_expression_that_fails_is_a_permanent_failure() -> None:
    spec = one_step(payload={"n": "abs(subject)"})
    decision = decide_step(spec, spec.steps[0], ctx())
    assert isinstance(decision, Failed)
    assert (decision.retryable, decision.error_class) == (
        False,
        "platypus.exceptions.MappingError",
    )


# -- payload rendering -----------------------------------------------------------------


def test_payload_is_rendered_with_structure_constants_literals_and_projections() -> None:
    spec = one_step(
        payload={
            "opportunity": "data.opportunity_id",
            "currency": "'EUR'",
            "quoted": "'data.amount'",
            "count": 3,
            "ratio": 0.5,
            "active": True,
            "nothing": None,
            "customer": {"key": "subject", "tags": ["'a'", 1, "data.currency"]},
            "skus": "data.line_items[*].product_code",
            "lines": "data.line_items[*].{sku: product_code, qty: quantity}",
            "total_qty": "sum(data.line_items[*].quantity)",
        }
    )
    decision = decide_step(spec, spec.steps[0], ctx())
    assert decision == Deliver(
        {
            "opportunity": "0065g00000ABCDE",
            "currency": "EUR",
            "quoted": "data.amount",
            "count": 3,
            "ratio": 0.5,
            "active": True,
            "nothing": None,
            "customer": {"key": "0065g00000ABCDE", "tags": ["a", 1, "EUR"]},
            "skus": ["P-1", "P-2"],
            "lines": [{"sku": "P-1", "qty": 2}, {"sku": "P-2", "qty": 5}],
            "total_qty": 7,
        }
    )


def test_payload_reads_results_of_earlier_steps() -> None:
    spec = flow(
        steps=[
            {"name": "create-account", "to": "crm.create", "payload": {"n": "data.amount"}},
            {
                "name": "invoice",
                "to": "billing.post",
                "payload": {"account": 'steps."create-account".id'},
            },
        ]
    )
    decision = decide_step(spec, spec.steps[1], ctx({"create-account": {"id": "acc-9"}}))
    assert decision == Deliver({"account": "acc-9"})


def test_a_step_without_payload_delivers_an_empty_object() -> None:
    spec = one_step()
    assert decide_step(spec, spec.steps[0], ctx()) == Deliver({})


@pytest.mark.parametrize("value", [0, -1, 2.5, True, False, None, b"raw", "plain text kept"])
def test_render_keeps_non_expression_scalars(value: Any) -> None:
    assert render(value, ctx()) == value


def test_render_evaluates_expressions_inside_dicts_lists_and_tuples() -> None:
    template = {"a": [compile_expression("subject"), (1, compile_expression("id"))]}
    assert render(template, ctx()) == {"a": ["0065g00000ABCDE", [1, "evt-1"]]}


def test_a_renderer_gives_what_render_gives_for_every_kind_of_template() -> None:
    spec = one_step(
        payload={
            "opportunity": "data.opportunity_id",
            "deep": "data.customer.name",
            "deeper": "data.customer.address.city",
            "missing": "data.nothing.here",
            "top": "subject",
            "constant": "'EUR'",
            "count": 3,
            "nothing": None,
            "nested": {"key": "subject", "tags": ["'a'", 1, "data.currency", ["id"]]},
            "lines": "data.line_items[*].{sku: product_code, qty: quantity}",
            "total_qty": "sum(data.line_items[*].quantity)",
            "earlier": 'steps."create-account".id',
        }
    )
    step = spec.steps[0]
    for context in (ctx(), ctx({"create-account": {"id": "acc-9"}}), {"data": {"line_items": []}}):
        assert renderer(step.payload)(context) == render(step.payload, context)
    for context in (ctx(), {}, {"data": 5}):  # the last two fail to sum: the same failure
        assert decide_step(spec, step, context, renderer(step.payload)) == decide_step(
            spec, step, context
        )


def test_a_renderer_makes_new_objects_and_lists_for_every_event() -> None:
    template = {"a": [compile_expression("subject")], "b": {"c": 1}}
    render_one = renderer(template)
    first, second = render_one(ctx()), render_one(ctx())
    assert first == second == render(template, ctx())
    assert first is not second
    assert first["a"] is not second["a"]
    assert first["b"] is not second["b"]


def test_a_renderer_fails_as_render_does() -> None:
    spec = one_step(payload={"n": "abs(subject)"})
    step = spec.steps[0]
    failed = decide_step(spec, step, ctx(), renderer(step.payload))
    assert isinstance(failed, Failed)
    assert failed == decide_step(spec, step, ctx())


_names = st.sampled_from(["a", "b", "data", "x-y"])
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_names, children, max_size=3),
    max_leaves=12,
)
_paths = st.lists(_names, min_size=1, max_size=4).map(
    lambda names: compile_expression(".".join(f'"{n}"' for n in names))
)
_templates = st.recursive(
    _paths | st.none() | st.integers() | st.text(max_size=3).map(lambda t: (t,)),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(_templates, st.dictionaries(_names, _values, max_size=4))
def test_any_template_renders_the_same_both_ways(template: Any, context: dict[str, Any]) -> None:
    assert renderer(template)(context) == render(template, context)


# -- classification --------------------------------------------------------------------


def test_retryable_error_is_classified_retryable_with_its_details() -> None:
    error = RetryableError("rate limited", status_code=429, retry_after=12.5, vendor_code="RL")
    assert classify(error) == Failed(
        error_class="platypus.exceptions.RetryableError",
        message="rate limited",
        retryable=True,
        status_code=429,
        retry_after=12.5,
        vendor_code="RL",
    )


def test_permanent_error_is_classified_not_retryable() -> None:
    decision = classify(PermanentError("bad request", status_code=400))
    assert (decision.retryable, decision.status_code) == (False, 400)
    assert decision.error_class == "platypus.exceptions.PermanentError"


def test_a_bare_delivery_error_is_not_retryable() -> None:
    assert classify(DeliveryError("?")).retryable is False


def test_event_validation_error_carries_its_field_errors() -> None:
    errors = [FieldError("data.x", "bad", expected="int", got="'a'")]
    decision = classify(EventValidationError("invalid", errors, event_id="e"))
    assert decision.retryable is False
    assert decision.errors == tuple(errors)
    assert decision.message == "invalid"
    assert decision.error_class == "platypus.exceptions.EventValidationError"


def test_an_unknown_exception_is_permanent_with_its_class_name() -> None:
    decision = classify(KeyError("x"))
    assert (decision.error_class, decision.retryable) == ("KeyError", False)


def test_an_unknown_exception_without_message_uses_the_class_name() -> None:
    class VendorSdkError(Exception):
        pass

    decision = classify(VendorSdkError())
    assert decision.message == "VendorSdkError"
    assert decision.error_class.endswith(
        "test_an_unknown_exception_without_message_uses_the_class_name.<locals>.VendorSdkError"
    )
    assert decision.error_class.startswith("tests.test_core.")


# -- input models ----------------------------------------------------------------------


class OrderInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    lines: list[int] = Field(min_length=1)


def test_check_payload_without_model_accepts_anything() -> None:
    spec = one_step()
    assert check_payload(None, object(), spec.steps[0]) is None


def test_check_payload_accepts_a_fitting_payload() -> None:
    spec = one_step()
    assert check_payload(OrderInput, {"id": "x", "lines": [1]}, spec.steps[0]) is None


def test_check_payload_fails_with_payload_prefixed_field_errors() -> None:
    spec = one_step()
    decision = check_payload(OrderInput, {"lines": [1, "x"], "extra": 1}, spec.steps[0])
    assert decision is not None
    assert decision.retryable is False
    assert decision.error_class == "platypus.exceptions.EventValidationError"
    assert [e.path for e in decision.errors] == ["payload.id", "payload.lines[1]", "payload.extra"]
    assert decision.message == (
        "step 'notify': the mapped payload does not fit the input of billing.post (3 errors)"
    )


def test_check_payload_counts_one_error_in_the_singular() -> None:
    spec = one_step()
    decision = check_payload(OrderInput, {"lines": [1]}, spec.steps[0])
    assert decision is not None
    assert decision.message.endswith("(1 error)")


# -- policies --------------------------------------------------------------------------


def test_retry_policy_merges_default_then_flow_then_step() -> None:
    spec = flow(
        retry={"max_attempts": 8, "max_elapsed": "10m", "initial_delay": "1s"},
        steps=[{"name": "s", "to": "billing.post", "retry": {"max_attempts": 2}}],
    )
    default = RetryPolicy(max_attempts=4, max_delay=7.0)
    policy = retry_policy(default, spec, spec.steps[0])
    assert policy == RetryPolicy(
        max_attempts=2, max_delay=7.0, max_elapsed=600.0, initial_delay=1.0
    )


def test_retry_policy_without_overrides_is_the_default() -> None:
    spec = flow()
    default = RetryPolicy(max_attempts=4)
    assert retry_policy(default, spec, spec.steps[0]) == default


def test_on_error_defaults_to_dead_letter() -> None:
    spec = flow()
    assert on_error(spec, spec.steps[0]) is OnError.DEAD_LETTER


def test_on_error_of_the_flow_applies_to_its_steps() -> None:
    spec = flow(on_error="discard")
    assert on_error(spec, spec.steps[0]) is OnError.DISCARD


def test_on_error_of_a_step_overrides_the_flow() -> None:
    spec = flow(
        on_error="discard",
        steps=[{"name": "s", "to": "billing.post", "on_error": "dead_letter"}],
    )
    assert on_error(spec, spec.steps[0]) is OnError.DEAD_LETTER


def test_an_alert_worthy_adapter_error_is_marked_for_alerting() -> None:
    class RefusedCredentialsError(PermanentError):
        alert = True

    assert classify(RefusedCredentialsError("credentials refused")).alert is True
    assert classify(PermanentError("bad data")).alert is False
