"""``/openapi.json`` says exactly what ``POST /events`` accepts: schemathesis checks both ways.

Schemathesis (an independent OpenAPI fuzzer) reads the document the server
publishes and generates requests from it, which a real server answers over HTTP:

* positive requests, valid by the document, must be accepted (202);
* negative requests, invalid by the document (a pattern, format, bound, enum,
  length, type or required field broken), must be refused (one of its 4xx);
* every answer must match the schema the document gives for its status.

Two phases: ``coverage`` walks every constraint of every event type to its
boundaries, both sides (one media type, so it stays quick), and ``fuzzing``
draws random requests over the whole operation (every media type, batches).
So a client generated from the document never sends what the server refuses,
and the server never takes what its document calls invalid.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from platypus._server import ServerThread
from platypus.config import IngressSettings
from platypus.ingress import Ingress
from platypus.runtime.embedded import EventLog
from platypus.schema_registry import SchemaRegistry
from platypus.sources.openapi import openapi_document
from platypus.web import create_app

# Random requests in the fuzzing phase; the coverage phase makes as many as the
# constraints need (about 2,400 here). FACTS.md records a 6,315-request CLI run.
# PLATYPUS_FUZZ_EXAMPLES=5000 explores further, for a run on demand.
EXAMPLES = int(os.environ.get("PLATYPUS_FUZZ_EXAMPLES", "100"))

SETTINGS = IngressSettings(max_batch=3)

# Built without I/O, so schemathesis can read it at collection; the first test
# checks that the running server publishes this very document.
DOCUMENT = openapi_document(SchemaRegistry.default(), SETTINGS, {})


def _schema(document: dict[str, Any], phase: str) -> Any:
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.phases.update(phases=[phase])
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
    )
    # What the document promises: 202 for a valid request, one of its 4xx for the
    # rest (413 included: a batch over maxItems is too large).
    loaded.config.checks.positive_data_acceptance.expected_statuses = ["202"]
    loaded.config.checks.negative_data_rejection.expected_statuses = ["400", "413", "415", "422"]
    return loaded


def _one_media_type(document: dict[str, Any], media: str) -> dict[str, Any]:
    narrowed = copy.deepcopy(document)
    operation = narrowed["paths"]["/events"]["post"]
    operation["requestBody"]["content"] = {media: operation["requestBody"]["content"][media]}
    return narrowed


coverage = _schema(_one_media_type(DOCUMENT, "application/cloudevents+json"), "coverage")
fuzzing = _schema(DOCUMENT, "fuzzing")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ingress over a real event log, served by uvicorn on loopback."""
    folder: Path = tmp_path_factory.mktemp("openapi-contract")
    log = EventLog(folder, partitions=2)
    log.open()
    app = create_app(Ingress(log, SchemaRegistry.default(), SETTINGS, "platypus.events"))
    try:
        with ServerThread(app) as running:
            yield running.url
    finally:
        log.close()


def _check(case: Any, server: str) -> None:
    response = case.call(base_url=server)
    if case.method.upper() != "POST":  # the coverage phase also tries methods not documented
        assert response.status_code == 405, response.text
    elif case.meta.generation.mode is GenerationMode.POSITIVE:
        assert response.status_code == 202, (case.body, response.text)
    else:
        assert response.status_code in (400, 413, 415, 422), (case.body, response.text)
    case.validate_response(response)


def test_the_server_publishes_the_document_under_test(server: str) -> None:
    assert httpx.get(f"{server}/openapi.json").json() == DOCUMENT


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@coverage.include(path="/events", method="POST").parametrize()
@_SETTINGS
def test_every_constraint_holds_at_its_boundaries_both_ways(case: Any, server: str) -> None:
    _check(case, server)


@fuzzing.include(path="/events", method="POST").parametrize()
@_SETTINGS
def test_random_requests_are_accepted_exactly_when_the_document_allows_them(
    case: Any, server: str
) -> None:
    _check(case, server)


def test_the_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    validate(DOCUMENT)  # raises with the first violation


def test_a_decimal_is_published_as_a_number_or_decimal_text_not_any_string() -> None:
    amount = DOCUMENT["components"]["schemas"]["OpportunityClosedWon"]["properties"]["amount"]
    number, text = amount["anyOf"]
    assert number == {
        "type": "number",
        "exclusiveMaximum": 10**14,
        "exclusiveMinimum": -(10**14),
        "multipleOf": 0.0001,
    }
    assert text == {"type": "string", "pattern": r"^-?(?:0|[1-9][0-9]{0,13})(?:\.[0-9]{1,4}0*)?$"}


def test_extension_attributes_are_published_as_the_envelope_takes_them() -> None:
    envelope = DOCUMENT["components"]["schemas"]["CloudEvent"]
    assert envelope["propertyNames"] == {
        "anyOf": [{"pattern": "^[a-z0-9]{1,40}$"}, {"enum": ["data_base64"]}]
    }
    kinds = [kind.get("type") for kind in envelope["additionalProperties"]["anyOf"]]
    assert kinds == ["string", "boolean", "integer", "null"]


def _patterns(value: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        found = [(where, value["pattern"])] if isinstance(value.get("pattern"), str) else []
        for key, item in value.items():
            found += _patterns(item, f"{where}/{key}")
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _patterns(item, f"{where}/{i}")]
    return []


def _dialect_dependent(pattern: str) -> list[str]:
    """Tokens whose meaning differs between ECMA-262 (what clients of the document
    read) and the server's engines: class escapes and a "." outside a class."""
    found, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            if char in "sSdDwWbB":
                found.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "." and not in_class:
            found.append(".")
    return found


def test_every_published_pattern_means_the_same_to_every_regex_engine() -> None:
    patterns = _patterns(DOCUMENT)
    assert len(patterns) > 20
    assert {where: _dialect_dependent(p) for where, p in patterns if _dialect_dependent(p)} == {}


# Characters on which regex dialects disagree: whitespace and line ends.
_TRICKY = ["\x85", "\xa0", "\u2003", "\u2028", "\ufeff", "\r", "\x1c", "\t", " "]


@pytest.mark.parametrize("char", _TRICKY, ids=[f"U+{ord(c):04X}" for c in _TRICKY])
@pytest.mark.parametrize(
    ("attribute", "template"),
    [
        ("dataschema", "urn:schema{}x"),
        ("source", "/salesforce{}x"),
        ("datacontenttype", "application/json;{}charset=utf-8"),
        ("datacontenttype", "application/json{};charset=utf-8"),
    ],
)
def test_the_envelope_takes_exactly_what_its_published_pattern_allows(
    attribute: str, template: str, char: str
) -> None:
    import re

    from pydantic import ValidationError

    from platypus.envelope import CloudEvent

    value = template.format(char)
    envelope = DOCUMENT["components"]["schemas"]["CloudEvent"]["properties"][attribute]
    [pattern] = [p for _, p in _patterns(envelope)]
    event = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "subject": "k"}
    event[attribute] = value
    try:
        CloudEvent.model_validate(event)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == bool(re.search(pattern, value)), (value, pattern)
