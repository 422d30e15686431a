"""Small helpers for adapters that speak HTTP to a vendor, so each need not copy them.

An adapter stays one folder under ``adapters/``; what every HTTP adapter needs the
same way (a ``User-Agent``, reading ``Retry-After``, a lenient JSON body, keeping
credentials out of text it passes on, a CA bundle and a proxy) lives here once.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import time
from collections.abc import Callable, Collection, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from platypus._aiohttp import AiohttpTransport, response_extensions
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus.redaction import MASK, scrub_text

_M = TypeVar("_M", bound=BaseModel)
# What httpx takes as cookies (its httpx._types.CookieTypes, which is private).
_CookieTypes = httpx.Cookies | CookieJar | dict[str, str] | list[tuple[str, str]]

__all__ = [
    "TRANSPORT_ENV",
    "USER_AGENT",
    "SecretHeaders",
    "async_client",
    "blank_is_unset",
    "https_root",
    "json_or_none",
    "mask_secrets_in",
    "parse_input",
    "parse_retry_after",
    "send_content",
    "transport_failure",
    "untrusted_certificate",
    "verify_with",
]


def _user_agent() -> str:
    try:
        return f"platypus/{version('platypus-integrations')}"
    except PackageNotFoundError:  # running from a source tree
        return "platypus"


USER_AGENT = _user_agent()
"""``platypus/<version>``: what adapters send as ``User-Agent``."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    A time in the past or a negative number gives 0; anything unreadable gives None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may omit the zone
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def json_or_none(response: httpx.Response) -> Any:
    """The response body as JSON, or None when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def mask_secrets_in(
    text: str, secrets: Iterable[SecretStr | str | None], personal: Iterable[str] = ()
) -> str:
    """``text`` with every secret and personal value in it replaced by ``***``.

    Vendors and libraries echo a credential or a person's data back in an error
    body, and rarely as it was sent: lower-cased, URL- or JSON-escaped, cut off by
    an excerpt. Every value is looked for the way `platypus.redaction.Scrubber`
    reads text (case, escapes and cut values; short values only as whole words),
    and a secret also exactly, wherever it is. Every adapter passes the text it
    takes from a vendor's answer (or a library's exception) through here.
    """
    if not text:
        return text
    found = (s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets)
    keys: list[str] = [key for key in found if key]
    for key in keys:
        text = text.replace(key, MASK)
    values = frozenset([*keys, *(value for value in personal if value)])
    return scrub_text(text, values) if values else text


def mask_secrets_in_code(code: str, secrets: Iterable[SecretStr | str | None]) -> str:
    """A vendor's error code with any whole secret value in it replaced by ``***``.

    A code (``token_expired``, ``INVALID_SESSION_ID``) is a machine identifier
    that adapters compare to classify a failure: it is masked only where it holds
    a secret exactly, never by `mask_secrets_in`'s reading of cut values, which
    would take ``token`` in ``token_expired`` for the end of a token ending so.
    """
    for secret in secrets:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if value:
            code = code.replace(value, MASK)
    return code


TRANSPORT_ENV = "PLATYPUS_HTTP_TRANSPORT"
"""Set to ``httpx`` to give every vendor client httpx's own connection pool instead of aiohttp's."""


def async_client(
    *,
    base_url: str,
    timeout: float,
    max_connections: int,
    headers: Mapping[str, str] | None = None,
    ca_bundle: Path | None = None,
    proxy: str | None = None,
    verify: ssl.SSLContext | bool = True,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` set up the way vendor adapters need it.

    Connections are pooled up to ``max_connections``, and all of them are kept
    alive; redirects are not followed (a vendor that redirects an API call is
    misconfigured, and following it could send a credential elsewhere).
    ``ca_bundle`` verifies the vendor's certificate with those CAs instead of the
    system's (``verify`` takes a context or a flag instead); ``proxy`` sends every
    request through that proxy. When either is given, the environment
    (``HTTPS_PROXY``, ``SSL_CERT_FILE``) no longer overrides it.

    Requests go out through aiohttp's connection pool (`AiohttpTransport`, the
    ``httpx-aiohttp`` transport that openai-python ships): httpx's own pool costs
    more CPU per request the more connections it holds (encode/httpx#3215), which
    capped deliveries at about 100 a second at 64 connections. Adapters see
    httpx's API either way. httpx's pool is used instead for a SOCKS proxy (which
    aiohttp cannot speak) and when ``PLATYPUS_HTTP_TRANSPORT=httpx``.
    """
    if ca_bundle is not None:
        try:
            verify = ssl.create_default_context(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot use ca_bundle {ca_bundle}: {exc}; give a readable PEM file of CA "
                "certificates, or leave ca_bundle out to use the system's"
            ) from None
    trust_env = ca_bundle is None and proxy is None
    client_class = _AiohttpClient if _aiohttp_can_serve(proxy, trust_env) else httpx.AsyncClient
    return client_class(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=httpx.Timeout(timeout),
        # Keep as many connections alive as may be in use, or each call above the
        # cap opens a new TCP connection.
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
        verify=verify,
        proxy=proxy,
        trust_env=trust_env,
        auth=auth,
    )


