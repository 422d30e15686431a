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


@pytest.mark.parametrize(
    "echo",
    [
        "token TOK-9F3B2C71-ABCDEF refused",  # upper-cased
        "see https://vendor.example/?t=tok%2D9f3b2c71%2Dabcdef",  # URL-escaped
        '{"detail": "tok\\u002d9f3b2c71\\u002dabcdef"}',  # JSON-escaped
        "bad credential tok-9f3b2c",  # cut off by an excerpt at the end of the text
    ],
)
def test_a_secret_echoed_changed_is_masked(echo: str) -> None:
    masked = mask_secrets_in(echo, [SecretStr("tok-9f3b2c71-abcdef")])
    assert "9f3b2c" not in masked.lower().replace("%2d", "-").replace("\\u002d", "-")
    assert "***" in masked


def test_personal_values_are_masked_changed_and_short_ones_only_as_words() -> None:
    text = "user xavier.qw@corp-pii.example (ADA) exists; see Canada"
    masked = mask_secrets_in(text, [], ["Xavier.Qw@Corp-Pii.example", "Ada"])
    assert masked == "user *** (***) exists; see Canada"


def test_a_vendor_code_is_masked_only_where_it_holds_a_whole_secret() -> None:
    from platypus.vendorhttp import mask_secrets_in_code

    secrets = [SecretStr("xoxb-1111-fakeslackbottoken")]
    # Read as free text, "token" at the start would be taken for the token's cut end.
    assert mask_secrets_in("token_expired", secrets) == "***_expired"
    assert mask_secrets_in_code("token_expired", secrets) == "token_expired"
    assert mask_secrets_in_code("bad xoxb-1111-fakeslackbottoken", secrets) == "bad ***"
