"""Helpers shared by the HTTP adapters."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from platypus.vendorhttp import USER_AGENT, json_or_none, mask_secrets_in


def test_the_user_agent_names_platypus() -> None:
    assert USER_AGENT.startswith("platypus")


def test_a_body_that_is_empty_or_not_json_reads_as_none() -> None:
    assert json_or_none(httpx.Response(200, content=b"")) is None
    assert json_or_none(httpx.Response(200, content=b"<html>")) is None
    assert json_or_none(httpx.Response(200, json={"ok": True})) == {"ok": True}


def test_every_secret_value_is_masked_and_empty_ones_are_ignored() -> None:
    secrets = [SecretStr("tok-1"), SecretStr(""), SecretStr("pw-2")]
    assert mask_secrets_in("echo tok-1 and pw-2", secrets) == "echo *** and ***"
