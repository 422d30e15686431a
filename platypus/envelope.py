"""The event envelope: CloudEvents 1.0, and the one form every event is stored in.

Events arrive in the three modes of the HTTP binding (structured, binary,
batched: `platypus.ingress`), from webhooks and pollers, and in both Kafka
bindings (`platypus.runtime.codec`). Every one is stored, and read by flows,
in one form: a structured-mode event of the JSON event format (its section 3),

* its attributes as members (an attribute that is ``null`` is unset, and left out);
* JSON data (``datacontenttype`` absent, ``*/json`` or ``*/*+json``) in
  ``data``, as a JSON value;
* text data (``text/*``, XML, form-encoded) in ``data``, as a string decoded
  from the charset its content type names (UTF-8 if none);
* any other data in ``data_base64`` (RFC 4648 base64).

So a flow reads an XML body as ``data`` (a string) beside ``datacontenttype``,
whichever mode it came in, and maps it or passes it on as it is.

Platypus adds one rule to the spec: ``subject`` is required, because it carries
the business key (opportunity id, worker id) that orders events and picks their
partition.
"""

# No `from __future__ import annotations` here: subclasses of CloudEvent made in
# other modules (the registry's typed events) must see its annotations as types,
# not as names to look up where they are not defined.
import base64
import binascii
import codecs
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from platypus.exceptions import EventValidationError, FieldError, JsonTextError
from platypus.jsontext import parse
from platypus.strict import RFC3339_DATE_TIME

__all__ = [
    "CloudEvent",
    "DataKind",
    "Timestamp",
    "data_kind",
    "from_binary",
    "stored_form",
]

# CloudEvents 1.0: extension names are lower-case ASCII letters and digits.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,40}$")
# CloudEvents 1.0, type system: strings hold no control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_INT32 = (-(2**31), 2**31 - 1)
_TEXT = r"^[^\x00-\x1f\x7f-\x9f]*$"  # CloudEvents String: no control characters
# The patterns below are checked by pydantic (Rust's regex) and published in the
# OpenAPI document, where clients read them as ECMA-262: they avoid \s, \d, \w
# and ".", whose meaning differs between the two (\s and U+0085, "." and CR),
# so that the document accepts exactly what the server does.
_SPACES = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_NO_CONTROL = r"\x00-\x1f\x7f-\x9f"
_MEDIA_TYPE = (
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
    rf"(?: *;[^{_NO_CONTROL}]*)?$"
)
_ABSOLUTE_URI = rf"^[A-Za-z][A-Za-z0-9+.-]*:[^{_SPACES}{_NO_CONTROL}]+$"
_URI_REFERENCE = rf"^[^{_SPACES}{_NO_CONTROL}]+$"


def _rfc3339(value: Any) -> Any:
    """``time`` is an RFC 3339 date-time as text, nothing else (CloudEvents 1.0, Timestamp)."""
    if isinstance(value, datetime):
        return value  # built in Python, already a timestamp
    if not isinstance(value, str):
        raise PydanticCustomError(
            "timestamp_type", "Input should be an RFC 3339 date-time as text, not a number"
        )
    if not RFC3339_DATE_TIME.fullmatch(value):
        raise PydanticCustomError(
            "timestamp_parsing",
            "Input should be an RFC 3339 date-time with seconds and an offset, "
            "e.g. 2026-01-15T09:00:00Z",
        )
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise PydanticCustomError(
            "timestamp_parsing", "Input should be a real date and time (RFC 3339)"
        ) from None


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
"""A CloudEvents Timestamp: RFC 3339 text with seconds and an offset, read as a datetime."""


