"""Adapters: the plugins that write events into other systems, and their registry.

An adapter is a class with a typed settings model and a set of named actions.
A *connection* (in ``platypus.yaml``) is an adapter with its settings; a flow
step sends to ``connection.action``::

    class HttpAdapter(Adapter):
        name = "http"
        Settings = HttpSettings
        actions = {"post": Action(params=PostParams), "put": Action(params=PutParams)}

        async def call(self, request: Request) -> Any:
            ...   # raise RetryableError or PermanentError on failure

Adapters are found by name in a registry that reads the ``platypus.adapters``
entry-point group, so a third-party package adds a vendor with no engine edit::

    [project.entry-points."platypus.adapters"]
    acme = "acme_platypus:AcmeAdapter"
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platypus._frozen import quick_init
from platypus.exceptions import ConfigurationError, PermanentError
from platypus.plugins import PluginRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "FREE_TEXT_KEY",
    "ONE_OF_REQUIRED_KEY",
    "Action",
    "Adapter",
    "AdapterRegistry",
    "FreeText",
    "NoSettings",
    "Request",
    "one_of_required",
]

ENTRY_POINT_GROUP = "platypus.adapters"

# Adapters that ship with Platypus, found even when the package metadata is not
# installed (running from a source tree). Entry points override these.
_BUILTIN: dict[str, str] = {
    "http": "platypus_adapters.http:HttpAdapter",
    "netsuite": "platypus_adapters.netsuite:NetSuiteAdapter",
    "salesforce": "platypus_adapters.salesforce:SalesforceAdapter",
    "sink": "platypus_adapters.sink:SinkAdapter",
    "slack": "platypus_adapters.slack:SlackAdapter",
    "workday": "platypus_adapters.workday:WorkdayAdapter",
    "zuora": "platypus_adapters.zuora:ZuoraAdapter",
    "okta": "platypus_adapters.okta:OktaAdapter",
    "scim": "platypus_adapters.scim:ScimAdapter",
    "coupa": "platypus_adapters.coupa:CoupaAdapter",
}


FREE_TEXT_KEY = "x-free-text"
ONE_OF_REQUIRED_KEY = "x-one-of-required"

FreeText: Any = Field(json_schema_extra={FREE_TEXT_KEY: True})
"""Marks an input field as free text that people read and search (a chat message, a
comment): ``text: Annotated[str | None, FreeText] = None``. Personal data mapped to
it is refused by ``platypus flows lint`` and at start-up unless the step allows it
(``allow_personal_data``)."""


def one_of_required(*groups: Sequence[str]) -> dict[str, Any]:
    """``model_config`` JSON Schema extra: of each group of fields, one at least is needed.

    ``model_config = ConfigDict(json_schema_extra=one_of_required(("text", "blocks")))``
    says a message needs ``text`` or ``blocks``, so lint refuses a step mapping
    neither. The model still checks it itself (a validator) at run time.
    """
    return {ONE_OF_REQUIRED_KEY: [list(group) for group in groups]}


class NoSettings(BaseModel):
    """Settings of an adapter that needs none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Action:
    """One thing an adapter can do.

    ``params`` models the static options a step gives in ``params:``; ``input``
    models the payload, when the action has a fixed shape (``None``: any JSON);
    ``result`` models what the action returns, which later steps read as
    ``steps.<name>.<field>`` (``None``: not declared, anything goes). All three
    are used by ``platypus flows lint`` before anything runs.

    ``binds`` names the payload keys the (validated) params refer to, as
    ``(param, key)`` pairs: the ``:name``s of a SOQL query, or the payload key a
    param names (an upsert's external id field). The adapter reads those keys at
    run time; lint reports one the payload does not map.

    ``writes`` is False for lookups, which are safe to repeat. ``idempotent``
    says the vendor itself turns a repeated write into one record (an upsert by
    external id, an ``Idempotency-Key`` it honours). A write that is not is
    guarded by the runtime's delivery ledger: a step already delivered for an
    event is not sent again when the event is replayed.
    """

    params: type[BaseModel] | None = None
    input: type[BaseModel] | None = None
    result: type[BaseModel] | None = None
    binds: Callable[[BaseModel], Sequence[tuple[str, str]]] | None = None
    description: str = ""
    writes: bool = True
    idempotent: bool = False

    @property
    def guarded(self) -> bool:
        """Whether the runtime guards this action with the delivery ledger before it
        goes on: a write the vendor does not de-duplicate itself."""
        return self.writes and not self.idempotent


@quick_init  # one per step run (platypus._frozen)
@dataclass(frozen=True, slots=True)
class Request:
    """What a step asks an adapter to do, once.

    ``idempotency_key`` is stable across retries and replays of the same event
    and step, so vendors that support it can drop duplicate writes.
    """

    action: str
    payload: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = ""
    event_type: str = ""
    key: str = ""
    flow: str = ""
    step: str = ""
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        return f"{self.event_id}:{self.flow}:{self.step}"


class Adapter:
    """Base class of adapters. Subclasses set `name`, `Settings`, `actions`, and `call`.

    One instance serves one connection; `start` and `close` bracket its life
    (open a client pool, log in). `call` raises `RetryableError` for failures a
    later attempt may fix and `PermanentError` for the rest; any other exception
    is treated as permanent by the runtime, since nobody classified it.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type[BaseModel]] = NoSettings
    actions: ClassVar[Mapping[str, Action]] = {}

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        self.settings = settings
        self.connection = connection or self.name

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, connection: str = "") -> Adapter:
        """Build from a raw settings mapping; bad settings raise `ConfigurationError`."""
        try:
            settings = cls.Settings.model_validate(dict(config))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}"
                for err in exc.errors(include_input=False)
            )
            raise ConfigurationError(
                f"connection {connection or cls.name!r} (adapter {cls.name!r}) "
                f"has invalid settings: {problems}"
            ) from None
        return cls(settings, connection=connection)

    def params_for(self, action: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Validate a step's static ``params`` for ``action`` (done once, at start-up)."""
        spec = self.actions.get(action)
        if spec is None:
            raise ConfigurationError(_unknown_action(self.name, action, self.actions))
        if spec.params is None:
            return dict(params)
        return spec.params.model_validate(dict(params)).model_dump()

    async def start(self) -> None:
        """Open connections or log in. Called once before the first `call`."""

    async def close(self) -> None:
        """Release what `start` opened."""

    async def call(self, request: Request) -> Any:
        """Perform ``request.action``; return its result (a JSON-able value or None)."""
        raise NotImplementedError

    def check_request(self, request: Request) -> None:
        """Refuse a request whose action is unknown (permanent: a flow bug)."""
        if request.action not in self.actions:
            raise PermanentError(_unknown_action(self.name, request.action, self.actions))


def _unknown_action(adapter: str, action: str, actions: Mapping[str, Action]) -> str:
    close = difflib.get_close_matches(action, list(actions), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(sorted(actions)) or "(none)"
    return f"adapter {adapter!r} has no action {action!r} (it has: {known}){hint}"


class AdapterRegistry(PluginRegistry[Adapter]):
    """Adapter classes by name, from built-ins and the ``platypus.adapters`` entry points."""

    def __init__(self, adapters: Mapping[str, str | type[Adapter]] | None = None) -> None:
        super().__init__(Adapter, "adapter", adapters)

    @classmethod
    def default(cls) -> AdapterRegistry:
        """Built-in adapters plus every installed ``platypus.adapters`` entry point."""
        registry = cls()
        registry._with_entry_points(ENTRY_POINT_GROUP, _BUILTIN)
        return registry
