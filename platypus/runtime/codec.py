"""Reading a stored record as a CloudEvent, in either binding a topic may hold.

Records appended by Platypus itself are in structured mode: the value is the
JSON event (``content-type: application/cloudevents+json``). Records another
producer wrote to a Kafka topic may be in binary mode: the value is ``data``
and the attributes are ``ce_*`` headers. Both are read here, for every runtime.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["decode_record"]

_CE_PREFIX = "ce_"


def decode_record(
    value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> tuple[dict[str, Any] | None, str | None]:
    """A record as a structured CloudEvent dict, or (None, why not).

    Binary mode (``ce_*`` headers) is recognised by its ``ce_specversion``
    header; anything else is read as structured mode.
    """
    found = {name.lower(): raw for name, raw in headers}
    if _CE_PREFIX + "specversion" not in found:
        try:
            event = json.loads(value or b"")
        except ValueError as exc:
            return None, f"the record is not a JSON event: {exc}"
        if not isinstance(event, dict):
            return None, "the record is not a JSON event: a CloudEvent is a JSON object"
        return event, None
    event = {
        name[len(_CE_PREFIX) :]: raw.decode("utf-8", "replace")
        for name, raw in found.items()
        if name.startswith(_CE_PREFIX)
    }
    content_type = found.get("content-type", b"application/json").decode("utf-8", "replace")
    event["datacontenttype"] = content_type
    if value is None:
        event["data"] = None
    elif "json" in content_type:
        try:
            event["data"] = json.loads(value)
        except ValueError as exc:
            return None, f"the record's data is not JSON although its content-type is: {exc}"
    else:
        # Kept so the schema check reports it, rather than dropped.
        event["data"] = base64.b64encode(value).decode()
    return event, None