def _aiohttp_can_serve(proxy: str | None, trust_env: bool) -> bool:
    """Whether aiohttp can honour the client's settings: not for a SOCKS proxy."""
    if os.environ.get(TRANSPORT_ENV, "").strip().lower() == "httpx":
        return False
    proxies = [proxy] if proxy else []
    if trust_env and not proxy:
        proxies = [
            value
            for name, value in os.environ.items()
            if name.lower() in ("all_proxy", "https_proxy", "http_proxy") and value
        ]
    return not any(p.strip().lower().startswith("socks") for p in proxies)


class _AiohttpClient(httpx.AsyncClient):
    """httpx's client with aiohttp's pool under it, for direct and proxied URLs alike.

    httpx still reads the proxy settings (explicit, or from the environment with
    ``NO_PROXY``), verifies with the same SSL context, applies ``auth``, headers,
    cookies and timeouts; only the connection pool is aiohttp's.
    """

    def __init__(self, *, cookies: _CookieTypes | None = None, **kwargs: Any) -> None:
        self._jar = _Cookies(cookies)
        super().__init__(**kwargs)
        # `send_content`'s headers by request shape; None: that shape goes through httpx.
        self._templates: dict[tuple[Any, ...], _Template | None] = {}

    # httpx reads and writes the client's cookies through this property only.
    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: _CookieTypes) -> None:
        self._jar = _Cookies(cookies)

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = httpx.Limits(),  # noqa: B008 -- httpx's signature
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncBaseTransport:
        del http1, http2
        if transport is not None:
            return transport
        return AiohttpTransport(verify=verify, cert=cert, trust_env=trust_env, limits=limits)

    def _init_proxy_transport(
        self,
        proxy: httpx.Proxy,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = httpx.Limits(),  # noqa: B008 -- httpx's signature
    ) -> httpx.AsyncBaseTransport:
        del http1, http2
        return AiohttpTransport(
            verify=verify, cert=cert, trust_env=trust_env, limits=limits, proxy=proxy
        )


class SecretHeaders(httpx.Auth):
    """Adds secret headers at send time, so they live only in `SecretStr` until then."""

    def __init__(self, headers: Mapping[str, SecretStr]) -> None:
        self._headers = dict(headers)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for name, value in self._headers.items():
            request.headers[name] = value.get_secret_value()
        yield request

    def apply(self, headers: list[tuple[str, str]]) -> None:
        """What `auth_flow` does to a request's headers, on a list of (lower-cased
        name, value) pairs as the aiohttp transport sends them (in place)."""
        for name, secret in self._headers.items():
            lower = name.lower()
            found = [i for i, (key, _) in enumerate(headers) if key == lower]
            value = secret.get_secret_value()
            if not found:
                headers.append((lower, value))
                continue
            headers[found[0]] = (headers[found[0]][0], value)
            for i in reversed(found[1:]):
                del headers[i]

    def __repr__(self) -> str:
        return f"SecretHeaders({sorted(self._headers)})"


