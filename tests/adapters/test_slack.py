"""The ``slack`` adapter: the adapter contract and Slack's own behaviour, on a loopback fake."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
import structlog

from platypus.adapter import Adapter, Request
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus.logging import configure_logging
from platypus_adapters.slack import SlackAdapter, SlackSettings
from tests.adapters.contract import AdapterContract, Failure
from tests.adapters.echoes import ECHOES, EMAIL, NAME, assert_masked
from tests.fakes.proxy import TunnelProxy
from tests.fakes.slack import CHANNELS, RESET, FakeSlack, Reply, Slow
from tests.fakes.tls import TestCA

TOKEN = FakeSlack.bot_token
ROTATION = {
    "refresh_token": {"env": "SLACK_REFRESH_TOKEN"},
    "client_id": {"env": "SLACK_CLIENT_ID"},
    "client_secret": {"env": "SLACK_CLIENT_SECRET"},
}


@pytest.fixture(scope="module")
def _slack_server() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def slack(_slack_server: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> FakeSlack:
    """The fake workspace, emptied, with the app's secrets in the environment."""
    _slack_server.reset()
    monkeypatch.setenv("SLACK_BOT_TOKEN", FakeSlack.bot_token)
    monkeypatch.setenv("SLACK_REFRESH_TOKEN", FakeSlack.refresh_token)
    monkeypatch.setenv("SLACK_CLIENT_ID", FakeSlack.client_id)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", FakeSlack.client_secret)
    return _slack_server


def make_adapter(fake: FakeSlack, **settings: Any) -> SlackAdapter:
    config: dict[str, Any] = {
        "token": {"env": "SLACK_BOT_TOKEN"},
        "base_url": fake.url,
        # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
        # fake for longer than a tight timeout. Timeout cases set their own (1 s).
        "timeout": 5.0,
        **settings,
    }
    adapter = SlackAdapter.from_config(
        {k: v for k, v in config.items() if v is not None}, connection="alerts"
    )
    assert isinstance(adapter, SlackAdapter)
    return adapter


def post(event_id: str = "evt-1", **payload: Any) -> Request:
    return Request(
        action="post_message",
        payload={"channel": "#ops-alerts", "text": f"Order {event_id} closed", **payload},
        event_id=event_id,
        flow="alerts",
        step="notify",
    )


@pytest.fixture
async def adapter(slack: FakeSlack) -> Any:
    adapter = make_adapter(slack)
    await adapter.start()
    yield adapter
    await adapter.close()


class TestContract(AdapterContract):
    secret: ClassVar[str] = TOKEN

    @pytest.fixture
    def vendor(self, slack: FakeSlack) -> FakeSlack:
        return slack

    def make_adapter(self, vendor: FakeSlack) -> Adapter:
        # With token rotation set up, so an expired token can be refreshed.
        # 1 s: the "timeout" failure answers after 2 s.
        return make_adapter(vendor, timeout=1.0, **ROTATION)

    def write(self, event_id: str) -> Request:
        return post(event_id)

    def record_count(self, vendor: FakeSlack, request: Request) -> int:
        return sum(m["text"] == request.payload["text"] for m in vendor.posted("ops-alerts"))

    def fail_next(self, vendor: FakeSlack, failure: Failure) -> None:
        if failure == "expired_credential":
            vendor.expire_tokens()
            return
        answers: dict[str, Any] = {
            "permanent": Reply(200, {"ok": False, "error": "invalid_blocks"}),
            "retryable": Reply(503, "upstream connect error"),
            "timeout": Slow(2.0),
            "reset": RESET,
        }
        vendor.fail_next("chat.postMessage", answers[failure])


# -- posting -----------------------------------------------------------------------


