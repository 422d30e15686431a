"""`ApiAdapter`: the base of adapters that call one vendor's HTTP API through a pool.

The vendor adapters that speak HTTP (Coupa, Okta, SCIM, Slack, Zuora) share the
same life: `start` reads the secrets and opens one pooled client, `close` closes
it and forgets what the calls fetched, and a call before `start` is a bug in the
caller. Most also share their dispatch: one method ``_<action>`` an action, given
the payload as the action's input model, returning the action's result model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel

from platypus.adapter import Adapter, Request
from platypus.vendorhttp import parse_input

__all__ = ["ApiAdapter"]


class ApiAdapter(Adapter):
    """An adapter with one pooled `httpx.AsyncClient`, opened by `start`.

    Subclasses implement `open_client` (read the secrets, then build the client
    with `platypus.vendorhttp.async_client`) and may implement `forget` (drop
    cached tokens). The default `call` runs the method named ``_<action>`` with
    the payload validated against the action's ``input`` model, and returns its
    result model as JSON; an adapter that calls differently overrides `call`.
    """

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        super().__init__(settings, connection=connection)
        self._client: httpx.AsyncClient | None = None

    def open_client(self) -> httpx.AsyncClient:
        """Read the connection's secrets and build its client (called by `start`)."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop what calls fetched and cached, such as access tokens (called by `close`)."""

    async def start(self) -> None:
        """Open the connection pool; a second `start` keeps the open one."""
        if self._client is None:
            self._client = self.open_client()

    async def close(self) -> None:
        """Close the connection pool and forget what the calls fetched."""
        client, self._client = self._client, None
        self.forget()
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        """The open client; using it before `start` raises `RuntimeError`."""
        if self._client is None:
            raise RuntimeError(f"connection {self.connection!r} is not started; call start()")
        return self._client

    async def call(self, request: Request) -> Any:
        """Perform one action; return what its ``result`` model describes, as JSON."""
        self.check_request(request)
        spec = self.actions[request.action]
        if spec.input is None:
            raise NotImplementedError(
                f"{type(self).__name__}: action {request.action!r} declares no input "
                "model; override call() for it"
            )
        payload = parse_input(
            spec.input, request.payload, connection=self.connection, action=request.action
        )
        handler: Callable[[BaseModel], Awaitable[BaseModel]] = getattr(self, f"_{request.action}")
        result = await handler(payload)
        return result.model_dump(mode="json")
