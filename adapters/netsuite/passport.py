"""Token-based authentication (TBA): the ``tokenPassport`` header of every SOAP call.

NetSuite's SuiteTalk documentation ("The tokenPassport Complex Type") defines
the signature as base64(HMAC-SHA256(key, base)) with::

    base = account & consumerKey & tokenId & nonce & timestamp
    key  = consumerSecret & tokenSecret

joined with ``&``, nothing URL-encoded (unlike OAuth 1.0 for REST). Every call
carries a new nonce and timestamp, so a passport is never reused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from pydantic import SecretStr

__all__ = ["ALGORITHM", "Passport", "new_passport", "signature"]

ALGORITHM = "HMAC-SHA256"
"""The ``algorithm`` attribute of the passport's signature element."""


def signature(
    *,
    account: str,
    consumer_key: str,
    token_id: str,
    nonce: str,
    timestamp: int,
    consumer_secret: SecretStr,
    token_secret: SecretStr,
) -> str:
    """The passport signature: base64 HMAC-SHA256 of the documented base string."""
    base = "&".join([account, consumer_key, token_id, nonce, str(timestamp)])
    key = f"{consumer_secret.get_secret_value()}&{token_secret.get_secret_value()}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class Passport:
    """The fields of one ``tokenPassport``; holds no secret, only the signature."""

    account: str
    consumer_key: str
    token_id: str
    nonce: str
    timestamp: int
    signature: str


def new_passport(
    *,
    account: str,
    consumer_key: str,
    token_id: str,
    consumer_secret: SecretStr,
    token_secret: SecretStr,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> Passport:
    """A freshly signed passport; ``nonce`` and ``timestamp`` are generated unless given."""
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    timestamp = timestamp if timestamp is not None else int(time.time())
    return Passport(
        account=account,
        consumer_key=consumer_key,
        token_id=token_id,
        nonce=nonce,
        timestamp=timestamp,
        signature=signature(
            account=account,
            consumer_key=consumer_key,
            token_id=token_id,
            nonce=nonce,
            timestamp=timestamp,
            consumer_secret=consumer_secret,
            token_secret=token_secret,
        ),
    )
