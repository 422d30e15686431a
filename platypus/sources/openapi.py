"""The OpenAPI 3.1 document of the ingress, served at ``GET /openapi.json``.

It describes ``POST /events`` (one event or a batch, in each mode of the HTTP
binding, every answer with its schema; each event type's ``data`` is its
registered JSON Schema)
and one ``POST /webhooks/<name>`` per configured source, in that vendor's format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from platypus.config import IngressSettings
from platypus.envelope import _EXTENSION_NAME, CloudEvent
from platypus.jsondata import EventJsonSchema
from platypus.schema_registry import SchemaRegistry
from platypus.sources.decoder import Decoder

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


_FIELD_ERROR = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "Where: [index].data.field for a batch."},
        "message": {"type": "string"},
        "expected": {"type": "string"},
        "got": {"type": "string", "description": "Masked when the field holds personal data."},
        "index": {"type": "integer", "description": "Position in the batch."},
    },
    "required": ["path", "message"],
}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What was wrong and what to do."},
        "errors": {"type": "array", "items": _ref("FieldError")},
        "rejection_id": {"type": "integer", "description": "Id of the recorded rejection."},
    },
    "required": ["error", "errors", "rejection_id"],
}
_ACCEPTED = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer", "description": "Events appended by this request."},
        "duplicates": {
            "type": "integer",
            "description": "Events whose (source, id) was already accepted: acknowledged only.",
        },
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "partition": {"type": "integer"},
                    "offset": {"type": "integer"},
                },
                "required": ["id", "partition", "offset"],
            },
        },
    },
    "required": ["accepted", "duplicates", "events"],
}


# Binary mode's attribute headers: (attribute, required by Platypus).
_BINARY_HEADERS = (
    ("specversion", True),
    ("id", True),
    ("source", True),
    ("type", True),
    ("subject", True),
    ("time", False),
    ("dataschema", False),
)


# A JSON media type, as `platypus.envelope.data_kind` reads one: */json or */*+json,
# in any case, with or without parameters.
# As the envelope's media type pattern (`platypus.envelope`), and for the same
# reason without \s or ".": what `data_kind` reads as JSON.
_JSON_MEDIA = (
    r"^[A-Za-z0-9!#$&^_.+-]+/(?:[A-Za-z0-9!#$&^_.+-]*\+)?[Jj][Ss][Oo][Nn]"
    r"(?: *;[^\x00-\x1f\x7f-\x9f]*)?$"
)


def _json(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(
    schemas: SchemaRegistry, settings: IngressSettings, decoders: Mapping[str, Decoder]
) -> dict[str, Any]:
    """The OpenAPI document for ``schemas`` and the configured webhook ``decoders``."""
    mode: Literal["validation"] = "validation"
    models: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (CloudEvent, mode),
        *((s.model, mode) for s in schemas),
    ]
    keys, top = models_json_schema(models, ref_template=_REF, schema_generator=EventJsonSchema)
    components: dict[str, Any] = dict(top.get("$defs", {}))
    envelope = keys[(CloudEvent, "validation")]["$ref"]
    # Extension attributes: any name the envelope takes (lower-case letters and
    # digits, as every standard attribute's name but data_base64), holding what
    # CloudEvents' type system allows (`platypus.envelope`): text without control
    # characters, a boolean, a 32-bit integer; null leaves it unset.
    envelope_schema = components[envelope.rsplit("/", 1)[1]]
    envelope_schema["propertyNames"] = {
        "anyOf": [{"pattern": _EXTENSION_NAME.pattern}, {"enum": ["data_base64"]}]
    }
    envelope_schema["additionalProperties"] = {
        "anyOf": [
            {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
            {"type": "boolean"},
            {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            {"type": "null"},
        ]
    }
    typed = []
    for schema in schemas:
        name = f"Event_{schema.type.replace('.', '_')}"
        components[name] = {
            "description": (schema.description or schema.type).strip(),
            "allOf": [
                {"$ref": envelope},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": schema.type},
                        "data": keys[(schema.model, "validation")],
                        # A registered type's data is JSON, in data: never data_base64,
                        # and its content type, when given, a JSON one (`data_kind`).
                        "data_base64": {"type": "null"},
                        "datacontenttype": {
                            "anyOf": [{"type": "null"}, {"type": "string", "pattern": _JSON_MEDIA}]
                        },
                    },
                    "required": ["type", "data"],
                },
            ],
        }
        typed.append(_ref(name))
    components["Event"] = {"oneOf": typed, "description": "A CloudEvent of a registered type."}
    components["Batch"] = {
        "type": "array",
        "items": _ref("Event"),
        "minItems": 1,
        "maxItems": settings.max_batch,
    }
    components["FieldError"] = _FIELD_ERROR
    components["Error"] = _ERROR
    components["Accepted"] = _ACCEPTED

    error = _ref("Error")
    events_op = {
        "operationId": "postEvents",
        "summary": "Take one CloudEvent or a batch in (structured, binary or batched mode).",
        "description": (
            "The three modes of the CloudEvents HTTP binding. Structured: "
            "application/cloudevents+json, one event (data, or data_base64 for data that "
            "is neither JSON nor text). Batched: application/cloudevents-batch+json, an "
            "array of events. Binary: the attributes as ce-* headers (percent-encoded; "
            "ce-specversion says the request is in binary mode) and the event's data as "
            "the body, in any content type (JSON, XML, text, bytes). application/json "
            "without ce-* headers is one event or a batch. Every mode is stored in one "
            "form (docs/events.md). A batch is all or nothing. 202 is answered once every "
            "event is durably appended; an event whose (source, id) was already accepted "
            "is acknowledged, not appended again. Every refused body is recorded with the "
            "reasons."
        ),
        # Binary mode keys on its ce-* headers, which OpenAPI cannot tie to a content
        # type: a document listing them as parameters (or */* as a body) would tell a
        # generated client that any body without them is fine. So it is described
        # here, as an extension, and the machine-readable body is exactly what the
        # structured and batched modes accept.
        "x-cloudevents-binary-mode": {
            "description": (
                "Send the attributes as ce-* headers (percent-encoded) and the event's data "
                "as the body, in its own Content-Type; ce-specversion marks the mode."
            ),
            "headers": [
                {"name": f"ce-{name}", "required": req, "schema": {"type": "string"}}
                for name, req in _BINARY_HEADERS
            ],
        },
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {"schema": _ref("Event")},
                "application/cloudevents-batch+json": {"schema": _ref("Batch")},
                "application/json": {"schema": {"oneOf": [_ref("Event"), _ref("Batch")]}},
            },
        },
        "responses": {
            "202": _json(_ref("Accepted"), "Every event is on disk."),
            "400": _json(
                error,
                "Not JSON an event is read from (with line and column), not an event or a "
                "list, or binary-mode headers that cannot be read.",
            ),
            "413": _json(
                error,
                f"Body over {settings.max_body_bytes} bytes, or over {settings.max_batch} events.",
            ),
            "415": _json(error, "Not a JSON content type, and not binary mode."),
            "422": _json(error, "An event or its data does not match its schema."),
        },
    }
    paths: dict[str, Any] = {"/events": {"post": events_op}}
    for name, decoder in sorted(decoders.items()):
        paths[f"/webhooks/{name}"] = {"post": decoder.openapi_operation(error)}
    paths["/healthz"] = {
        "get": {
            "operationId": "health",
            "summary": "Liveness and the number of events in flight.",
            "responses": {"200": _json({"type": "object"}, "Up.")},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Platypus ingress",
            "version": "1",
            "description": "Business events in: CloudEvents at /events, vendors' webhooks "
            "at /webhooks/<source>. docs/sources.md describes each source.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
