"""aiohttp's connection pool under httpx's API: the ``httpx-aiohttp`` transport, made exact.

`platypus.vendorhttp.async_client` puts this transport under every vendor
client. On top of ``httpx_aiohttp.AiohttpTransport`` it keeps two things the
way httpx's own pool has them, since adapters classify failures by httpx's
exception types:

* errors: a refused connection is `httpx.ConnectError` (not a timeout), a
  server that hangs up is `httpx.RemoteProtocolError`, a read that takes too
  long `httpx.ReadTimeout`; anything else aiohttp raises is an
  `httpx.TransportError`, never a bare aiohttp or asyncio error;
* cookies: httpx's client keeps them; aiohttp's session keeps none, so a
  vendor's cookie is not sent twice.

httpx's ``write`` timeout has no aiohttp counterpart: a request body is sent
within the ``connect`` and ``read`` timeouts instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport as _Base

__all__ = ["AiohttpTransport", "response_extensions"]


class AiohttpTransport(_Base):
    """``httpx_aiohttp.AiohttpTransport`` with httpx's error types and no second cookie jar."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client: aiohttp.ClientSession | None = None  # made on the first request
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._proxy: dict[str, Any] | None = None

    def _session(self) -> aiohttp.ClientSession:
        # Made on the first request, inside the running loop, as aiohttp wants.
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry or 15.0,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # httpx has read the environment already
            auto_decompress=False,  # httpx decodes the body itself
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # httpx-aiohttp's own method, with the per-request conversions it repeats
        # made once or skipped: the timeouts and proxy arguments are built once per
        # value, the headers are handed over as plain strings (httpx's mapping
        # re-detects its encoding and re-joins its values on every read), and a
        # small answer's body is read in one piece instead of through two more
        # generators of 16 KiB chunks.
        try:
            try:
                data: bytes | httpx.AsyncByteStream | None = request.content or None
            except httpx.RequestNotRead:
                data = request.stream  # type: ignore[assignment]
                request.headers.pop("transfer-encoding", None)  # aiohttp chunks it itself
            response = await self._open(
                request.method,
                str(request.url),
                _headers(request.headers),
                data,
                request.extensions.get("timeout") or {},
                request.extensions.get("sni_hostname"),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions=response_extensions(response),
        )

    async def fetch(
        self,
        method: str,
        url: httpx.URL,
        headers: list[tuple[str, str]],
        content: bytes,
        timeout: Mapping[str, float | None],  # noqa: ASYNC109 -- httpx's, handed to aiohttp
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send one request and read its whole answer: for callers that build
        httpx's objects themselves (`platypus.vendorhttp.send_content`).

        Failures are httpx's types, as for `handle_async_request`.
        """
        try:
            response = await self._open(method, str(url), headers, content or None, timeout, None)
            try:
                body = await response.read()
            finally:
                response.release()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, httpx.Request(method, url)) from exc
        return response, body

    async def _open(
        self,
        method: str,
        url: str,
        headers: Any,
        data: Any,
        timeout: Mapping[str, float | None],  # noqa: ASYNC109 -- httpx's, handed to aiohttp
        sni_hostname: str | None,
    ) -> aiohttp.ClientResponse:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self._session()
        response: aiohttp.ClientResponse = await self.client.request(
            method=method,
            url=url,
            headers=headers,
            data=data,
            allow_redirects=False,
            auto_decompress=False,
            compress=False,
            timeout=self._timeout(timeout),
            server_hostname=sni_hostname,
            **self._proxy_args(),
        )
        return response

    def _timeout(self, timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            if len(self._timeouts) >= _TIMEOUTS_KEPT:
                self._timeouts.clear()
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return found

    def _proxy_args(self) -> dict[str, Any]:
        if self._proxy is None:
            proxy = self.proxy
            self._proxy = {
                "proxy": str(proxy.url) if proxy else None,
                "proxy_auth": aiohttp.BasicAuth(proxy.auth[0], proxy.auth[1])
                if proxy and proxy.auth
                else None,
                "proxy_headers": proxy.headers if proxy else None,
            }
        return self._proxy


_TIMEOUTS_KEPT = 64
_WHOLE_BODY = 1 << 20  # answers up to this size (by Content-Length) are read in one piece
_CHUNK = 16 * 1024


def response_extensions(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """httpx's response extensions for an aiohttp answer."""
    extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
    if response.reason:
        extensions["reason_phrase"] = response.reason.encode()
    return extensions


def _headers(headers: httpx.Headers) -> Mapping[str, str] | list[tuple[str, str]]:
    """The request's headers as aiohttp takes them: what httpx's mapping would give, cheaper.

    The ASCII headers of an API call, each name once, are passed as pairs, names
    lower-cased as ``items()`` gives them; anything else as httpx's ``items()``
    (its encoding, repeated names joined).
    """
    raw = headers.raw
    try:
        pairs = [(name.decode("ascii").lower(), value.decode("ascii")) for name, value in raw]
    except UnicodeDecodeError:
        return headers
    if len({name.lower() for name, _ in pairs}) != len(pairs):
        return headers
    return pairs


class _Body(httpx.AsyncByteStream):
    """aiohttp's answer as httpx reads it, with aiohttp's failures as httpx's types."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._response
        try:
            length = response.content_length
            if length is not None and length <= _WHOLE_BODY:
                body = await response.read()
                if body:
                    yield body
            else:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        try:
            await self._response.__aexit__(None, None, None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, self._request) from exc


def _cause(exc: BaseException) -> BaseException:
    """The aiohttp error behind ``exc`` (httpx-aiohttp re-raises it as its cause)."""
    if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    # Most specific first: aiohttp's classes inherit from one another.
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),
)


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    cause = _cause(exc)
    message = str(cause) or type(cause).__name__
    for aiohttp_type, httpx_type in _ERRORS:
        if isinstance(cause, aiohttp_type):
            return httpx_type(message, request=request)
    if isinstance(exc, httpx.TransportError):
        return exc
    return httpx.TransportError(message, request=request)
