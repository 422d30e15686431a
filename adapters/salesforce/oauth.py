"""Salesforce's OAuth 2.0 token endpoint: what each grant sends, and what its answer means.

``POST <login host>/services/oauth2/token`` with a form, one grant per auth type:

* ``jwt``: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and an RS256
  ``assertion`` whose ``iss`` is the consumer key, ``sub`` the username, ``aud``
  Salesforce's login server (https://login.salesforce.com, or
  https://test.salesforce.com for a sandbox: never the My Domain, which Salesforce
  refuses with ``invalid_grant: audience is invalid``) and ``exp`` at most three
  minutes ahead. The request itself may go to the My Domain.
* ``client_credentials``: ``grant_type=client_credentials`` with ``client_id`` and
  ``client_secret``, on the org's My Domain only.
* ``refresh_token``: ``grant_type=refresh_token`` with ``client_id``,
  ``refresh_token`` and, when the app requires it, ``client_secret``.

A success is HTTP 200 with ``access_token``, ``instance_url``, ``id``,
``token_type`` (``Bearer``), ``scope`` and, for most grants, ``issued_at`` and
``signature``; a rotating refresh token comes back as ``refresh_token``. A
refusal is a 400 or 401 with ``{"error", "error_description"}``: ``invalid_grant``,
``invalid_client_id``, ``invalid_client``, ``unsupported_grant_type``,
``invalid_request``, ``inactive_user``, ``inactive_org``, all permanent until
someone fixes the app or the user, and ``rate_limit_exceeded``, retryable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from platypus.exceptions import DeliveryError, PermanentError, RetryableError

from .settings import ClientCredentialsAuth, JwtAuth, RefreshTokenAuth

__all__ = [
    "JWT_GRANT",
    "JWT_LIFETIME",
    "PRODUCTION_AUDIENCE",
    "SANDBOX_AUDIENCE",
    "LoginRefusedError",
    "TokenGrant",
    "jwt_audience",
    "jwt_claims",
    "read_token_answer",
    "token_form",
]

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME = 180  # seconds; Salesforce wants the assertion within 3 minutes of exp
PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"

OAuthAuth = ClientCredentialsAuth | JwtAuth | RefreshTokenAuth

RETRYABLE_ERRORS = frozenset({"rate_limit_exceeded", "server_error", "temporarily_unavailable"})

_HINTS = {
    "invalid_client_id": "check auth.consumer_key: the app's consumer key",
    "invalid_client": "check auth.consumer_secret: the app's consumer secret",
    "unsupported_grant_type": "enable this OAuth flow in the app's OAuth settings",
    "inactive_user": "the integration user is frozen or inactive; reactivate it",
    "inactive_org": "the org is locked, deleted or not reachable at this domain",
    "invalid_request": "check auth.domain: the flow may need the org's My Domain",
}
_GRANT_HINTS = {
    "audience is invalid": (
        "the assertion's aud must be https://login.salesforce.com or, for a sandbox, "
        "https://test.salesforce.com; set auth.audience"
    ),
    "user hasn't approved this consumer": (
        "pre-authorize the user for the app (Permitted Users: admin approved users are "
        "pre-authorized; give the user's profile or permission set the app)"
    ),
    "expired access/refresh token": (
        "the refresh token was revoked or expired; authorize the app again for a new one"
    ),
    "no client credentials user enabled": (
        "enable the client credentials flow in the app and set its Run As user"
    ),
    "invalid assertion": "check auth.private_key: the app must hold its certificate",
    "expired authorization code": "the assertion expired: check this machine's clock",
}


class LoginRefusedError(PermanentError):
    """Salesforce refused the connection's credentials: every call fails until someone acts.

    ``alert`` marks it for paging, like NetSuite's refused credentials.
    """

    alert = True


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token endpoint's answer: the session and where to use it."""

    access_token: SecretStr
    instance_url: str
    identity: str | None = None
    refresh_token: SecretStr | None = None


def jwt_audience(auth: JwtAuth) -> str:
    """The assertion's ``aud``: the login server of production or of sandboxes."""
    if auth.audience is not None:
        return auth.audience
    domain = auth.domain.lower()
    sandbox = domain == "test" or domain.endswith(".sandbox.my") or ".sandbox." in domain
    return SANDBOX_AUDIENCE if sandbox else PRODUCTION_AUDIENCE


def jwt_claims(auth: JwtAuth, now: float) -> dict[str, Any]:
    """The JWT bearer assertion's claims at time ``now`` (seconds since the epoch)."""
    return {
        "iss": auth.consumer_key,
        "sub": auth.username,
        "aud": jwt_audience(auth),
        "exp": int(now) + JWT_LIFETIME,
    }


def token_form(
    auth: OAuthAuth,
    *,
    assertion: str | None = None,
    consumer_secret: str | None = None,
    refresh_token: str | None = None,
) -> dict[str, str]:
    """The form posted to the token endpoint for ``auth``'s grant."""
    if isinstance(auth, JwtAuth):
        if assertion is None:
            raise ValueError("the JWT bearer grant needs the signed assertion")
        return {"grant_type": JWT_GRANT, "assertion": assertion}
    if isinstance(auth, ClientCredentialsAuth):
        if not consumer_secret:
            raise ValueError("the client credentials grant needs the consumer secret")
        return {
            "grant_type": "client_credentials",
            "client_id": auth.consumer_key,
            "client_secret": consumer_secret,
        }
    if not refresh_token:
        raise ValueError("the refresh token grant needs the refresh token")
    form = {
        "grant_type": "refresh_token",
        "client_id": auth.consumer_key,
        "refresh_token": refresh_token,
    }
    if consumer_secret:
        form["client_secret"] = consumer_secret
    return form


def read_token_answer(
    where: str, status: int, body: Any, scrub: Callable[[str], str] = str
) -> TokenGrant | DeliveryError:
    """The `TokenGrant` of a 200, or the error the answer amounts to."""
    answer = body if isinstance(body, Mapping) else {}
    token, instance = answer.get("access_token"), answer.get("instance_url")
    if status == 200 and isinstance(token, str) and token and isinstance(instance, str):
        rotated = answer.get("refresh_token")
        identity = answer.get("id")
        return TokenGrant(
            access_token=SecretStr(token),
            instance_url=instance.rstrip("/"),
            identity=identity if isinstance(identity, str) else None,
            refresh_token=SecretStr(rotated) if isinstance(rotated, str) and rotated else None,
        )
    code = str(answer.get("error") or "") or None
    description = scrub(str(answer.get("error_description") or ""))[:300]
    if status == 200:
        text = "answered 200 without access_token and instance_url"
    else:
        text = f"answered {status}" + (f": {code}: {description}" if code else "")
    message = f"Salesforce {where} {text}"
    if (code in RETRYABLE_ERRORS) or status >= 500 or status == 429:
        return RetryableError(f"{message}; retryable", status_code=status, vendor_code=code)
    hint = _GRANT_HINTS.get(description.lower()) if code == "invalid_grant" else None
    hint = hint or _HINTS.get(code or "") or "check the connection's auth settings and secrets"
    return LoginRefusedError(f"{message}; {hint}", status_code=status, vendor_code=code)
