"""The adapter registry: built-ins and third-party adapters found by name."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from platypus.adapter import Action, Adapter, AdapterRegistry, Request
from platypus.exceptions import ConfigurationError, PermanentError
from platypus_adapters.http import HttpAdapter
from platypus_adapters.sink import SinkAdapter


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loud: bool = False


class EchoAdapter(Adapter):
    name = "echo"
    Settings = EchoSettings
    actions: ClassVar = {"say": Action(params=EchoParams)}

    async def call(self, request: Request) -> Any:
        self.check_request(request)
        return f"{self.settings.prefix}{request.payload}"  # type: ignore[attr-defined]


def test_the_shipped_adapters_are_registered_through_the_entry_point_group() -> None:
    names = {ep.name for ep in entry_points(group="platypus.adapters")}
    assert {"http", "sink"} <= names
    registry = AdapterRegistry.default()
    assert registry.get("http") is HttpAdapter
    assert registry.get("sink") is SinkAdapter


def test_an_adapter_can_be_registered_as_a_class_or_a_module_reference() -> None:
    registry = AdapterRegistry()
    registry.register("echo", EchoAdapter)
    registry.register("sink2", "platypus_adapters.sink:SinkAdapter")
    assert registry.get("echo") is EchoAdapter
    assert registry.get("sink2") is SinkAdapter
    assert list(registry) == ["echo", "sink2"]


def test_an_unknown_adapter_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown adapter 'htp'.*did you mean 'http'"):
        AdapterRegistry.default().get("htp")


def test_an_unimportable_adapter_says_to_install_its_package() -> None:
    registry = AdapterRegistry({"acme": "acme_platypus_adapter:AcmeAdapter"})
    with pytest.raises(ConfigurationError, match="Install the package that provides it"):
        registry.get("acme")


def test_a_reference_to_something_not_an_adapter_is_refused() -> None:
    registry = AdapterRegistry({"bad": "platypus.adapter:Request"})
    with pytest.raises(ConfigurationError, match="is not an Adapter subclass"):
        registry.get("bad")


def test_invalid_settings_name_the_connection_and_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"connection 'shout'.*prefix: Field required"):
        EchoAdapter.from_config({}, connection="shout")


def test_params_are_validated_per_action_and_unknown_actions_get_a_suggestion() -> None:
    adapter = EchoAdapter.from_config({"prefix": "> "}, connection="shout")
    assert adapter.params_for("say", {"loud": True}) == {"loud": True}
    with pytest.raises(ConfigurationError, match=r"no action 'sya'.*did you mean 'say'"):
        adapter.params_for("sya", {})


async def test_calling_an_unknown_action_is_a_permanent_error() -> None:
    adapter = EchoAdapter.from_config({"prefix": "> "})
    assert await adapter.call(Request(action="say", payload="hi")) == "> hi"
    with pytest.raises(PermanentError, match="no action 'shout'"):
        await adapter.call(Request(action="shout", payload="hi"))


def test_the_idempotency_key_is_stable_for_an_event_flow_and_step() -> None:
    one = Request(action="say", payload=1, event_id="e1", flow="f", step="s", attempt=1)
    two = Request(action="say", payload=2, event_id="e1", flow="f", step="s", attempt=3)
    assert one.idempotency_key == two.idempotency_key == "e1:f:s"
