"""What every webhook decoder is: a request in, authenticated, turned into events.

A decoder knows one vendor's wire format. The receiver (`platypus.sources.receiver`)
does the rest the same way for every vendor: the body limit, the replay store, the
validation against the event schemas and the durable append through the ingress.

A decoder

* checks the request is the vendor's (`Decoder.authenticate`, raising `UnauthorizedError`);
* names the vendor's delivery id, if the vendor sends one (`Decoder.delivery_id`);
* turns the body into CloudEvent-shaped dicts (`Decoder.decode`, raising
  `MalformedPayloadError` for a body it cannot read);
* renders the answers (`Decoder.reply`): JSON by default, a SOAP envelope for
  Salesforce.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platypus.exceptions import ConfigurationError, PlatypusError

__all__ = [
    "Decoder",
    "Delivery",
    "MalformedPayloadError",
    "Reply",
    "SourceSettings",
    "UnauthorizedError",
    "UnmappableError",
    "WebhookRefusedError",
    "WebhookRequest",
    "as_number",
]

_NUMBER = re.compile(r"^-?\d{1,18}(\.\d{1,18})?$")


def as_number(value: Any) -> Any:
    """A decimal string as a JSON number (vendors send amounts as text); else unchanged.

    Stored events carry numbers, so flows compare ``data.amount >= `1000``` as numbers.
    """
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        parsed: Any = json.loads(value.strip())
        return parsed
    return value


# The one body every authentication failure gets: which check failed is recorded
# with the rejection, never told to the caller.
UNAUTHORIZED_BODY: dict[str, Any] = {"error": "unauthorized"}


class WebhookRefusedError(PlatypusError):
    """A webhook request refused by its decoder, with the status to answer."""

    status: ClassVar[int] = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnauthorizedError(WebhookRefusedError):
    """Bad credentials, a bad signature, or a stale timestamp (401, no detail given)."""

    status = 401


class MalformedPayloadError(WebhookRefusedError):
    """A body that cannot be read as the vendor's format (400)."""

    status = 400


class UnmappableError(WebhookRefusedError):
    """A readable payload that lacks what its event needs (422)."""

    status = 422


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One webhook call as received: header names are lower-case, the body is raw bytes."""

    source: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower-case (``""`` when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a decoder read from a request.

    ``events`` are CloudEvent-shaped dicts; the ingress validates them (envelope
    and data) before anything is appended. ``ignored`` says, for each notification
    that yields no event (a ping, an opportunity at another stage), why not.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to a webhook call, ready to send."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


Outcome = Literal["accepted", "refused", "unauthorized"]


class SourceSettings(BaseModel):
    """Settings every decoder has; each decoder extends them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_source: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "CloudEvents `source` of the events this webhook yields; the decoder's default "
            "(e.g. /zuora/callout) when unset. Events de-duplicate on (source, id)."
        ),
    )
    delivery_id_header: str | None = Field(
        default=None,
        description=(
            "Header carrying the vendor's unique delivery id, if it sends one. A delivery id "
            "seen before is acknowledged without appending again (same body) or refused "
            "with 409 (different body)."
        ),
    )


class Decoder(ABC):
    """One vendor's webhook format. Subclasses set ``settings_model`` and ``default_source``."""

    settings_model: ClassVar[type[SourceSettings]] = SourceSettings
    default_source: ClassVar[str] = "/webhook"
    # What the vendor posts, for the OpenAPI document.
    media_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def __init__(self, name: str, settings: SourceSettings) -> None:
        self.name = name
        self.settings = settings

    @classmethod
    def from_settings(cls, name: str, raw: Mapping[str, Any]) -> Self:
        """Validate ``raw`` settings of source ``name``; problems are a `ConfigurationError`."""
        try:
            settings = cls.settings_model.model_validate(dict(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}"
                for err in exc.errors(include_input=False)
            )
            raise ConfigurationError(f"sources.{name}: {problems}") from None
        return cls(name, settings)

    @property
    def event_source(self) -> str:
        """The CloudEvents ``source`` of this webhook's events."""
        return self.settings.event_source or self.default_source

    @abstractmethod
    def authenticate(self, request: WebhookRequest) -> None:
        """Raise `UnauthorizedError` unless the request provably comes from the vendor."""

    @abstractmethod
    def decode(self, request: WebhookRequest) -> Delivery:
        """The events the body carries; `MalformedPayloadError` if it cannot be read."""

    def delivery_id(self, request: WebhookRequest) -> str | None:
        """The vendor's id of this delivery, when it sends one."""
        header = self.settings.delivery_id_header
        value = request.headers.get(header.lower(), "").strip() if header else ""
        return value or None

    def challenge(self) -> Mapping[str, str]:
        """Headers sent with every 401 (``WWW-Authenticate`` for basic auth)."""
        return {}

    def reply(self, outcome: Outcome, status: int, body: Mapping[str, Any]) -> Reply:
        """Render an answer; JSON unless the vendor expects something else."""
        headers = self.challenge() if outcome == "unauthorized" else {}
        return Reply(status, json.dumps(body, ensure_ascii=False).encode(), headers=headers)

    def openapi_operation(self, error: Mapping[str, Any]) -> dict[str, Any]:
        """This webhook's OpenAPI operation; ``error`` is the schema of a refusal."""

        def answer(description: str, schema: Mapping[str, Any] = error) -> dict[str, Any]:
            return {"description": description, "content": {"application/json": {"schema": schema}}}

        return {
            "operationId": f"webhook_{self.name}",
            "summary": f"{type(self).__name__} webhook; events have source {self.event_source}.",
            "requestBody": {
                "required": True,
                "content": {media: {"schema": {}} for media in self.media_types},
            },
            "responses": {
                "200": answer(
                    "Accepted: every event is on disk (or was already), or nothing applied.",
                    {"type": "object"},
                ),
                "400": answer("The body cannot be read as the vendor's format."),
                "401": answer(
                    "Bad credentials, signature or timestamp (one body whatever failed).",
                    {"type": "object", "properties": {"error": {"const": "unauthorized"}}},
                ),
                "404": answer("No such source."),
                "409": answer("A delivery id already accepted with another body."),
                "413": answer("The body is over the size limit."),
                "422": answer("The payload maps to an event that does not match its schema."),
            },
        }
