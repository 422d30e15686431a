"""Helpers shared by the HTTP adapters."""

from __future__ import annotations

import asyncio
import gzip
import socket

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from platypus._aiohttp import AiohttpTransport
from platypus.exceptions import PermanentError
from platypus.vendorhttp import (
    TRANSPORT_ENV,
    USER_AGENT,
    SecretHeaders,
    _aiohttp_can_serve,
    async_client,
    https_root,
    json_or_none,
    mask_secrets_in,
    parse_input,
    send_content,
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


# -- the client under every vendor adapter ---------------------------------------------


class _Loopback:
    """A raw HTTP/1.1 server on loopback, in the test's loop: counts connections open at once."""

    def __init__(self, answer: bytes | None, delay: float = 0.0) -> None:
        self.answer = answer  # None: read the request, then hang up without a word
        self.delay = delay
        self.open_now = 0
        self.most_open = 0
        self.cookies: list[str] = []
        self.requests: list[bytes] = []  # each request's head and body, as received
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> _Loopback:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                body = await reader.readexactly(length[0]) if length else b""
                self.requests.append(head + body)
                self.cookies += [
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"cookie:")
                ]
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.answer is None:
                    break
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: s=1\r\n\r\nok"


async def test_vendor_clients_use_aiohttps_pool_and_keep_httpxs_answers() -> None:
    async with _Loopback(_OK) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=4)
        async with client:
            assert isinstance(client._transport, AiohttpTransport)
            first = await client.post("/x", json={"a": 1})
            await client.get("/x")
        assert (first.status_code, first.text) == (200, "ok")
        assert first.request.headers["User-Agent"] == USER_AGENT
        # httpx keeps the vendor's cookie and sends it once; aiohttp keeps none of its own.
        assert vendor.cookies == ["s=1"]


async def test_vendor_clients_keep_a_cookie_across_answers_that_set_none() -> None:
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with _Loopback(plain) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=4)
        async with client:
            client.cookies = {"s": "1"}  # type: ignore[assignment]
            await client.get("/x")
            await client.get("/x")
            assert dict(client.cookies) == {"s": "1"}
        assert vendor.cookies == ["s=1", "s=1"]


async def test_the_pool_opens_no_more_connections_than_max_connections() -> None:
    async with _Loopback(_OK, delay=0.05) as vendor:
        client = async_client(base_url=vendor.url, timeout=10, max_connections=3)
        async with client:
            answers = await asyncio.gather(*(client.get("/x") for _ in range(12)))
        assert [a.status_code for a in answers] == [200] * 12
        assert vendor.most_open == 3


async def test_transport_failures_are_httpxs_own_types() -> None:
    async with _Loopback(None) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=1)
        async with client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/hangs-up")
    async with _Loopback(_OK, delay=5) as vendor:
        client = async_client(base_url=vendor.url, timeout=0.2, max_connections=1)
        async with client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = async_client(base_url=f"http://127.0.0.1:{port}", timeout=5, max_connections=1)
    async with client:
        with pytest.raises(httpx.ConnectError) as refused:
            await client.get("/")
    failure = transport_failure("Acme", "POST /x", refused.value, timeout=5, url="u")
    assert "Check that Acme is reachable" in str(failure)


def test_a_socks_proxy_or_the_switch_falls_back_to_httpxs_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct = async_client(base_url="https://example.com", timeout=1, max_connections=1)
    assert isinstance(direct._transport, AiohttpTransport)
    # aiohttp speaks no SOCKS (httpx does, with socksio): those keep httpx's pool.
    assert not _aiohttp_can_serve("socks5://127.0.0.1:1080", trust_env=False)
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:1080")
    assert not _aiohttp_can_serve(None, trust_env=True)
    assert _aiohttp_can_serve("http://127.0.0.1:3128", trust_env=False)
    monkeypatch.delenv("ALL_PROXY")
    monkeypatch.setenv(TRANSPORT_ENV, "httpx")
    switched = async_client(base_url="https://example.com", timeout=1, max_connections=1)
    assert isinstance(switched._transport, httpx.AsyncHTTPTransport)


# -- send_content: straight through aiohttp when httpx's client has nothing to add ----