@dataclass(frozen=True, slots=True)
class _Template:
    """The headers httpx would send for one shape of request, and where its values go."""

    transport: AiohttpTransport
    headers: tuple[tuple[str, str], ...]
    length_at: int  # the Content-Length header's index
    varying_at: tuple[tuple[str, int], ...]  # (name as the caller gives it, index)
    timeout: Mapping[str, float | None]


_TEMPLATES_KEPT = 1024
_httpx_log = logging.getLogger("httpx")


async def send_content(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    content: bytes,
    headers: Mapping[str, str],
    varying: Collection[str] = (),
) -> httpx.Response:
    """``client.send(client.build_request(method, url, content=content, headers=headers))``,
    its answer read whole, and the same request and answer either way.

    A client from `async_client` sends it straight through aiohttp's pool when
    httpx's client has nothing to add: no cookie in its jar, no redirect to
    follow, no event hook, no proxy, and no auth other than `SecretHeaders`. The
    headers are then the ones httpx built for the first request of this shape
    (method, URL, ``headers`` apart from the ``varying`` ones' values), with this
    request's length, ``varying`` values and secrets put in their places. That
    skips httpx's per-request machinery (header merging, the auth and redirect
    flows, four async generators to read the body), about a third of a call's
    CPU. Anything else goes through ``client.send``.
    """
    template = _direct(client, method, url, content, headers, varying)
    if template is None:
        return await client.send(
            client.build_request(method, url, content=content, headers=headers)
        )
    assert isinstance(client, _AiohttpClient)
    sent = list(template.headers)
    name, _ = sent[template.length_at]
    sent[template.length_at] = (name, str(len(content)))
    for given, at in template.varying_at:
        sent[at] = (sent[at][0], headers[given])
    auth = client.auth
    if isinstance(auth, SecretHeaders):
        auth.apply(sent)
    started = time.perf_counter()
    answer, body = await template.transport.fetch(method, url, sent, content, template.timeout)
    # The template holds every header httpx would add (Host and Content-Length
    # included), so the request is built from the stream: `content=` would run
    # httpx's body encoding and header defaults again (~18 against ~7 µs).
    request = httpx.Request(
        method,
        url,
        headers=sent,
        stream=httpx.ByteStream(content),
        extensions={"timeout": template.timeout},
    )
    request._content = content  # as Request.read() keeps it, for `request.content`
    response = httpx.Response(
        answer.status,
        headers=answer.raw_headers,
        stream=httpx.ByteStream(body),
        request=request,
        extensions=response_extensions(answer),
        default_encoding=client._default_encoding,  # as client.send sets it
    )
    response.read()  # decodes a Content-Encoding, as httpx would
    response.elapsed = timedelta(seconds=time.perf_counter() - started)
    client.cookies.extract_cookies(response)
    if _httpx_log.isEnabledFor(logging.INFO):
        _httpx_log.info(
            'HTTP Request: %s %s "%s %d %s"',
            method,
            url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
    return response


def _direct(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    content: bytes,
    headers: Mapping[str, str],
    varying: Collection[str],
) -> _Template | None:
    """The template to send this request straight through aiohttp, or None for httpx."""
    if (
        not isinstance(client, _AiohttpClient)
        or not content
        or client.is_closed
        or client.follow_redirects
        or client._jar  # cookies to send
        or any(client.event_hooks.values())
        or not (client.auth is None or isinstance(client.auth, SecretHeaders))
        or not all(headers[name].isascii() for name in varying)
    ):
        return None
    key = (
        method,
        url,
        tuple((k, v) for k, v in headers.items() if k not in varying),
        tuple(varying),
    )
    templates = client._templates
    if key in templates:
        return templates[key]
    if len(templates) >= _TEMPLATES_KEPT:
        templates.clear()
    found = templates[key] = _template(client, method, url, headers, varying)
    return found


def _template(
    client: _AiohttpClient,
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    varying: Collection[str],
) -> _Template | None:
    transport = client._transport_for_url(url)  # the proxy mounts' choice
    if not isinstance(transport, AiohttpTransport) or transport.proxy is not None:
        return None
    probe = client.build_request(
        method, url, content=b"-", headers={**headers, **dict.fromkeys(varying, "-")}
    )
    if probe.url != url:  # the client's params
        return None
    try:
        # Names lower-cased, as the transport hands httpx's headers to aiohttp.
        sent = [(k.decode("ascii").lower(), v.decode("ascii")) for k, v in probe.headers.raw]
    except UnicodeDecodeError:
        return None
    lowered = [k.lower() for k, _ in sent]
    wanted = ["host", "content-length", *(name.lower() for name in varying)]
    if len(set(lowered)) != len(lowered) or not all(name in lowered for name in wanted):
        return None  # a name sent twice, or not where it is looked for
    if "cookie" in lowered or "transfer-encoding" in lowered:
        return None
    timeout = probe.extensions.get("timeout")
    if not isinstance(timeout, dict):
        return None
    return _Template(
        transport=transport,
        headers=tuple(sent),
        length_at=lowered.index("content-length"),
        varying_at=tuple((name, lowered.index(name.lower())) for name in varying),
        timeout=timeout,
    )


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which reads an answer only when it sets a cookie.

    httpx hands every response to the jar, which wraps it and the request in
    urllib's types first (~12% of an adapter call's CPU) just to find no
    ``Set-Cookie`` header in most answers from an API.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


