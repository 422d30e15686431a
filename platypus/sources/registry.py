"""Webhook decoders by name: the built-ins and the ``platypus.sources`` entry points.

A source in ``platypus.yaml`` names its decoder (``decoder: zuora_callout``); a
package adds one by declaring an entry point in the ``platypus.sources`` group
(``my_vendor = "my_package.webhooks:MyDecoder"``). Adding a vendor touches no
engine file.
"""

from __future__ import annotations

from collections.abc import Mapping

from platypus.plugins import PluginRegistry
from platypus.sources.decoder import Decoder

__all__ = ["DecoderRegistry"]

ENTRY_POINT_GROUP = "platypus.sources"

_BUILTIN: dict[str, str] = {
    "hmac": "platypus.sources.signed:SignedWebhookDecoder",
    "salesforce_outbound": "platypus.sources.salesforce:SalesforceOutboundDecoder",
    "zuora_callout": "platypus.sources.zuora:ZuoraCalloutDecoder",
}


class DecoderRegistry(PluginRegistry[Decoder]):
    """Decoder classes by name, imported on first use."""

    def __init__(self, decoders: Mapping[str, str | type[Decoder]] | None = None) -> None:
        super().__init__(Decoder, "webhook decoder", decoders)  # type: ignore[type-abstract]

    @classmethod
    def default(cls) -> DecoderRegistry:
        """Built-in decoders plus every installed ``platypus.sources`` entry point."""
        registry = cls()
        registry._with_entry_points(ENTRY_POINT_GROUP, _BUILTIN)
        return registry
