"""`ApiAdapter`: the life of one pooled client, and dispatch to one method per action."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from platypus.adapter import Action, Request
from platypus.apiadapter import ApiAdapter
from platypus.exceptions import PermanentError


class Greeting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class Greeted(BaseModel):
    text: str


class Settings(BaseModel):
    base_url: str = "http://127.0.0.1:9"


class Greeter(ApiAdapter):
    name = "greeter"
    Settings = Settings
    actions: ClassVar = {
        "greet": Action(input=Greeting, result=Greeted),
        "shout": Action(),  # no input model: the default call cannot run it
    }

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        super().__init__(settings, connection=connection)
        self.opened: list[httpx.AsyncClient] = []
        self.forgotten = 0

    def open_client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url="http://127.0.0.1:9")
        self.opened.append(client)
        return client

    def forget(self) -> None:
        self.forgotten += 1

    async def _greet(self, data: Greeting) -> Greeted:
        assert self.client is self.opened[-1]
        return Greeted(text=f"hello {data.name}")


def request(action: str, payload: dict[str, Any]) -> Request:
    return Request(action=action, payload=payload, event_id="e-1", flow="f", step="s")


async def test_start_opens_one_client_and_close_closes_it_and_forgets() -> None:
    adapter = Greeter(Settings(), connection="hello")
    await adapter.start()
    await adapter.start()  # a second start keeps the open pool
    assert len(adapter.opened) == 1
    client = adapter.client
    await adapter.close()
    assert client.is_closed
    assert adapter.forgotten == 1
    await adapter.close()  # closing a closed adapter is harmless
    with pytest.raises(RuntimeError, match="connection 'hello' is not started; call start"):
        _ = adapter.client


async def test_call_runs_the_actions_method_with_its_input_model_and_returns_json() -> None:
    adapter = Greeter(Settings())
    await adapter.start()
    try:
        assert await adapter.call(request("greet", {"name": "Ada"})) == {"text": "hello Ada"}
    finally:
        await adapter.close()


async def test_a_bad_payload_is_permanent_and_names_the_field_not_the_value() -> None:
    adapter = Greeter(Settings(), connection="hello")
    await adapter.start()
    try:
        with pytest.raises(PermanentError) as caught:
            await adapter.call(request("greet", {"name": "Ada", "ssn": "123-45-6789"}))
        with pytest.raises(PermanentError, match="has no action 'wave'"):
            await adapter.call(request("wave", {}))
        with pytest.raises(NotImplementedError, match="override call"):
            await adapter.call(request("shout", {}))
    finally:
        await adapter.close()
    message = str(caught.value)
    assert "connection 'hello'" in message
    assert "invalid at ssn" in message
    assert "123-45-6789" not in message
