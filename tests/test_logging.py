"""Log lines: JSON off a terminal, bound to the event, free of secrets and personal data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from platypus.config import ConnectionSpec
from platypus.logging import (
    configure_logging,
    context_var,
    debug_enabled,
    get_logger,
    redaction_scope,
)
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, ingest, running

TOKEN = "tok-SUPERSECRET-4711"
EMAIL = "jane.private@example.com"
CONTACT = "Janet Privatperson"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_log_lines_are_json_with_level_and_timestamp(captured: io.StringIO) -> None:
    get_logger("test").info("hello", answer=42)
    [line] = lines(captured)
    assert (line["event"], line["answer"], line["level"]) == ("hello", 42, "info")
    assert str(line["timestamp"]).endswith("Z")


def test_credential_keys_and_secret_values_are_masked(captured: io.StringIO) -> None:
    get_logger().info(
        "calling", authorization=f"Bearer {TOKEN}", api_key=TOKEN, token=SecretStr(TOKEN)
    )
    output = captured.getvalue()
    assert TOKEN not in output
    [line] = lines(captured)
    assert line["authorization"] == line["api_key"] == line["token"] == "***"


def test_personal_values_in_scope_are_masked_anywhere_in_a_line(captured: io.StringIO) -> None:
    with redaction_scope({EMAIL}):
        get_logger().warning("vendor said", error=f"no user {EMAIL}", nested={"x": [EMAIL]})
    get_logger().info("outside the scope", note="nothing to mask")
    assert EMAIL not in captured.getvalue()
    first = lines(captured)[0]
    assert first["error"] == "no user ***"


async def test_processing_an_event_logs_no_secret_or_personal_value(
    tmp_path: Path, fake_vendor: FakeVendor, captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENDOR_TOKEN", TOKEN)
    vendor = ConnectionSpec(
        adapter="http",
        settings={
            "base_url": fake_vendor.url,
            "auth": {"type": "bearer", "token_env": "VENDOR_TOKEN"},
        },
    )
    # The vendor echoes personal data and the credential back in its errors.
    fake_vendor.script(
        "/orders",
        [
            (503, {"message": f"busy, try later for {EMAIL}"}),
            (400, {"error": "BAD", "message": f"{CONTACT} <{EMAIL}> refused; auth {TOKEN}"}),
        ],
    )
    event = closed_won(
        owner_email=EMAIL, billing_contact={"name": CONTACT, "email": "j.p@example.com"}
    )
    async with running(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, connections={"vendor": vendor}
    ) as app:
        await ingest(app, event)
        await app.drain()

    output = captured.getvalue()
    assert fake_vendor.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    for secret in (TOKEN, EMAIL, CONTACT):
        assert secret not in output, f"{secret!r} reached the log"
    records = lines(captured)
    dead = [r for r in records if r["event"] == "event dead-lettered"]
    assert dead, "the dead-letter was not logged"
    assert dead[0]["event_id"] == event["id"]
    assert (dead[0]["flow"], dead[0]["step"]) == ("orders", "create_order")
    assert any(r["event"] == "delivery failed, will retry" for r in records)


def test_debug_enabled_follows_the_configured_level() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(json=True, level="info", stream=io.StringIO())
        assert not debug_enabled()
        configure_logging(json=True, level="debug", stream=io.StringIO())
        assert debug_enabled()
        structlog.reset_defaults()  # structlog's defaults write every level
        assert debug_enabled()
    finally:
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level


async def test_a_delivered_step_is_logged_at_debug_level_only(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    # The processor skips building debug lines when the level drops them: the
    # line must still be written, bound to its event, flow and step, at debug.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    found = {}
    try:
        for name in ("debug", "info"):
            stream = io.StringIO()
            configure_logging(json=True, level=name, stream=stream)
            event = closed_won()
            async with running(tmp_path / name, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
                await ingest(app, event)
                await app.drain()
            found[name] = [r for r in lines(stream) if r["event"] == "step delivered"]
            for record in found[name]:
                assert record["event_id"] == event["id"]
                assert (record["flow"], record["step"]) == ("orders", "create_order")
    finally:
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level
    assert len(found["debug"]) == 1
    assert found["info"] == []


def test_a_context_var_set_directly_is_bound_like_bind_contextvars(
    captured: io.StringIO,
) -> None:
    var = context_var("flow")
    token = var.set("orders")
    try:
        assert structlog.contextvars.get_contextvars() == {"flow": "orders"}
        get_logger("test").info("inside")
    finally:
        var.reset(token)
    get_logger("test").info("outside")
    inside, outside = lines(captured)
    assert inside["flow"] == "orders"
    assert "flow" not in outside
    structlog.contextvars.bind_contextvars(flow="other")
    structlog.contextvars.clear_contextvars()
    assert var.get() is Ellipsis  # the same variable structlog clears
