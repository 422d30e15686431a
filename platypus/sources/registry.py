"""Webhook decoders by name: the built-ins and the ``platypus.sources`` entry points.

A source in ``platypus.yaml`` names its decoder (``decoder: zuora_callout``); a
package adds one by declaring an entry point in the ``platypus.sources`` group
(``my_vendor = "my_package.webhooks:MyDecoder"``). Adding a vendor touches no
engine file.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points

from platypus.exceptions import ConfigurationError
from platypus.sources.decoder import Decoder

__all__ = ["DecoderRegistry"]

ENTRY_POINT_GROUP = "platypus.sources"

_BUILTIN: dict[str, str] = {
    "hmac": "platypus.sources.signed:SignedWebhookDecoder",
    "salesforce_outbound": "platypus.sources.salesforce:SalesforceOutboundDecoder",
    "zuora_callout": "platypus.sources.zuora:ZuoraCalloutDecoder",
}


class DecoderRegistry:
    """Decoder classes by name, imported on first use."""

    def __init__(self, decoders: Mapping[str, str | type[Decoder]] | None = None) -> None:
        self._refs: dict[str, str | type[Decoder]] = dict(decoders or {})
        self._loaded: dict[str, type[Decoder]] = {}

    @classmethod
    def default(cls) -> DecoderRegistry:
        """Built-in decoders plus every installed ``platypus.sources`` entry point."""
        refs: dict[str, str | type[Decoder]] = dict(_BUILTIN)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            refs[ep.name] = ep.value
        return cls(refs)

    def register(self, name: str, decoder: str | type[Decoder]) -> None:
        """Add a decoder class (or a ``"module:Class"`` reference) under ``name``."""
        self._refs[name] = decoder
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._refs))

    def get(self, name: str) -> type[Decoder]:
        """The decoder class called ``name``."""
        if name in self._loaded:
            return self._loaded[name]
        ref = self._refs.get(name)
        if ref is None:
            close = difflib.get_close_matches(name, list(self._refs), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"unknown webhook decoder {name!r} (installed: {', '.join(self)}){hint}"
            )
        decoder = _import(name, ref) if isinstance(ref, str) else ref
        self._loaded[name] = decoder
        return decoder


def _import(name: str, ref: str) -> type[Decoder]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"webhook decoder {name!r} cannot be imported from {module_name!r}: {exc}. "
            "Install the package that provides it."
        ) from exc
    decoder = getattr(module, attr, None)
    if not (isinstance(decoder, type) and issubclass(decoder, Decoder)):
        raise ConfigurationError(f"{ref!r} (webhook decoder {name!r}) is not a Decoder subclass")
    return decoder
