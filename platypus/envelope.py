"""The event envelope: CloudEvents 1.0 in structured JSON mode.

Platypus adds one rule to the spec: ``subject`` is required, because it carries
the business key (opportunity id, worker id) that orders events and picks their
partition.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platypus.jsondata import Timestamp

__all__ = ["CloudEvent"]

# CloudEvents 1.0: extension names are lower-case ASCII letters and digits.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,40}$")


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event as it arrives and as it is stored, unchanged.

    ``type`` names a registered schema and its version, for example
    ``sales.opportunity.closed_won.v1``; ``data`` is validated against it.
    Extension attributes are kept as they are (``event.model_extra``).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = Field(description="CloudEvents version; always 1.0.")
    id: str = Field(min_length=1, max_length=256, description="Unique per source.")
    source: str = Field(min_length=1, max_length=1024, description="URI-reference of the emitter.")
    type: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "Registered event type with version suffix, e.g. sales.opportunity.closed_won.v1."
        ),
    )
    subject: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "Business key (opportunity id, worker id): orders events and picks the partition."
        ),
    )
    time: Timestamp | None = Field(
        default=None, description="When the occurrence happened (RFC 3339, with its offset)."
    )
    datacontenttype: str | None = Field(default="application/json")
    dataschema: str | None = None
    data: Any = None

    @model_validator(mode="after")
    def _check_extensions(self) -> CloudEvent:
        for name in self.model_extra or {}:
            if name == "data_base64":
                raise ValueError("data_base64 is not supported: send JSON data in 'data'")
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"extension attribute {name!r} must be lower-case letters and digits only"
                )
        return self

    @property
    def key(self) -> str:
        """The subject: the ordering key unless ``ordering:`` names another
        (`platypus.keys.ordering_key` decides)."""
        return self.subject