def _refuse_httpx_send(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(*args: object, **kwargs: object) -> httpx.Response:
        raise AssertionError("went through httpx's send")

    monkeypatch.setattr(client, "send", refused)


async def test_send_content_sends_what_httpx_would_and_reads_the_answer_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n"
    async with _Loopback(answer + b'{"id":7}') as vendor:
        client = async_client(
            base_url=vendor.url, timeout=5, max_connections=2, headers={"X-Tenant": "t1"}
        )
        async with client:
            url = client.build_request("POST", "/orders").url
            headers = {"X-Step": "a", "Content-Type": "application/json"}
            keyed = {**headers, "Idempotency-Key": "e1:f:s"}
            by_httpx = await client.send(
                client.build_request("POST", url, content=b'{"n":1}', headers=keyed)
            )
            real_send = client.send
            _refuse_httpx_send(client, monkeypatch)
            direct = await send_content(
                client, "POST", url, content=b'{"n":1}', headers=keyed, varying=["Idempotency-Key"]
            )
            again = await send_content(
                client,
                "POST",
                url,
                content=b'{"n":22}',
                headers={**headers, "Idempotency-Key": "e2:f:s"},
                varying=["Idempotency-Key"],
            )
            monkeypatch.setattr(client, "send", real_send)
        # Byte for byte the request httpx sent, with this request's length and key.
        assert vendor.requests[1] == vendor.requests[0]
        assert vendor.requests[2] == vendor.requests[0].replace(
            b"content-length: 7", b"content-length: 8"
        ).replace(b"e1:f:s", b"e2:f:s").replace(b'{"n":1}', b'{"n":22}')
        for response in (by_httpx, direct):
            assert (response.status_code, response.reason_phrase) == (201, "Created")
            assert response.json() == {"id": 7}
            assert response.headers["content-type"] == "application/json"
            assert response.request.headers["Idempotency-Key"] == "e1:f:s"
            assert response.request.url == url
            assert response.is_closed
        assert direct.http_version == by_httpx.http_version
        # The request an adapter reads back is the one httpx would have built.
        assert direct.request.headers == by_httpx.request.headers
        assert direct.request.content == by_httpx.request.content == b'{"n":1}'
        assert direct.request.method == by_httpx.request.method
        assert direct.elapsed.total_seconds() >= 0
        assert again.request.headers["Idempotency-Key"] == "e2:f:s"


async def test_send_content_adds_secret_headers_at_send_time_and_keeps_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _Loopback(_OK.replace(b"Set-Cookie: s=1\r\n", b"")) as vendor:
        auth = SecretHeaders({"Authorization": SecretStr("Bearer s3cret-token")})
        client = async_client(base_url=vendor.url, timeout=5, max_connections=1, auth=auth)
        async with client:
            url = client.build_request("POST", "/x").url
            await client.send(client.build_request("POST", url, content=b"{}"))
            _refuse_httpx_send(client, monkeypatch)
            await send_content(client, "POST", url, content=b"{}", headers={})
            assert "s3cret" not in repr(client._templates)  # type: ignore[attr-defined]
        assert vendor.requests[1] == vendor.requests[0]
        assert b"authorization: Bearer s3cret-token" in vendor.requests[1]


async def test_send_content_keeps_a_vendors_cookie_and_then_sends_it_through_httpx() -> None:
    async with _Loopback(_OK) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=1)
        async with client:
            url = client.build_request("POST", "/x").url
            first = await send_content(client, "POST", url, content=b"{}", headers={})
            second = await send_content(client, "POST", url, content=b"{}", headers={})
            assert dict(client.cookies) == {"s": "1"}
        assert first.text == second.text == "ok"
        assert vendor.cookies == ["s=1"]  # sent once, with the second request


async def test_send_content_decodes_a_compressed_answer() -> None:
    body = gzip.compress(b'{"ok": true}')
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    async with _Loopback(head + body) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=1)
        async with client:
            url = client.build_request("POST", "/x").url
            response = await send_content(client, "POST", url, content=b"{}", headers={})
        assert response.json() == {"ok": True}


async def test_send_content_failures_are_httpxs_own_types() -> None:
    async with _Loopback(None) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=1)
        async with client:
            url = client.build_request("POST", "/x").url
            with pytest.raises(httpx.RemoteProtocolError) as hung_up:
                await send_content(client, "POST", url, content=b"{}", headers={})
        assert hung_up.value.request.url == url
    async with _Loopback(_OK, delay=5) as vendor:
        client = async_client(base_url=vendor.url, timeout=0.2, max_connections=1)
        async with client:
            url = client.build_request("POST", "/x").url
            with pytest.raises(httpx.ReadTimeout):
                await send_content(client, "POST", url, content=b"{}", headers={})


async def test_send_content_goes_through_httpx_when_its_client_has_something_to_add(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _Loopback(_OK.replace(b"Set-Cookie: s=1\r\n", b"")) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=1)
        async with client:
            url = client.build_request("POST", "/x").url
            sent: list[httpx.Request] = []
            real_send = client.send

            async def counting(request: httpx.Request, **kwargs: object) -> httpx.Response:
                sent.append(request)
                return await real_send(request)

            monkeypatch.setattr(client, "send", counting)
            await send_content(client, "POST", url, content=b"{}", headers={})
            assert sent == []
            client.cookies = {"s": "2"}  # type: ignore[assignment]
            await send_content(client, "POST", url, content=b"{}", headers={})
            client.cookies = {}  # type: ignore[assignment]
            # A header named twice, or a varying value httpx could not encode.
            await send_content(client, "POST", url, content=b"{}", headers={"a": "1", "A": "2"})
            with pytest.raises(UnicodeEncodeError):
                await send_content(
                    client, "POST", url, content=b"{}", headers={"K": "\u00e9"}, varying=["K"]
                )
            assert len(sent) == 2  # the last one fails building httpx's request, as it would
        assert vendor.cookies == ["s=2"]
    plain = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
    async with plain:
        response = await send_content(
            plain, "POST", httpx.URL("http://v/x"), content=b"{}", headers={}
        )
    assert response.status_code == 204


async def test_the_transport_hands_aiohttp_httpxs_headers_joined_and_decoded() -> None:
    async with _Loopback(_OK) as vendor:
        client = async_client(base_url=vendor.url, timeout=5, max_connections=1)
        async with client:
            await client.post("/x", headers=[("X-A", "1"), ("X-A", "2")], content=b"{}")
            await client.post("/x", headers={"X-Name": "Zoë".encode()}, content=b"{}")
        # As httpx-aiohttp's transport sent them: httpx's items(), names lower-cased.
        assert b"\r\nx-a: 1, 2\r\n" in vendor.requests[0]
        assert "\r\nx-name: Zoë\r\n".encode() in vendor.requests[1]
