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
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport as _Base

__all__ = ["AiohttpTransport"]


class AiohttpTransport(_Base):
    """``httpx_aiohttp.AiohttpTransport`` with httpx's error types and no second cookie jar."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = self._session

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
        try:
            response = await super().handle_async_request(request)
        except (TimeoutError, httpx.TransportError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, request) from _cause(exc)
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _Body(stream, request)
        return response


class _Body(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except (TimeoutError, httpx.TransportError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, self._request) from _cause(exc)

    async def aclose(self) -> None:
        await self._inner.aclose()


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
