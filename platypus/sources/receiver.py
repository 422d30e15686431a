"""``POST /webhooks/{source}``: the same steps for every vendor, around its decoder.

1. The body is read up to the ingress limit (413 above it).
2. The decoder authenticates the request: 401 with one body whatever failed
   (basic auth, token, signature, stale timestamp, org id); the reason is recorded.
3. A delivery id seen before is acknowledged (same body: a re-delivery) or refused
   with 409 (different body: a replayed or reused id).
4. The decoder reads the body (400 when it cannot) into events.
5. The ingress validates them and appends them durably, all or none (422 with
   every error when one is invalid). An event whose (source, id) is already in the
   log is acknowledged, not appended again.
6. The answer is 200 (what the vendors expect), in the decoder's format.

Every refusal is recorded in the rejected store with the vendor's body as sent.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from platypus.config import SourceSpec
from platypus.sources.decoder import (
    UNAUTHORIZED_BODY,
    Decoder,
    Reply,
    UnauthorizedError,
    WebhookRefusedError,
    WebhookRequest,
)
from platypus.sources.registry import DecoderRegistry
from platypus.sources.replay import DeliveryMemory, SeenDeliveries

if TYPE_CHECKING:
    from platypus.ingress import Ingress

__all__ = ["WEBHOOKS_DB", "WebhookReceiver"]

WEBHOOKS_DB = "webhooks.db"

_log = structlog.get_logger("platypus.sources")


class WebhookReceiver:
    """Turns webhook calls into events through their source's decoder and the ingress."""

    def __init__(
        self,
        ingress: Ingress,
        decoders: Mapping[str, Decoder],
        seen: DeliveryMemory,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ingress = ingress
        self.decoders = dict(decoders)
        self.seen = seen
        self.clock = clock

    @classmethod
    def from_config(
        cls,
        ingress: Ingress,
        sources: Mapping[str, SourceSpec],
        data_dir: Path | None,
        *,
        registry: DecoderRegistry | None = None,
        seen: DeliveryMemory | None = None,
    ) -> WebhookReceiver:
        """Build every configured source's decoder (resolving its secrets now).

        ``seen`` keeps delivery ids (default: ``<data_dir>/webhooks.db``; replicas
        of ``platypus web`` share `platypus.ops.dedupe.SharedDedupe` instead).
        """
        found = registry or DecoderRegistry.default()
        decoders = {
            name: found.get(spec.decoder).from_settings(name, spec.settings)
            for name, spec in sources.items()
        }
        if seen is None:
            seen = SeenDeliveries(None if data_dir is None else data_dir / WEBHOOKS_DB)
        return cls(ingress, decoders, seen)

    async def receive(self, source: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Authenticate, de-duplicate, decode, validate and append one webhook call."""
        decoder = self.decoders.get(source)
        if decoder is None:
            result = await self.ingress.refuse(404, f"webhook {source!r}: no such source", body)
            return Reply(404, json.dumps(result.body).encode())
        request = WebhookRequest(
            source, {k.lower(): v for k, v in headers.items()}, body, self.clock()
        )
        try:
            decoder.authenticate(request)
        except UnauthorizedError as exc:
            await self.ingress.refuse(401, f"webhook {source}: unauthorized: {exc.reason}", body)
            return decoder.reply("unauthorized", 401, UNAUTHORIZED_BODY)
        except WebhookRefusedError as exc:
            return await self._refuse(decoder, exc.status, exc.reason, body)

        delivery_id = decoder.delivery_id(request)
        digest = hashlib.sha256(body).hexdigest()
        if delivery_id is not None:
            seen = await self.seen.check(source, delivery_id, digest)
            if seen == "same":
                _log.info("webhook re-delivered", source=source, delivery_id=delivery_id)
                return decoder.reply(
                    "accepted",
                    200,
                    {"accepted": 0, "duplicates": 0, "events": [], "redelivery": True},
                )
            if seen == "different":
                return await self._refuse(
                    decoder,
                    409,
                    f"delivery id {delivery_id!r} was already accepted with another body "
                    "(a replayed or reused delivery id)",
                    body,
                )

        try:
            delivery = decoder.decode(request)
        except WebhookRefusedError as exc:
            return await self._refuse(decoder, exc.status, exc.reason, body)

        answer: dict[str, Any] = {"accepted": 0, "duplicates": 0, "events": []}
        if delivery.events:
            result = await self.ingress.accept_events(
                delivery.events, body, context=f"webhook {source}: "
            )
            if result.status != 202:
                return decoder.reply("refused", result.status, result.body)
            answer = dict(result.body)
        answer["ignored"] = delivery.ignored
        if delivery_id is not None:
            await self.seen.remember(source, delivery_id, digest)
        _log.info(
            "webhook accepted",
            source=source,
            accepted=answer["accepted"],
            duplicates=answer["duplicates"],
            ignored=len(delivery.ignored),
        )
        return decoder.reply("accepted", 200, answer)

    async def refuse(self, source: str, status: int, reason: str, body: bytes = b"") -> Reply:
        """Record and answer a call refused before its body was read (too large, say)."""
        decoder = self.decoders.get(source)
        if decoder is None:
            result = await self.ingress.refuse(status, f"webhook {source!r}: {reason}", body)
            return Reply(status, json.dumps(result.body).encode())
        return await self._refuse(decoder, status, reason, body)

    async def _refuse(self, decoder: Decoder, status: int, reason: str, body: bytes) -> Reply:
        result = await self.ingress.refuse(status, f"webhook {decoder.name}: {reason}", body)
        return decoder.reply("refused", status, result.body)

    def close(self) -> None:
        """Close the delivery-id store."""
        self.seen.close()