def _extension_value(value: Any) -> Any:
    """An extension attribute's value: a CloudEvents String, Boolean or Integer."""
    if value is None or isinstance(value, bool):
        return value  # None: unset (JSON event format, section 2.2)
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise PydanticCustomError(
                "attribute_text", "CloudEvents attributes hold no control characters"
            )
        return value
    if isinstance(value, int):
        if not _INT32[0] <= value <= _INT32[1]:
            raise PydanticCustomError(
                "attribute_integer",
                "a CloudEvents Integer is 32-bit ({low} to {high}): send larger numbers as text",
                {"low": _INT32[0], "high": _INT32[1]},
            )
        return value
    kind = (
        "an array"
        if isinstance(value, list)
        else "an object"
        if isinstance(value, dict)
        else "a number with a fraction or exponent"
    )
    raise PydanticCustomError(
        "attribute_type",
        "an extension attribute is a string, a boolean or an integer, not {kind} "
        "(CloudEvents 1.0 type system): send structured values in data",
        {"kind": kind},
    )


ExtensionValue = Annotated[Any, BeforeValidator(_extension_value)]
"""An extension attribute's value, checked against the CloudEvents type system."""


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event, as it is stored (`stored_form`) and as flows read it.

    ``type`` names a registered schema and its version, for example
    ``sales.opportunity.closed_won.v1``; ``data`` is validated against it.
    Extension attributes are kept as they are (``event.model_extra``): strings,
    booleans or integers (32-bit), as CloudEvents' type system allows.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, ExtensionValue] = Field(init=False)

    specversion: Literal["1.0"] = Field(description="CloudEvents version; always 1.0.")
    id: str = Field(min_length=1, max_length=256, pattern=_TEXT, description="Unique per source.")
    source: str = Field(
        min_length=1,
        max_length=1024,
        pattern=_URI_REFERENCE,
        description="URI-reference of the emitter.",
    )
    type: str = Field(
        min_length=1,
        max_length=256,
        pattern=_TEXT,
        description=(
            "Registered event type with version suffix, e.g. sales.opportunity.closed_won.v1."
        ),
    )
    subject: str = Field(
        min_length=1,
        max_length=256,
        pattern=_TEXT,
        description=(
            "Business key (opportunity id, worker id): orders events and picks the partition."
        ),
    )
    time: Timestamp | None = Field(
        default=None, description="When the occurrence happened (RFC 3339, with an offset)."
    )
    datacontenttype: str | None = Field(
        default="application/json",
        pattern=_MEDIA_TYPE,
        description="Media type of data (RFC 2046); absent means JSON.",
    )
    dataschema: str | None = Field(
        default=None, pattern=_ABSOLUTE_URI, description="URI of the schema data adheres to."
    )
    data: Any = Field(default=None, description="JSON data, or text for a text media type.")
    data_base64: str | None = Field(
        default=None, description="Data that is neither JSON nor text, in base64 (RFC 4648)."
    )

    @model_validator(mode="after")
    def _check_attributes(self) -> "CloudEvent":
        for name in self.model_extra or {}:
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"extension attribute {name!r} must be lower-case letters and digits only"
                )
        if self.data_base64 is not None and "data" in self.model_fields_set:
            raise ValueError("data and data_base64 are both set: an event carries one or none")
        return self

    @property
    def key(self) -> str:
        """The subject: the ordering key unless ``ordering:`` names another
        (`platypus.keys.ordering_key` decides)."""
        return self.subject


# -- the stored form --------------------------------------------------------------

DataKind = Literal["json", "text", "binary"]


def data_kind(content_type: str | None) -> DataKind:
    """How data of ``content_type`` is carried: JSON value, text, or base64.

    Absent means JSON (JSON event format, section 3.1.1); ``*/json`` and
    ``*/*+json`` are JSON; ``text/*``, ``*/xml``, ``*/*+xml`` and
    ``application/x-www-form-urlencoded`` are text; anything else is binary.
    """
    if not content_type:
        return "json"
    media = content_type.split(";", 1)[0].strip().lower()
    top, _, sub = media.partition("/")
    if sub == "json" or sub.endswith("+json"):
        return "json"
    if top == "text" or sub == "xml" or sub.endswith("+xml"):
        return "text"
    if media == "application/x-www-form-urlencoded":
        return "text"
    return "binary"