def parse_input(model: type[_M], payload: Any, *, connection: str, action: str) -> _M:
    """``payload`` as ``model``; a mismatch is a `PermanentError` naming the first bad field.

    The message names where the payload is wrong and why, never the value there,
    which may be personal data.
    """
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(payload)"
        raise PermanentError(
            f"connection {connection!r}: the payload of {action!r} is invalid at {where}: "
            f"{first['msg']}; fix the step's mapping"
        ) from None


def transport_failure(
    vendor: str,
    where: str,
    exc: httpx.HTTPError,
    *,
    timeout: float,
    url: str,
    scrub: Callable[[str], str] = str,
    repeat: str = "",
) -> RetryableError:
    """The `RetryableError` for a call that got no answer: a timeout, a refused or reset connection.

    ``repeat`` says why sending the call again is safe (or what it risks).
    """
    why = f" ({repeat})" if repeat else ""
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(
            f"{vendor} {where} timed out ({type(exc).__name__}) after {timeout:g}s; "
            f"retryable{why}. Raise the connection's timeout if {vendor} is just slow"
        )
    return RetryableError(
        f"{vendor} {where} failed: {type(exc).__name__}: {scrub(str(exc)) or 'no detail'}; "
        f"retryable{why}. Check that {vendor} is reachable at {url}"
    )


def https_root(value: str, example: str) -> str:
    """``value`` as ``https://host[:port]``: an HTTPS URL without a path (a settings check)."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme != "https" or not url.host:
        raise ValueError(f"must be an https:// URL, such as {example}")
    if url.path not in ("", "/") or url.query:
        raise ValueError(f"must be the URL without a path, such as {example}")
    return f"https://{url.netloc.decode('ascii')}"


def blank_is_unset(value: Any) -> Any:
    """None for an empty string: ``${NAME:-}`` in platypus.yaml leaves a setting unset."""
    return None if value == "" else value


def verify_with(ca_bundle: Path | None, *, connection: str = "") -> ssl.SSLContext | bool:
    """httpx's ``verify``: a context trusting ``ca_bundle`` (PEM), or the system's CAs.

    A bundle that cannot be read is a `ConfigurationError` naming the setting.
    """
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigurationError(
            f"connection {connection!r}: ca_bundle {ca_bundle} cannot be used: {reason}; "
            "give a readable PEM file of CA certificates"
        ) from None


def untrusted_certificate(exc: BaseException) -> bool:
    """Whether a transport error is a TLS certificate the client does not trust."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
