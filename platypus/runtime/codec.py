"""Reading a stored record as a CloudEvent, in either binding a topic may hold.

Records appended by Platypus itself are in structured mode: the value is the
JSON event in its stored form (`platypus.envelope`; ``content-type:
application/cloudevents+json``). Records another producer wrote to a Kafka
topic may be in binary mode: the value is ``data`` and the attributes are
``ce_*`` headers (Kafka binding, section 3.2). Both are read here, for every
runtime, into that one stored form, as strictly as the ingress reads a request
(`platypus.jsontext`): a record no reader could agree on is not an event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from platypus.envelope import from_binary, stored_form
from platypus.exceptions import EventValidationError, JsonTextError
from platypus.jsontext import NOT_CANONICAL, canonical, dumps, parse

__all__ = ["decode_record", "read_record"]

_CE_PREFIX = "ce_"
_MODE = "Kafka binary mode"


def read_record(
    value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> tuple[dict[str, Any], bytes]:
    """A record as (its event in the stored form, the canonical bytes of that form).

    Binary mode (``ce_*`` headers) is recognised by its ``ce_specversion`` header;
    anything else is read as structured mode. Raises `JsonTextError` or
    `EventValidationError` saying why the record is not an event.
    """
    found: dict[str, bytes] = {}
    for name, raw in headers:
        found[name.lower()] = raw
    if _CE_PREFIX + "specversion" not in found:
        value = value or b""
        # Records Platypus wrote hold the canonical stored form: read at orjson's
        # speed, proven the same as `parse` would read them (`canonical`).
        event = canonical(value)
        if event is NOT_CANONICAL:
            event = parse(value)
        elif _stored(event):
            return event, value  # already the stored form: its bytes are these
        if not isinstance(event, dict):
            raise JsonTextError("a CloudEvent is a JSON object")
        stored_form(event)
        return event, dumps(event)
    attributes: dict[str, str] = {}
    for name, raw in found.items():
        if name.startswith(_CE_PREFIX):
            try:
                attributes[name[len(_CE_PREFIX) :]] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise JsonTextError(f"{_MODE}: header {name} is not UTF-8 text") from None
    content_type = found.get("content-type")
    try:
        media = content_type.decode("utf-8") if content_type is not None else None
    except UnicodeDecodeError:
        raise JsonTextError(f"{_MODE}: header content-type is not UTF-8 text") from None
    event = from_binary(attributes, media, value or b"", where="the record's data")
    return event, dumps(event)


def _stored(event: dict[str, Any]) -> bool:
    """Whether `stored_form` would leave ``event`` as it is, without looking further."""
    return not ("data_base64" in event or "datacontenttype" in event or None in event.values())


def decode_record(
    value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> tuple[dict[str, Any] | None, str | None]:
    """A record as its event, in the stored form, or (None, why not)."""
    try:
        event, _ = read_record(value, headers)
    except JsonTextError as exc:
        return None, f"the record is not a JSON event: {exc}"
    except EventValidationError as exc:
        return None, f"the record is not an event: {exc}"
    return event, None
