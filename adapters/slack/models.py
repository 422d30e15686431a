"""Settings of a ``slack`` connection and the typed input of ``post_message``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platypus.adapter import FreeText, one_of_required
from platypus.retry import Duration
from platypus.secrets import SecretRef

__all__ = ["PostMessageInput", "PostMessageResult", "SlackSettings"]


def _unset_if_empty(value: object) -> object:
    # platypus.yaml reads settings from the environment: ${NAME:-} is "" when unset.
    return None if value == "" else value


class SlackSettings(BaseModel):
    """Settings of a ``slack`` connection: one Slack app's bot in one workspace.

    A bot token (``xoxb-``) does not expire, unless the app has token rotation
    enabled: then give ``refresh_token``, ``client_id`` and ``client_secret`` too,
    and the adapter exchanges them for a new access token through
    ``oauth.v2.access`` before the current one expires, or when Slack answers
    ``token_expired``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretRef | None = Field(
        default=None,
        description=(
            "Bot token (xoxb-...), as {env: NAME} or {file: PATH}. May be left out "
            "when rotation is set up: the first call then fetches one."
        ),
    )
    base_url: str = Field(default="https://slack.com/api", description="Root of the Slack Web API.")
    default_channel: str | None = Field(
        default=None,
        description="Channel (ID such as C0123ABCD, or #name) of messages that name none.",
    )
    timeout: Duration = Field(default=10.0, description="Timeout of one HTTP request (e.g. 10s).")
    refresh_token: SecretRef | None = Field(
        default=None,
        description=(
            "Token rotation: the refresh token (xoxe-1-...). Slack revokes it once used; "
            "with {file: PATH} the adapter writes the new one back to the file."
        ),
    )
    client_id: SecretRef | None = Field(
        default=None, description="Token rotation: the Slack app's client ID."
    )
    client_secret: SecretRef | None = Field(
        default=None, description="Token rotation: the Slack app's client secret."
    )
    token_refresh_margin: Duration = Field(
        default=300.0,
        description="Token rotation: refresh this long before the access token expires.",
    )
    max_connections: int = Field(
        default=10, ge=1, description="Most connections open to Slack at once."
    )

    ca_bundle: Path | None = Field(
        default=None,
        description=(
            "CA certificates (PEM) that verify Slack's TLS certificate instead of the "
            "system's (the CA of a TLS-inspecting proxy, say)."
        ),
    )
    proxy: str | None = Field(
        default=None,
        description=(
            "HTTP(S) proxy for every call, e.g. http://proxy.internal:3128; null: "
            "HTTPS_PROXY and HTTP_PROXY from the environment."
        ),
    )

    _empty_is_unset = field_validator("ca_bundle", "proxy", mode="before")(_unset_if_empty)

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = httpx.URL(value)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("must be an http:// or https:// proxy URL, e.g. http://proxy:3128")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("must be an absolute https:// URL such as https://slack.com/api")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_auth(self) -> SlackSettings:
        rotation = [self.refresh_token, self.client_id, self.client_secret]
        if any(r is not None for r in rotation) and not all(r is not None for r in rotation):
            raise ValueError(
                "token rotation needs refresh_token, client_id and client_secret, all three"
            )
        if self.token is None and self.refresh_token is None:
            raise ValueError("give the bot token as token: {env: NAME} (or set up rotation)")
        return self

    @property
    def rotates(self) -> bool:
        """Whether token rotation is set up."""
        return self.refresh_token is not None


class PostMessageInput(BaseModel):
    """Input of ``post_message``: the body of ``chat.postMessage``.

    ``text`` and ``blocks`` are free text: Slack keeps messages and anyone in the
    channel can search them, so personal data mapped there must be allowed by the
    step (``allow_personal_data``).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra=one_of_required(("text", "blocks"))
    )

    channel: str | None = Field(
        default=None,
        min_length=1,
        description="Channel ID (C0123ABCD) or #name; null: the connection's default_channel.",
    )
    text: Annotated[str | None, FreeText] = Field(
        default=None,
        description="Message text (mrkdwn); with blocks, the notification fallback.",
    )
    blocks: Annotated[list[dict[str, Any]] | None, FreeText] = Field(
        default=None, max_length=50, description="Block Kit blocks; at most 50."
    )
    thread_ts: str | None = Field(
        default=None, description="ts of the parent message, to reply in its thread."
    )
    reply_broadcast: bool | None = Field(
        default=None, description="Also show a thread reply in the channel."
    )
    unfurl_links: bool | None = Field(default=None, description="Unfurl links to text.")
    unfurl_media: bool | None = Field(default=None, description="Unfurl media.")
    mrkdwn: bool | None = Field(default=None, description="Format text as mrkdwn (default true).")

    @model_validator(mode="after")
    def _check_content(self) -> PostMessageInput:
        if not self.text and not self.blocks:
            raise ValueError("a message needs text or blocks")
        return self


class PostMessageResult(BaseModel):
    """What ``post_message`` returns: where the message is, to reply in its thread."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(description="The channel's ID (C0123ABCD), even if #name was given.")
    ts: str | None = Field(description="The message's ts: its id within the channel.")
    thread_ts: str | None = Field(default=None, description="The parent's ts, for a reply.")
