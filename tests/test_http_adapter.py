"""The http adapter against a fake vendor over real loopback HTTP."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from platypus.adapter import AdapterRegistry, Request
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus_adapters.http import HttpAdapter, HttpSettings, parse_retry_after
from tests.fakes import FakeVendor, Reply

MakeAdapter = Callable[..., Awaitable[HttpAdapter]]

SECRET = "s3cr3t-token-value"


@pytest.fixture
async def make_adapter(fake_vendor: FakeVendor) -> AsyncIterator[MakeAdapter]:
    """Build and start an http adapter pointed at the fake vendor; closed after the test."""
    started: list[HttpAdapter] = []

    async def make(**settings: Any) -> HttpAdapter:
        config = {"base_url": fake_vendor.url, "timeout": "5s", **settings}
        adapter = HttpAdapter.from_config(config, connection="billing")
        assert isinstance(adapter, HttpAdapter)
        await adapter.start()
        started.append(adapter)
        return adapter

    yield make
    for adapter in started:
        await adapter.close()


def request(
    action: str = "post", path: str = "/orders", payload: Any = None, **params: Any
) -> Request:
    return Request(
        action=action,
        payload={"order": 42} if payload is None else payload,
        params={"path": path, **params},
        event_id="evt-1",
        flow="orders",
        step="bill",
    )


def free_port_nobody_listens_on() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- success -------------------------------------------------------------------


async def test_post_sends_the_payload_as_json_and_returns_the_json_answer(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    fake_vendor.script("/orders", [Reply(201, {"id": "ORD-7", "ok": True})])
    adapter = await make_adapter()

    result = await adapter.call(request(payload={"order": 42, "lines": [1, 2]}))

    assert result == {"id": "ORD-7", "ok": True}
    sent = fake_vendor.last
    assert (sent.method, sent.path) == ("POST", "/orders")
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {"order": 42, "lines": [1, 2]}


async def test_put_sends_a_put(fake_vendor: FakeVendor, make_adapter: MakeAdapter) -> None:
    adapter = await make_adapter()

    result = await adapter.call(request("put", "/orders/ORD-7", {"status": "paid"}))

    assert result == {"id": "fake-1"}
    assert (fake_vendor.last.method, fake_vendor.last.path) == ("PUT", "/orders/ORD-7")
    assert fake_vendor.last.json == {"status": "paid"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(Reply(204), {"status": 204}, id="204-no-body"),
        pytest.param(Reply(200, "accepted"), {"status": 200}, id="200-text"),
        pytest.param(
            Reply(202, b"{not json", {"Content-Type": "application/json"}),
            {"status": 202},
            id="202-broken-json",
        ),
    ],
)
async def test_success_without_a_json_body_returns_the_status(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter, reply: Reply, expected: Any
) -> None:
    fake_vendor.script("/orders", [reply])
    adapter = await make_adapter()

    assert await adapter.call(request()) == expected


async def test_path_is_appended_to_a_base_url_that_has_a_path(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter(base_url=f"{fake_vendor.url}/api/v2")

    await adapter.call(request(path="/orders"))

    assert fake_vendor.last.path == "/api/v2/orders"


async def test_each_step_path_goes_to_its_own_url_call_after_call(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter(base_url=f"{fake_vendor.url}/api")

    for path in ("/orders", "/invoices?draft=1", "/orders", "/invoices?draft=1"):
        await adapter.call(request(path=path))

    assert [(r.path, r.query) for r in fake_vendor.requests] == [
        ("/api/orders", ""),
        ("/api/invoices", "draft=1"),
        ("/api/orders", ""),
        ("/api/invoices", "draft=1"),
    ]


async def test_payload_types_beyond_plain_json_are_serialised(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    await adapter.call(request(payload={"at": when}))

    assert fake_vendor.last.json == {"at": "2024-05-01T12:00:00Z"}


# -- classification ------------------------------------------------------------


async def test_400_is_permanent_with_status_and_vendor_code(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    body = {"error": "INVALID_FIELD", "message": "amount must be positive"}
    fake_vendor.script("/orders", [(400, body)])
    adapter = await make_adapter()

    with pytest.raises(PermanentError) as caught:
        await adapter.call(request())

    error = caught.value
    assert error.status_code == 400
    assert error.vendor_code == "INVALID_FIELD"
    assert error.retry_after is None
    assert error.message.startswith(f"POST {fake_vendor.url}/orders answered 400 Bad Request: ")
    assert "amount must be positive" in error.message


async def test_404_is_permanent(fake_vendor: FakeVendor, make_adapter: MakeAdapter) -> None:
    fake_vendor.script("/orders", [(404, "no such route")])
    adapter = await make_adapter()

    with pytest.raises(PermanentError) as caught:
        await adapter.call(request())

    assert caught.value.status_code == 404
    assert "404 Not Found: no such route" in caught.value.message


async def test_redirect_is_permanent_and_names_the_new_location(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    fake_vendor.script("/orders", [Reply(301, headers={"Location": "/v2/orders?token=x"})])
    adapter = await make_adapter()

    with pytest.raises(PermanentError) as caught:
        await adapter.call(request())

    assert caught.value.status_code == 301
    assert f"{fake_vendor.url}/v2/orders" in caught.value.message
    assert "token=x" not in caught.value.message
    assert len(fake_vendor.requests) == 1  # the redirect was not followed


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
async def test_transient_statuses_are_retryable(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter, status: int
) -> None:
    fake_vendor.script("/orders", [(status, {"code": f"E{status}"})])
    adapter = await make_adapter()

    with pytest.raises(RetryableError) as caught:
        await adapter.call(request())

    assert caught.value.status_code == status
    assert caught.value.vendor_code == f"E{status}"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"code": 1042}, "1042", id="numeric-code"),
        pytest.param(
            {"error": {"type": "card_error", "code": "declined"}}, "declined", id="nested"
        ),
        pytest.param([{"errorCode": "INVALID_FIELD", "message": "x"}], "INVALID_FIELD", id="list"),
        pytest.param({"message": "no code here"}, None, id="none"),
        pytest.param("plain text", None, id="not-json"),
    ],
)
async def test_vendor_code_is_read_from_common_error_body_shapes(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter, body: Any, code: str | None
) -> None:
    fake_vendor.script("/orders", [(422, body)])
    adapter = await make_adapter()

    with pytest.raises(PermanentError) as caught:
        await adapter.call(request())

    assert caught.value.vendor_code == code


async def test_retry_after_in_seconds_is_read(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    fake_vendor.script("/orders", [(429, None, {"Retry-After": "3"})])
    adapter = await make_adapter()

    with pytest.raises(RetryableError) as caught:
        await adapter.call(request())

    assert caught.value.retry_after == 3.0


async def test_retry_after_as_an_http_date_is_read(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    fake_vendor.script(
        "/orders", [(503, None, {"Retry-After": format_datetime(when, usegmt=True)})]
    )
    adapter = await make_adapter()

    with pytest.raises(RetryableError) as caught:
        await adapter.call(request())

    # HTTP-dates have whole seconds; allow for that and for the time the call took.
    assert caught.value.retry_after is not None
    assert 25.0 <= caught.value.retry_after <= 30.0


async def test_garbage_retry_after_is_none(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    fake_vendor.script("/orders", [(429, None, {"Retry-After": "soon-ish"})])
    adapter = await make_adapter()

    with pytest.raises(RetryableError) as caught:
        await adapter.call(request())

    assert caught.value.retry_after is None


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("Wed, 01 May 2024 12:00:10 GMT", 10.0),
        ("Wed, 01 May 2024 11:59:00 GMT", 0.0),
        ("Wednesday, 01-May-24 12:01:00 GMT", 60.0),
        ("Wed May  1 12:00:05 2024", 5.0),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


async def test_timeout_is_retryable(fake_vendor: FakeVendor, make_adapter: MakeAdapter) -> None:
    fake_vendor.delay("/orders", 1.0)
    adapter = await make_adapter(timeout="100ms")

    with pytest.raises(RetryableError) as caught:
        await adapter.call(request())

    assert caught.value.status_code is None
    assert "timed out" in caught.value.message
    assert caught.value.message.startswith(f"POST {fake_vendor.url}/orders ")


async def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port_nobody_listens_on()}"
    adapter = HttpAdapter.from_config({"base_url": url, "timeout": "2s"})
    await adapter.start()
    try:
        with pytest.raises(RetryableError) as caught:
            await adapter.call(request())
    finally:
        await adapter.close()

    assert caught.value.status_code is None
    assert caught.value.message.startswith(f"POST {url}/orders failed: ConnectError")


async def test_unknown_action_is_permanent(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()

    with pytest.raises(PermanentError, match="no action 'patch'"):
        await adapter.call(request("patch"))

    assert fake_vendor.requests == []


async def test_query_string_is_stripped_from_error_messages(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    fake_vendor.script("/orders", [(400, {"error": "BAD"})])
    adapter = await make_adapter()

    with pytest.raises(PermanentError) as caught:
        await adapter.call(request(path="/orders?api_key=hunter2"))

    assert fake_vendor.last.query == "api_key=hunter2"  # it was sent, only not shown
    assert "hunter2" not in caught.value.message
    assert "api_key" not in caught.value.message
    assert f"POST {fake_vendor.url}/orders answered 400" in caught.value.message


async def test_long_error_bodies_are_cut_to_300_characters(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    fake_vendor.script("/orders", [(400, "x" * 1000)])
    adapter = await make_adapter()

    with pytest.raises(PermanentError) as caught:
        await adapter.call(request())

    assert "x" * 300 in caught.value.message
    assert "x" * 301 not in caught.value.message


# -- headers -------------------------------------------------------------------


async def test_headers_from_settings_and_params_are_sent_params_winning(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter(headers={"X-Tenant": "acme", "X-Source": "settings"})

    await adapter.call(request(headers={"X-Source": "step", "X-Trace": "t-1"}))

    headers = fake_vendor.last.headers
    assert headers["x-tenant"] == "acme"
    assert headers["x-source"] == "step"
    assert headers["x-trace"] == "t-1"


async def test_idempotency_key_is_sent_on_every_write(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    post, put = request("post"), request("put")

    await adapter.call(post)
    await adapter.call(put)

    keys = [r.headers["idempotency-key"] for r in fake_vendor.requests]
    assert keys == [post.idempotency_key, put.idempotency_key]
    assert keys[0] == "evt-1:orders:bill"


async def test_idempotency_header_name_is_configurable_and_can_be_turned_off(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter
) -> None:
    renamed = await make_adapter(idempotency_header="X-Request-Id")
    off = await make_adapter(idempotency_header=None)

    await renamed.call(request())
    await off.call(request())

    first, second = fake_vendor.requests
    assert first.headers["x-request-id"] == "evt-1:orders:bill"
    assert "idempotency-key" not in first.headers
    assert "idempotency-key" not in second.headers
    assert "x-request-id" not in second.headers


# -- auth and secrets ----------------------------------------------------------


async def test_bearer_token_is_read_from_the_environment(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", SECRET)
    adapter = await make_adapter(auth={"type": "bearer", "token_env": "BILLING_TOKEN"})

    await adapter.call(request())

    assert fake_vendor.last.headers["authorization"] == f"Bearer {SECRET}"


async def test_basic_auth_is_read_from_the_environment(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_USER", "ada")
    monkeypatch.setenv("BILLING_PASSWORD", SECRET)
    adapter = await make_adapter(
        auth={"type": "basic", "username_env": "BILLING_USER", "password_env": "BILLING_PASSWORD"}
    )

    await adapter.call(request())

    scheme, _, encoded = fake_vendor.last.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"ada:{SECRET}"


async def test_api_key_header_is_read_from_the_environment(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_KEY", SECRET)
    adapter = await make_adapter(
        auth={"type": "header", "name": "X-Api-Key", "value_env": "BILLING_KEY"}
    )

    await adapter.call(request())

    assert fake_vendor.last.headers["x-api-key"] == SECRET
    assert "authorization" not in fake_vendor.last.headers


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer", "token_env": "PLATYPUS_TEST_UNSET"},
        {"type": "basic", "username_env": "PLATYPUS_TEST_UNSET", "password_env": "X"},
        {"type": "header", "value_env": "PLATYPUS_TEST_UNSET"},
    ],
)
async def test_missing_secret_variable_is_a_configuration_error_naming_it(
    fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch, auth: dict[str, str]
) -> None:
    monkeypatch.delenv("PLATYPUS_TEST_UNSET", raising=False)
    adapter = HttpAdapter.from_config({"base_url": fake_vendor.url, "auth": auth}, connection="crm")

    with pytest.raises(ConfigurationError) as caught:
        await adapter.start()

    assert "PLATYPUS_TEST_UNSET" in str(caught.value)
    assert "'crm'" in str(caught.value)


async def test_empty_secret_variable_is_a_configuration_error(
    fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", "")
    adapter = HttpAdapter.from_config(
        {"base_url": fake_vendor.url, "auth": {"type": "bearer", "token_env": "BILLING_TOKEN"}}
    )

    with pytest.raises(ConfigurationError, match=r"BILLING_TOKEN .* is empty"):
        await adapter.start()


async def test_secret_never_appears_in_errors_or_reprs(
    fake_vendor: FakeVendor, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", SECRET)
    # A careless vendor echoes the credential it was sent.
    fake_vendor.script("/orders", [(401, f"bad credentials: Bearer {SECRET}")])
    adapter = await make_adapter(auth={"type": "bearer", "token_env": "BILLING_TOKEN"})

    with pytest.raises(PermanentError) as caught:
        await adapter.call(request())

    assert fake_vendor.last.headers["authorization"] == f"Bearer {SECRET}"  # it was sent
    assert caught.value.status_code == 401
    assert "bad credentials: ***" in caught.value.message
    for text in (str(caught.value), repr(adapter.settings), repr(adapter), repr(vars(adapter))):
        assert SECRET not in text


# -- settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        pytest.param({}, "base_url", id="missing-base-url"),
        pytest.param({"base_url": "billing.example.com"}, "base_url", id="relative-url"),
        pytest.param({"base_url": "ftp://example.com"}, "base_url", id="wrong-scheme"),
        pytest.param({"base_url": "http://x", "retries": 3}, "retries", id="unknown-field"),
        pytest.param({"base_url": "http://x", "timeout": "soon"}, "timeout", id="bad-duration"),
        pytest.param(
            {"base_url": "http://x", "auth": {"type": "oauth"}}, "auth", id="unknown-auth-type"
        ),
    ],
)
def test_invalid_settings_are_a_configuration_error_naming_the_field(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        HttpAdapter.from_config(settings, connection="billing")


def test_settings_defaults() -> None:
    settings = HttpSettings(base_url="https://example.com", timeout="250ms")  # type: ignore[arg-type]

    assert settings.timeout == 0.25
    assert settings.headers == {}
    assert settings.auth is None
    assert settings.verify_tls is True
    assert settings.max_connections == 100
    assert settings.idempotency_header == "Idempotency-Key"


def test_every_setting_is_described() -> None:
    undescribed = [name for name, f in HttpSettings.model_fields.items() if not f.description]
    assert undescribed == []


def test_registry_finds_the_http_adapter() -> None:
    assert AdapterRegistry.default().get("http") is HttpAdapter


def test_step_params_are_validated_for_post_and_put() -> None:
    adapter = HttpAdapter.from_config({"base_url": "http://x"})

    assert adapter.params_for("put", {"path": "/a"}) == {"path": "/a", "headers": {}}
    with pytest.raises(ValueError, match="method"):
        adapter.params_for("post", {"method": "DELETE"})
