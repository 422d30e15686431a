"""Helpers shared by the HTTP adapters."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from platypus.exceptions import PermanentError
from platypus.vendorhttp import (
    USER_AGENT,
    https_root,
    json_or_none,
    mask_secrets_in,
    parse_input,
    transport_failure,
)


def test_the_user_agent_names_platypus() -> None:
    assert USER_AGENT.startswith("platypus")


def test_a_body_that_is_empty_or_not_json_reads_as_none() -> None:
    assert json_or_none(httpx.Response(200, content=b"")) is None
    assert json_or_none(httpx.Response(200, content=b"<html>")) is None
    assert json_or_none(httpx.Response(200, json={"ok": True})) == {"ok": True}


def test_every_secret_value_is_masked_and_empty_ones_are_ignored() -> None:
    secrets = [SecretStr("tok-1"), SecretStr(""), SecretStr("pw-2")]
    assert mask_secrets_in("echo tok-1 and pw-2", secrets) == "echo *** and ***"


def test_an_invalid_payload_names_the_field_and_never_its_value() -> None:
    class Person(BaseModel):
        email: str
        age: int

    with pytest.raises(PermanentError, match=r"'hr'.*'hire' is invalid at age") as caught:
        parse_input(
            Person, {"email": "ada@example.com", "age": "ada"}, connection="hr", action="hire"
        )
    assert "ada@example.com" not in str(caught.value)
    assert "'ada'" not in str(caught.value)


def test_a_call_without_an_answer_is_retryable_and_says_what_to_check() -> None:
    slow = transport_failure(
        "Acme", "POST /x", httpx.ReadTimeout("late"), timeout=5, url="https://acme.example"
    )
    refused = transport_failure(
        "Acme",
        "POST /x",
        httpx.ConnectError("refused tok-1"),
        timeout=5,
        url="https://acme.example",
        scrub=lambda text: text.replace("tok-1", "***"),
        repeat="writes are upserts",
    )
    assert slow.retryable
    assert refused.retryable
    assert "timed out (ReadTimeout) after 5s" in str(slow)
    assert "reachable at https://acme.example" in str(refused)
    assert "tok-1" not in str(refused)
    assert "(writes are upserts)" in str(refused)


def test_an_https_root_is_kept_and_anything_else_is_refused() -> None:
    assert https_root("https://acme.example.com/", "x") == "https://acme.example.com"
    assert https_root("https://127.0.0.1:8443", "x") == "https://127.0.0.1:8443"
    for wrong in ("http://acme.example.com", "https://acme.example.com/api", "acme"):
        with pytest.raises(ValueError, match="https://acme"):
            https_root(wrong, "https://acme.example.com")
