"""`SlackAdapter`: posts messages with ``chat.postMessage``, rotating its token if set up."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn

import httpx
from pydantic import BaseModel, SecretStr

from platypus.adapter import Action, Request
from platypus.apiadapter import ApiAdapter
from platypus.exceptions import PermanentError, RetryableError
from platypus.logging import get_logger
from platypus.vendorhttp import (
    USER_AGENT,
    async_client,
    json_or_none,
    mask_secrets_in,
    mask_secrets_in_code,
    parse_input,
    parse_retry_after,
    untrusted_certificate,
    verify_with,
)

from ._errors import HINTS, Verdict, verdict_for
from .models import PostMessageInput, PostMessageResult, SlackSettings

__all__ = ["SlackAdapter"]

_log = get_logger("platypus.adapters.slack")
_BODY_EXCERPT = 300


class SlackAdapter(ApiAdapter):
    """Posts messages to Slack channels as the app's bot.

    Slack has no idempotency key, so ``post_message`` is not idempotent: the
    runtime's delivery ledger keeps a replayed event from posting twice, but an
    attempt that timed out may have posted, and its retry posts again.
    """

    name = "slack"
    Settings = SlackSettings
    actions: ClassVar = {
        "post_message": Action(
            input=PostMessageInput,
            result=PostMessageResult,
            description="Post a message to a channel or thread (chat.postMessage).",
            idempotent=False,
        ),
    }

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        if not isinstance(settings, SlackSettings):
            raise TypeError(f"SlackAdapter needs SlackSettings, got {type(settings).__name__}")
        super().__init__(settings, connection=connection)
        self._config = settings
        self._token: SecretStr | None = None
        self._expires_at: float | None = None  # monotonic; None: does not expire
        self._refresh_token: SecretStr | None = None
        self._client_id = SecretStr("")
        self._client_secret = SecretStr("")
        self._secrets: list[SecretStr] = []  # the latest tokens, scrubbed from messages
        self._lock = asyncio.Lock()
        self.clock = time.monotonic
        """Monotonic seconds; replaceable, so tests can move time on."""
        self.refreshes = 0
        """How many times the access token was rotated (for logs and tests)."""

    # -- life ---------------------------------------------------------------

    def open_client(self) -> httpx.AsyncClient:
        """Read the token (and rotation secrets) and build the connection pool."""
        config = self._config
        if config.token is not None:
            self._token = self._remember(config.token.resolve())
        if config.refresh_token is not None:
            assert config.client_id is not None  # the settings validator checked
            assert config.client_secret is not None
            self._refresh_token = self._remember(config.refresh_token.resolve())
            self._client_id = config.client_id.resolve()
            self._client_secret = config.client_secret.resolve()
        return async_client(
            base_url=config.base_url + "/",
            headers={"User-Agent": USER_AGENT},
            timeout=config.timeout,
            max_connections=config.max_connections,
            verify=verify_with(config.ca_bundle, connection=self.connection),
            proxy=config.proxy,
        )

    # -- calls --------------------------------------------------------------

    async def call(self, request: Request) -> Any:
        """Post the message; return ``{"channel", "ts"}`` (and ``thread_ts`` for a reply)."""
        self.check_request(request)
        message = parse_input(
            PostMessageInput, request.payload, connection=self.connection, action=request.action
        )
        channel = message.channel or self._config.default_channel
        if not channel:
            raise PermanentError(
                f"connection {self.connection!r}: the message names no channel and the "
                "connection has no default_channel; map channel or set default_channel"
            )
        body = {**message.model_dump(exclude_none=True), "channel": channel}
        answer = await self._api("chat.postMessage", body)
        result = {"channel": answer.get("channel", channel), "ts": answer.get("ts")}
        if message.thread_ts is not None:
            result["thread_ts"] = message.thread_ts
        return result

    async def _api(self, method: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Call a Web API method with JSON; refresh a rotated token once if it expired."""
        token = await self._access_token()
        response = await self._post(method, body, token)
        answer, code = self._check(method, response)
        if code is None:
            return answer
        if verdict_for(code) is Verdict.REFRESH and self._config.rotates:
            _log.info("slack token expired; rotating it", connection=self.connection)
            await self._rotate(stale=token)
            response = await self._post(method, body, await self._access_token())
            answer, code = self._check(method, response)
            if code is None:
                return answer
            if verdict_for(code) is Verdict.REFRESH:
                self._fail(method, response, code, "even with a freshly rotated token")
        self._fail(method, response, code)

    async def _post(self, method: str, body: Mapping[str, Any], token: SecretStr) -> httpx.Response:
        client = self.client
        headers = {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "Content-Type": "application/json; charset=utf-8",
        }
        try:
            return await client.post(method, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Slack {method} timed out ({type(exc).__name__}) after "
                f"{self._config.timeout:g}s; retryable, but the message may have been "
                "posted and a retry posts it again (Slack has no idempotency key)"
            ) from None
        except httpx.TransportError as exc:
            self._untrusted(exc)
            raise RetryableError(
                f"Slack {method} failed: {type(exc).__name__}: "
                f"{self._scrub(str(exc)) or 'no detail'}; retryable. "
                f"Check that Slack is reachable at {self._config.base_url}"
            ) from None

    def _check(self, method: str, response: httpx.Response) -> tuple[Mapping[str, Any], str | None]:
        """(answer, None) for ``ok: true``, (answer, code) for ``ok: false``; else raise."""
        status = response.status_code
        answer = json_or_none(response)
        error = answer.get("error") if isinstance(answer, Mapping) else None
        code = self._scrub_code(str(error)) if error is not None else None
        if status == 429 or status == 408 or 500 <= status < 600:
            raise RetryableError(
                f"Slack {method} answered {status}{f' ({code})' if code else ''}: "
                f"{self._excerpt(response)} (retryable: a later attempt may succeed)",
                status_code=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                vendor_code=code or ("ratelimited" if status == 429 else None),
            )
        if not isinstance(answer, Mapping) or status != 200:
            raise PermanentError(
                f"Slack {method} answered {status}: {self._excerpt(response)} (not a Slack "
                "Web API answer; check the connection's base_url)",
                status_code=status,
                vendor_code=code,
            )
        if answer.get("ok") is True:
            return answer, None
        return answer, code or "unknown_error"

    def _fail(self, method: str, response: httpx.Response, code: str, why: str = "") -> NoReturn:
        status = response.status_code
        verdict = verdict_for(code)
        message = f"Slack {method} answered {code!r}"
        if why:
            message += f" {why}"
        if verdict is Verdict.RETRYABLE:
            raise RetryableError(
                f"{message} (retryable: a later attempt may succeed)",
                status_code=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                vendor_code=code,
            )
        hint = HINTS.get(code, "Slack refused the message; retrying cannot help")
        raise PermanentError(f"{message} ({hint})", status_code=status, vendor_code=code)

    # -- token rotation -------------------------------------------------------

    async def _access_token(self) -> SecretStr:
        """The token to send: rotated first when it expires within the margin."""
        token = self._token
        if not self._config.rotates:
            assert token is not None
            return token
        due = self._expires_at is not None and (
            self.clock() >= self._expires_at - self._config.token_refresh_margin
        )
        if token is None or due:
            await self._rotate(stale=token)
        assert self._token is not None
        return self._token

    async def _rotate(self, *, stale: SecretStr | None) -> None:
        """Exchange the refresh token for a new access token, unless another call just did."""
        async with self._lock:
            if self._token is not stale:
                return
            await self._exchange()

    async def _exchange(self) -> None:
        client = self.client
        assert self._refresh_token is not None
        method = "oauth.v2.access"
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token.get_secret_value(),
            "client_id": self._client_id.get_secret_value(),
            "client_secret": self._client_secret.get_secret_value(),
        }
        started = self.clock()
        try:
            response = await client.post(method, data=form)
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Slack {method} (token rotation) timed out ({type(exc).__name__}); retryable"
            ) from None
        except httpx.TransportError as exc:
            self._untrusted(exc)
            raise RetryableError(
                f"Slack {method} (token rotation) failed: {type(exc).__name__}: "
                f"{self._scrub(str(exc)) or 'no detail'}; retryable"
            ) from None
        answer, code = self._check(method, response)
        if code is not None or not answer.get("access_token"):
            self._fail(method, response, code or "no_access_token", "(token rotation)")
        self._token = self._remember(SecretStr(str(answer["access_token"])))
        lifetime = answer.get("expires_in")
        self._expires_at = started + float(lifetime) if isinstance(lifetime, int | float) else None
        self.refreshes += 1
        new_refresh = answer.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh:
            self._refresh_token = self._remember(SecretStr(new_refresh))
            self._persist_refresh_token(new_refresh)
        _log.info("slack token rotated", connection=self.connection, expires_in=lifetime)

    def _persist_refresh_token(self, value: str) -> None:
        """Write a new refresh token back to its file: Slack revoked the one we used."""
        ref = self._config.refresh_token
        if ref is None:
            return
        if ref.file is None:
            _log.warning(
                "slack rotated the refresh token; the one in the environment variable is "
                "now revoked, so a restart needs a new one (use refresh_token: {file: PATH})",
                connection=self.connection,
                variable=ref.env,
            )
            return
        temporary = ref.file.with_name(f".{ref.file.name}.new")
        try:
            temporary.write_text(value + "\n", encoding="utf-8")
            temporary.chmod(0o600)
            os.replace(temporary, ref.file)
        except OSError as exc:
            _log.warning(
                "cannot write the rotated slack refresh token back; a restart needs a new one",
                connection=self.connection,
                file=str(ref.file),
                reason=exc.strerror,
            )

    # -- helpers ----------------------------------------------------------------

    def _remember(self, secret: SecretStr) -> SecretStr:
        self._secrets = [*self._secrets[-7:], secret]
        return secret

    def _excerpt(self, response: httpx.Response) -> str:
        return self._scrub(response.text[:_BODY_EXCERPT].strip()) or "(empty body)"

    def _scrub(self, text: str) -> str:
        # Slack or a library may echo a credential back; never pass it on.
        return mask_secrets_in(text, [self._client_secret, *self._secrets])

    def _scrub_code(self, code: str) -> str:
        return mask_secrets_in_code(code, [self._client_secret, *self._secrets])

    def _untrusted(self, exc: httpx.TransportError) -> None:
        """A certificate this connection does not trust is no transient failure."""
        if untrusted_certificate(exc):
            raise PermanentError(
                f"Slack at {self._config.base_url}: the TLS certificate was not trusted "
                f"({self._scrub(str(exc))[:200] or type(exc).__name__}); set the "
                "connection's ca_bundle to the CA that signed it"
            ) from None

    def __repr__(self) -> str:
        return f"SlackAdapter(connection={self.connection!r}, base_url={self._config.base_url!r})"
