"""GET /openapi.json, and a property-based run against what it documents.

Hypothesis builds requests from the document (its paths, content types and event
types), starting from valid events and bending them (fields dropped, values
replaced with any JSON, types swapped, bodies truncated), and checks that every
answer is one the document lists, never a 500, and that every event the log
accepted validates against its schema.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platypus.authoring.scaffold import sample_instance
from platypus.envelope import CloudEvent
from platypus.runtime.embedded import Platypus
from platypus.schema_registry import SchemaRegistry
from tests.sources.payloads import (
    bamboo_employee,
    bamboo_signed,
    basic,
    employees,
    events_in_log,
    greenhouse_signed,
    hire_candidate,
    invoice_posted,
)
from tests.support import closed_won, worker_hired

# PLATYPUS_FUZZ_EXAMPLES=5000 explores further, for a run on demand.
EXAMPLES = int(os.environ.get("PLATYPUS_FUZZ_EXAMPLES", "200"))

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _invoice_event() -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "inv-1",
        "source": "/zuora/test",
        "type": "finance.invoice.posted.v1",
        "subject": "A00000042",
        "data": {
            "invoice_id": "I-1",
            "invoice_number": "INV-1",
            "account_number": "A00000042",
            "invoice_date": "2026-11-02",
            "due_date": "2026-12-02",
            "currency": "EUR",
            "amount": 10,
            "balance": 10,
            "lines": [{"charge_name": "x", "amount": 10}],
        },
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@st.composite
def bent(draw: st.DrawFn, template: dict[str, Any]) -> Any:
    """``template``, then a few edits: a value replaced or a key dropped."""
    value = copy.deepcopy(template)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(value)))
        if not path:
            return draw(_json)
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(_json)
    return value


def _templates(document: dict[str, Any]) -> list[dict[str, Any]]:
    by_type = {
        "sales.opportunity.closed_won.v1": closed_won,
        "people.worker.hired.v1": worker_hired,
        "finance.invoice.posted.v1": _invoice_event,
    }
    registry = SchemaRegistry.default()
    templates = [factory() for factory in by_type.values()]
    # Every other registered type gets a minimal valid event built from its schema.
    for schema in registry:
        if schema.type in by_type:
            continue
        json_schema = registry.json_schema(schema.type)
        data = sample_instance(json_schema, json_schema.get("$defs", {}))
        templates.append(
            {
                "specversion": "1.0",
                "id": f"tmpl-{schema.type}",
                "source": "/test/openapi",
                "type": schema.type,
                "subject": "subject-1",
                "data": data,
            }
        )
    types = [
        ref["$ref"].rsplit("/", 1)[1] for ref in document["components"]["schemas"]["Event"]["oneOf"]
    ]
    assert len(types) == len(templates)
    return templates


async def test_the_document_describes_post_events_and_its_answers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/events"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "application/cloudevents+json",  # structured mode
        "application/cloudevents-batch+json",  # batched mode
        "application/json",
    }
    # Binary mode (ce-* headers, any body) as an extension: OpenAPI cannot tie
    # headers to a content type, and a generated client must not be told that any
    # body without them is accepted.
    binary = operation["x-cloudevents-binary-mode"]
    required = {h["name"] for h in binary["headers"] if h["required"]}
    assert required == {"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject"}
    assert set(operation["responses"]) == {"202", "400", "413", "415", "422"}
    schemas = document["components"]["schemas"]
    assert schemas["Batch"]["maxItems"] == 5
    event = schemas["Event_sales_opportunity_closed_won_v1"]["allOf"][1]["properties"]
    assert event["data"] == {"$ref": "#/components/schemas/OpportunityClosedWon"}
    assert "line_items" in schemas["OpportunityClosedWon"]["properties"]
    refs = {
        part.split('"')[0]
        for part in json.dumps(document).split('"$ref": "#/components/schemas/')[1:]
    }
    assert refs <= set(schemas)  # every reference resolves


def _documented(document: dict[str, Any], path: str) -> set[int]:
    return {int(code) for code in document["paths"][path]["post"]["responses"]}


async def test_post_events_never_fails_and_never_accepts_an_invalid_event(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()
    templates = _templates(document)
    media = [*document["paths"]["/events"]["post"]["requestBody"]["content"], "text/plain", ""]
    allowed = _documented(document, "/events")
    accepted = 0

    one = st.one_of([bent(t) for t in templates])
    body = st.one_of(
        one.map(json.dumps),
        st.lists(one, min_size=1, max_size=6).map(json.dumps),
        _json.map(json.dumps),
        st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
        one.map(json.dumps).map(lambda text: text[: len(text) // 2]),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=body, content_type=st.sampled_from(media))
    def run(body: str, content_type: str) -> None:
        nonlocal accepted
        with httpx.Client(base_url=app.url) as http:
            response = http.post(
                "/events", content=body.encode(), headers={"content-type": content_type}
            )
        assert response.status_code in allowed, (response.status_code, response.text)
        if response.status_code == 202:
            accepted += response.json()["accepted"]

    await asyncio.to_thread(run)

    registry = SchemaRegistry.default()
    stored = events_in_log(app)
    assert len(stored) == accepted
    for event in stored:
        registry.validate(CloudEvent.model_validate(event))


async def test_webhooks_never_fail_and_never_accept_an_invalid_event(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()
    allowed = {
        path: _documented(document, path) for path in document["paths"] if "/webhooks/" in path
    }
    # Correctly signed, so the bent payloads get past authentication to the mapping.
    sources = {
        "greenhouse": (bent(hire_candidate()), greenhouse_signed),
        "bamboohr": (bent(employees(bamboo_employee(), bamboo_employee("9"))), bamboo_signed),
        "zuora": (
            bent(invoice_posted()),
            lambda _: {"content-type": "application/json", **basic()},
        ),
    }
    source_and_body = st.sampled_from(sorted(sources)).flatmap(
        lambda name: st.tuples(st.just(name), sources[name][0].map(json.dumps))
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=source_and_body)
    def run(case: tuple[str, str]) -> None:
        name, text = case
        body = text.encode()
        with httpx.Client(base_url=app.url) as http:
            response = http.post(f"/webhooks/{name}", content=body, headers=sources[name][1](body))
        assert response.status_code in allowed[f"/webhooks/{name}"], (
            response.status_code,
            response.text,
        )
        assert response.status_code != 500

    await asyncio.to_thread(run)

    registry = SchemaRegistry.default()
    for event in events_in_log(app):
        registry.validate(CloudEvent.model_validate(event))