async def test_a_message_is_posted_with_channel_text_and_blocks(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Order* closed"}}]
    result = await adapter.call(post("evt-blocks", blocks=blocks, unfurl_links=False))

    sent = slack.calls_of("chat.postMessage")[0]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert sent.json == {
        "channel": "#ops-alerts",
        "text": "Order evt-blocks closed",
        "blocks": blocks,
        "unfurl_links": False,
    }
    [message] = slack.posted("ops-alerts")
    assert result == {"channel": CHANNELS["ops-alerts"], "ts": message["ts"]}
    assert message["blocks"] == blocks


async def test_a_reply_goes_to_the_thread(slack: FakeSlack, adapter: SlackAdapter) -> None:
    parent = await adapter.call(post("evt-parent"))
    reply = await adapter.call(post("evt-reply", thread_ts=parent["ts"]))
    assert reply["thread_ts"] == parent["ts"]
    assert slack.posted("ops-alerts")[1]["thread_ts"] == parent["ts"]


async def test_the_default_channel_is_used_when_the_message_names_none(
    slack: FakeSlack,
) -> None:
    adapter = make_adapter(slack, default_channel="#billing")
    await adapter.start()
    try:
        await adapter.call(Request(action="post_message", payload={"text": "hello"}))
        with pytest.raises(PermanentError, match="needs text or blocks"):
            await adapter.call(Request(action="post_message", payload={"channel": "#billing"}))
    finally:
        await adapter.close()
    assert [m["text"] for m in slack.posted("billing")] == ["hello"]


async def test_a_message_without_any_channel_is_refused_before_sending(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    with pytest.raises(PermanentError, match="default_channel"):
        await adapter.call(Request(action="post_message", payload={"text": "hello"}))
    assert slack.requests == []


# -- errors ------------------------------------------------------------------------------


async def test_429_retry_after_is_the_errors_retry_after(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    slack.fail_next(
        "chat.postMessage",
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}),
    )
    with pytest.raises(RetryableError) as caught:
        await adapter.call(post("evt-429"))
    assert caught.value.retry_after == 30.0
    assert caught.value.status_code == 429
    assert caught.value.vendor_code == "ratelimited"
    assert slack.posted("ops-alerts") == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"channel": "#nowhere"}, "channel_not_found"),
        ({"channel": "#private"}, "not_in_channel"),
        ({"channel": "#old-news"}, "is_archived"),
        ({"text": "x" * 40_001}, "msg_too_long"),
    ],
)
async def test_slack_refusals_are_permanent_errors(
    adapter: SlackAdapter, payload: dict[str, Any], code: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        await adapter.call(post("evt-refused", **payload))
    assert caught.value.vendor_code == code
    assert caught.value.status_code == 200


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ratelimited", RetryableError),
        ("internal_error", RetryableError),
        ("fatal_error", RetryableError),
        ("service_unavailable", RetryableError),
        ("request_timeout", RetryableError),
        ("channel_not_found", PermanentError),
        ("not_in_channel", PermanentError),
        ("invalid_auth", PermanentError),
        ("account_inactive", PermanentError),
        ("token_revoked", PermanentError),
        ("missing_scope", PermanentError),
        ("msg_too_long", PermanentError),
        ("no_text", PermanentError),
        ("is_archived", PermanentError),
        ("a_code_slack_adds_later", PermanentError),
    ],
)
async def test_error_codes_are_classified(
    slack: FakeSlack, adapter: SlackAdapter, code: str, error: type[Exception]
) -> None:
    slack.fail_next("chat.postMessage", Reply(200, {"ok": False, "error": code}))
    with pytest.raises(error) as caught:
        await adapter.call(post("evt-code"))
    assert getattr(caught.value, "vendor_code", None) == code


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(500), RetryableError),
        (Reply(502, "<html>Bad Gateway</html>"), RetryableError),
        (Reply(503), RetryableError),
        (Reply(404, "Not Found"), PermanentError),
        (Reply(200, "<html>captive portal</html>"), PermanentError),
        (RESET, RetryableError),
        (Slow(2.0), RetryableError),
    ],
)
async def test_http_failures_are_classified(
    slack: FakeSlack, reply: Reply | Slow, error: type[Exception]
) -> None:
    adapter = make_adapter(slack, timeout=1.0)  # Slow(2.0) must time out
    await adapter.start()
    try:
        slack.fail_next("chat.postMessage", reply)
        with pytest.raises(error):
            await adapter.call(post("evt-http"))
    finally:
        await adapter.close()


