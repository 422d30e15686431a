"""Event sources: vendors' webhooks taken in as they are sent, at ``POST /webhooks/<name>``.

Each source in ``platypus.yaml`` names a decoder from the `DecoderRegistry`
(``zuora_callout``, ``salesforce_outbound``, ``hmac``, or a plugin from the
``platypus.sources`` entry-point group). The decoder authenticates the vendor and
maps its payload to registered event types; the `WebhookReceiver` does the rest
the same way for every vendor: replay checks, validation and the durable append
through the ingress. docs/sources.md describes each source.
"""

from platypus.sources.decoder import (
    Decoder,
    Delivery,
    MalformedPayloadError,
    Reply,
    SourceSettings,
    UnauthorizedError,
    UnmappableError,
    WebhookRefusedError,
    WebhookRequest,
)
from platypus.sources.mapping import PRESETS, MappingSpec
from platypus.sources.receiver import WebhookReceiver
from platypus.sources.registry import DecoderRegistry
from platypus.sources.replay import SeenDeliveries

__all__ = [
    "PRESETS",
    "Decoder",
    "DecoderRegistry",
    "Delivery",
    "MalformedPayloadError",
    "MappingSpec",
    "Reply",
    "SeenDeliveries",
    "SourceSettings",
    "UnauthorizedError",
    "UnmappableError",
    "WebhookReceiver",
    "WebhookRefusedError",
    "WebhookRequest",
]