def stored_form(event: dict[str, Any]) -> dict[str, Any]:
    """A structured-mode event (parsed from JSON, or built by a webhook) in the stored form.

    Unset (``null``) attributes are left out; ``data_base64`` whose
    ``datacontenttype`` says JSON or text becomes ``data``. ``event`` is changed
    in place and returned. Raises `EventValidationError` for data that does not
    fit its content type, and `JsonTextError` for ``data_base64`` whose content
    type says JSON but is not.
    """
    if None in event.values():
        for name in [k for k, v in event.items() if v is None and k != "data"]:
            del event[name]
    encoded = event.get("data_base64")
    content_type = event.get("datacontenttype")
    if encoded is None and content_type is None:
        return event  # JSON data, or none: already in the stored form
    declared = content_type if isinstance(content_type, str) else None
    kind = data_kind(declared)
    if encoded is not None:
        if "data" in event:
            raise _invalid(
                "data_base64", "data and data_base64 are both set: an event carries one or none"
            )
        if not isinstance(encoded, str):
            raise _invalid("data_base64", "data_base64 is base64 text (RFC 4648)", encoded)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(
                "data_base64", "data_base64 is not base64 (RFC 4648, section 4)", encoded
            ) from None
        # Binary data of a declared JSON or text type is data like any other; without
        # a content type it stays what data_base64 says it is: bytes (section 3.1.2).
        if declared is not None and kind != "binary":
            del event["data_base64"]
            event["data"] = _data(raw, content_type, kind, "data_base64", "data_base64")
    elif kind != "json" and "data" in event and not isinstance(event["data"], str):
        raise _invalid(
            "data",
            f"with datacontenttype {content_type!r}, data is the content as a JSON string "
            "(or send it in data_base64)",
            event["data"],
        )
    return event


def from_binary(
    attributes: Mapping[str, str],
    content_type: str | None,
    body: bytes,
    *,
    where: str = "the body",
) -> dict[str, Any]:
    """The stored form of a binary-mode event: its attributes, and ``body`` as its data.

    ``content_type`` (HTTP ``Content-Type``, Kafka ``content-type``) is its
    ``datacontenttype``; an empty body is an event without data. ``where`` names
    the bytes in messages. Raises `JsonTextError` for a body that is not the
    JSON its content type says, `EventValidationError` for one that is not the
    text it says.
    """
    event: dict[str, Any] = dict(attributes)
    if content_type:
        event["datacontenttype"] = content_type
    if body:
        kind = data_kind(content_type)
        if kind == "binary":
            event["data_base64"] = base64.b64encode(body).decode("ascii")
        else:
            event["data"] = _data(body, content_type, kind, "", where)
    return event


def _data(raw: bytes, content_type: str | None, kind: DataKind, field: str, where: str) -> Any:
    """Data from its bytes: ``field`` holds them (``data_base64``), or "" for a body."""
    if kind == "json":
        try:
            return parse(raw)
        except JsonTextError as exc:
            said = f"{content_type!r} says it is" if content_type else "no content type means JSON"
            raise JsonTextError(
                f"{where} is not JSON, though {said}: {exc.reason}",
                exc.line,
                exc.column,
                path=field,
            ) from None
    charset = _charset(content_type) or "utf-8"
    try:
        return raw.decode(codecs.lookup(charset).name)
    except LookupError:
        message = f"unknown charset {charset!r} in {content_type!r}"
        raise _invalid(field or "data", message) from None
    except UnicodeDecodeError as exc:
        raise _invalid(
            field or "data",
            f"{where} is not {charset} text, as {content_type!r} says (byte {exc.start}): "
            "declare its charset, or send it as application/octet-stream",
        ) from None


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _invalid(path: str, message: str, got: Any = None) -> EventValidationError:
    shown = "" if got is None else repr(got)[:120]
    return EventValidationError(message, [FieldError(path=path, message=message, got=shown)])