async def test_a_wrong_token_is_a_permanent_error(
    slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-a-real-token")
    adapter = make_adapter(slack)
    await adapter.start()
    try:
        with pytest.raises(PermanentError, match="check the connection's token") as caught:
            await adapter.call(post("evt-bad-token"))
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "invalid_auth"


# -- token rotation ------------------------------------------------------------------


async def test_an_expired_token_is_rotated_once_and_the_message_posted(slack: FakeSlack) -> None:
    adapter = make_adapter(slack, **ROTATION)
    await adapter.start()
    try:
        await adapter.call(post("evt-rot-1"))
        slack.expire_tokens()
        await adapter.call(post("evt-rot-2"))
        await adapter.call(post("evt-rot-3"))
    finally:
        await adapter.close()
    [rotation] = slack.calls_of("oauth.v2.access")
    assert rotation.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"grant_type=refresh_token" in rotation.body
    assert b"refresh_token=xoxe-1-fake-refresh-0" in rotation.body
    posts = slack.calls_of("chat.postMessage")
    assert [p.json["text"] for p in posts] == [
        "Order evt-rot-1 closed",
        "Order evt-rot-2 closed",  # answered token_expired
        "Order evt-rot-2 closed",
        "Order evt-rot-3 closed",
    ]
    assert posts[2].headers["authorization"].startswith("Bearer xoxe.xoxb-1-rotated-access-1")
    assert len(slack.posted("ops-alerts")) == 3
    assert adapter.refreshes == 1


async def test_with_rotation_and_no_token_the_first_call_fetches_one(slack: FakeSlack) -> None:
    adapter = make_adapter(slack, token=None, **ROTATION)
    await adapter.start()
    try:
        await adapter.call(post("evt-fresh"))
    finally:
        await adapter.close()
    assert len(slack.calls_of("oauth.v2.access")) == 1
    assert (
        slack.calls_of("chat.postMessage")[0]
        .headers["authorization"]
        .startswith("Bearer xoxe.xoxb-1-rotated-access-")
    )


async def test_a_rotated_token_is_refreshed_before_it_expires(slack: FakeSlack) -> None:
    slack.token_lifetime = 600
    adapter = make_adapter(slack, token=None, token_refresh_margin="5m", **ROTATION)
    now = [1000.0]
    adapter.clock = lambda: now[0]
    await adapter.start()
    try:
        await adapter.call(post("evt-early-1"))
        await adapter.call(post("evt-early-2"))
        now[0] += 301  # within the margin of the 600 s token
        await adapter.call(post("evt-early-3"))
    finally:
        await adapter.close()
    assert len(slack.calls_of("oauth.v2.access")) == 2
    assert len(slack.calls_of("chat.postMessage")) == 3  # none answered token_expired
    assert len(slack.posted("ops-alerts")) == 3


async def test_the_rotated_refresh_token_is_written_back_to_its_file(
    slack: FakeSlack, tmp_path: Path
) -> None:
    secret_file = tmp_path / "slack-refresh"
    secret_file.write_text(FakeSlack.refresh_token + "\n")
    rotation = {**ROTATION, "refresh_token": {"file": str(secret_file)}}
    for n in range(2):  # the second adapter, as after a restart, uses the rotated one
        adapter = make_adapter(slack, token=None, **rotation)
        await adapter.start()
        try:
            await adapter.call(post(f"evt-file-{n}"))
        finally:
            await adapter.close()
    assert secret_file.read_text() == "xoxe-1-fake-refresh-2\n"
    assert len(slack.posted("ops-alerts")) == 2


async def test_a_revoked_refresh_token_is_a_permanent_error(slack: FakeSlack) -> None:
    slack.refresh_tokens.clear()
    adapter = make_adapter(slack, **ROTATION)
    await adapter.start()
    try:
        slack.expire_tokens()
        with pytest.raises(PermanentError, match="reinstall the app") as caught:
            await adapter.call(post("evt-revoked"))
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "invalid_refresh_token"


async def test_an_expired_token_without_rotation_is_a_permanent_error(
    slack: FakeSlack, adapter: SlackAdapter
) -> None:
    slack.expire_tokens()
    with pytest.raises(PermanentError, match="set up token rotation") as caught:
        await adapter.call(post("evt-expired"))
    assert caught.value.vendor_code == "token_expired"
    assert slack.calls_of("oauth.v2.access") == []


# -- settings and secrecy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({}, "give the bot token"),
        ({"token": {"env": "T"}, "refresh_token": {"env": "R"}}, "all three"),
        ({"token": {"env": "T"}, "channel": "#x"}, "channel"),
        ({"token": "xoxb-literal"}, "token"),
    ],
)
def test_bad_settings_are_configuration_errors(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        SlackAdapter.from_config(settings)
    assert "xoxb-literal" not in str(caught.value)


def test_slack_posts_are_not_idempotent() -> None:
    assert SlackAdapter.actions["post_message"].idempotent is False
    assert SlackAdapter.actions["post_message"].writes is True


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    root.setLevel(logging.DEBUG)
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


async def test_no_token_or_secret_leaks(slack: FakeSlack, captured_logs: io.StringIO) -> None:
    adapter = make_adapter(slack, **ROTATION)
    await adapter.start()
    errors: list[str] = []
    try:
        await adapter.call(post("evt-leak-1"))
        slack.expire_tokens()
        await adapter.call(post("evt-leak-2"))  # rotated
        secrets = [
            TOKEN,
            FakeSlack.client_secret,
            FakeSlack.refresh_token,
            *slack.refresh_tokens,
            *(t for t in slack.tokens if t != TOKEN),
        ]
        echo = " ".join(secrets)
        for reply in [Reply(503, echo), Reply(404, echo), Reply(200, {"ok": False, "error": echo})]:
            slack.fail_next("chat.postMessage", reply)
            try:
                await adapter.call(post("evt-leak-3"))
            except (PermanentError, RetryableError) as exc:
                errors.append(f"{exc!s} {exc!r}")
    finally:
        await adapter.close()
    assert len(errors) == 3
    texts = [captured_logs.getvalue(), *errors, repr(adapter), repr(adapter.settings)]
    for secret in secrets:
        assert all(secret not in text for text in texts), secret


# -- TLS and proxies -----------------------------------------------------------------


@pytest.fixture(scope="module")
def _https_slack(test_ca: TestCA) -> Iterator[FakeSlack]:
    fake = FakeSlack(tls=test_ca)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def https_slack(_https_slack: FakeSlack, slack: FakeSlack) -> FakeSlack:
    """The fake over HTTPS, with a certificate of a CA no system trusts."""
    _https_slack.reset()
    return _https_slack


async def test_the_ca_bundle_verifies_slack_and_the_proxy_tunnels_every_call(
    https_slack: FakeSlack, test_ca: TestCA, tunnel_proxy: TunnelProxy
) -> None:
    assert https_slack.url.startswith("https://")
    adapter = make_adapter(https_slack, ca_bundle=str(test_ca.path), proxy=tunnel_proxy.url)
    await adapter.start()
    try:
        result = await adapter.call(post("evt-tls"))
    finally:
        await adapter.close()
    assert result
    assert set(tunnel_proxy.tunnels) == {urlsplit(https_slack.url).netloc}
    assert len(https_slack.requests) >= 1


async def test_an_untrusted_certificate_is_a_permanent_error_naming_ca_bundle(
    https_slack: FakeSlack,
) -> None:
    adapter = make_adapter(https_slack)  # the system's CAs do not know the fake's
    await adapter.start()
    try:
        with pytest.raises(PermanentError, match="ca_bundle"):
            await adapter.call(post("evt-tls"))
    finally:
        await adapter.close()
    assert https_slack.requests == []


async def test_a_ca_bundle_that_cannot_be_read_stops_start(
    slack: FakeSlack, tmp_path: Path
) -> None:
    adapter = make_adapter(slack, ca_bundle=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="ca_bundle"):
        await adapter.start()


def test_ca_bundle_and_proxy_left_empty_by_the_environment_are_unset() -> None:
    settings = SlackSettings.model_validate(
        {"token": {"env": "SLACK_BOT_TOKEN"}, "ca_bundle": "", "proxy": ""}
    )
    assert settings.ca_bundle is None
    assert settings.proxy is None
    with pytest.raises(ValueError, match="proxy URL"):
        SlackSettings.model_validate(
            {"token": {"env": "SLACK_BOT_TOKEN"}, "proxy": "socks5://proxy:1080"}
        )


# -- personal data echoed changed ----------------------------------------------------


@pytest.mark.parametrize("how", sorted(ECHOES))
@pytest.mark.parametrize("status", [400, 503, 200])
async def test_personal_data_slack_echoes_changed_is_masked_everywhere(
    slack: FakeSlack, adapter: SlackAdapter, how: str, status: int
) -> None:
    # A proxy's error page, or Slack's own refusal whose code quotes the text.
    body: Any = {"ok": False, "error": ECHOES[how]} if status == 200 else ECHOES[how]
    slack.fail_next("chat.postMessage", Reply(status, body))

    await assert_masked(lambda: adapter.call(post("evt-echo", text=f"Welcome {NAME} {EMAIL}")))
