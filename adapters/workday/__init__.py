"""The ``workday`` adapter: Workday Web Services (Human_Resources v30.0) over SOAP with zeep.

::

    connections:
      hr:
        adapter: workday
        settings:
          tenant: acme
          username: isu_platypus          # sent as isu_platypus@acme
          password: {env: WORKDAY_ISU_PASSWORD}
          wsdl: /etc/platypus/Human_Resources-v30.wsdl
          timeout: 30s

Actions:

* ``get_workers`` (a lookup): ``Get_Workers`` by Employee_ID (or Contingent_Worker_ID,
  WID), or by "updated in a range" through ``Transaction_Log_Criteria_Data``, the
  query a poller runs. Returns compact workers and the page it read.
* ``change_work_email`` (a write): ``Change_Work_Contact_Information`` making an
  address the worker's primary work e-mail. Returns the event's WID.

Every request carries a WS-Security UsernameToken (``user@tenant`` and the
password, as text, as Workday requires). If the tenant answers an authentication
fault, the password is re-read from its `SecretRef` (it may have been rotated)
and the call is sent once more; a second refusal is permanent.

zeep is synchronous: calls run in a bounded thread pool (``max_workers``), each
with the connection's ``timeout``. Faults are classified in `._faults`.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import requests
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from requests.adapters import HTTPAdapter
from zeep import Client, Settings, Transport
from zeep.exceptions import TransportError
from zeep.wsdl import Document
from zeep.wsse.username import UsernameToken

from platypus.adapter import Action, Adapter, Request
from platypus.exceptions import ConfigurationError, DeliveryError, PermanentError
from platypus.logging import get_logger
from platypus.retry import Duration
from platypus.secrets import SecretRef
from platypus.vendorhttp import mask_secrets_in

from ._faults import AuthenticationFaultError, classify
from ._workers import (
    change_work_email_request,
    event_reference,
    get_workers_request,
    workers_page,
)

__all__ = [
    "BINDING",
    "ChangeWorkEmailInput",
    "GetWorkersInput",
    "GetWorkersParams",
    "WorkdayAdapter",
    "WorkdaySettings",
    "default_endpoint",
]

BINDING = "{urn:com.workday/bsvc/Human_Resources}Human_ResourcesBinding"
_ENDPOINT = "https://wd2-impl-services1.workday.com/ccx/service/{tenant}/Human_Resources/v30.0"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOGGER = "platypus.adapters.workday"
_M = TypeVar("_M", bound=BaseModel)


def default_endpoint(tenant: str) -> str:
    """The Human_Resources v30.0 endpoint of ``tenant`` on Workday's wd2 implementation host."""
    return _ENDPOINT.format(tenant=tenant)


class WorkdaySettings(BaseModel):
    """Settings of a ``workday`` connection. The password is a `SecretRef`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Tenant name, as in the service URL (.../ccx/service/<tenant>/...).",
        examples=["acme", "acme_preview1"],
    )
    username: str = Field(
        min_length=1,
        description="Integration system user; '@<tenant>' is appended when it has no '@'.",
        examples=["isu_platypus", "isu_platypus@acme"],
    )
    password: SecretRef = Field(
        description="Where the ISU's password is read from ({env: NAME} or {file: PATH}); "
        "re-read once when the tenant refuses it."
    )
    wsdl: str = Field(
        min_length=1,
        description="Path or URL of the Human_Resources v30.0 WSDL, read once at start.",
        examples=["/etc/platypus/Human_Resources-v30.wsdl"],
    )
    endpoint: str | None = Field(
        default=None,
        description="SOAP endpoint; default https://wd2-impl-services1.workday.com/ccx/"
        "service/<tenant>/Human_Resources/v30.0. Take your tenant's host from its "
        "'Public Web Services' report.",
    )
    timeout: Duration = Field(
        default=30.0, gt=0, description="Connect and read timeout of one call (e.g. 30s)."
    )
    max_workers: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Most calls in flight at once (zeep is synchronous: one thread each).",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA certificates (PEM) that verify the tenant's TLS certificate instead "
        "of the system's; REQUESTS_CA_BUNDLE is then ignored.",
    )
    proxy: str | None = Field(
        default=None,
        description="HTTP(S) proxy for the calls, e.g. http://proxy:3128; null: HTTPS_PROXY "
        "from the environment (unless ca_bundle is set).",
    )

    @field_validator("endpoint", "ca_bundle", "proxy", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # platypus.yaml reads these from the environment: ${NAME:-} is "" when unset.
        return None if value == "" else value

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// proxy URL, e.g. http://proxy:3128")
        return value

    @model_validator(mode="after")
    def _check_endpoint(self) -> WorkdaySettings:
        if self.endpoint is not None and not self.endpoint.startswith(("https://", "http://")):
            raise ValueError("endpoint must be an absolute http:// or https:// URL")
        return self

    @property
    def service_url(self) -> str:
        """The endpoint calls are sent to."""
        return self.endpoint or default_endpoint(self.tenant)

    @property
    def login(self) -> str:
        """The UsernameToken's user name: ``user@tenant``."""
        return self.username if "@" in self.username else f"{self.username}@{self.tenant}"


class GetWorkersParams(BaseModel):
    """A step's ``params`` for ``get_workers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: int = Field(
        default=100, ge=1, le=999, description="Workers per page (Response_Filter/Count)."
    )


class _NoParams(BaseModel):
    """A step's ``params`` for an action that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GetWorkersInput(BaseModel):
    """Payload of ``get_workers``: worker IDs, or an updated-in range (both ends)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    employee_ids: list[str] = Field(
        default_factory=list,
        max_length=999,
        description="IDs of the workers to read; IDs Workday does not know come back in 'missing'.",
    )
    id_type: Literal["Employee_ID", "Contingent_Worker_ID", "WID"] = Field(
        default="Employee_ID", description="What kind of ID employee_ids holds."
    )
    updated_from: AwareDatetime | None = Field(
        default=None, description="Workers with a transaction updated at or after this."
    )
    updated_through: AwareDatetime | None = Field(
        default=None, description="... and at or before this (Transaction_Log_Criteria_Data)."
    )
    page: int = Field(default=1, ge=1, description="Page to read (1-based).")
    as_of_entry: AwareDatetime | None = Field(
        default=None,
        description="Read data as entered at this moment (Response_Filter/"
        "As_Of_Entry_DateTime); give the same value on every page for stable paging.",
    )

    @model_validator(mode="after")
    def _one_query(self) -> GetWorkersInput:
        ranged = self.updated_from is not None or self.updated_through is not None
        if bool(self.employee_ids) == ranged:
            raise ValueError("give either employee_ids or updated_from and updated_through")
        if ranged:
            if self.updated_from is None or self.updated_through is None:
                raise ValueError("an updated range needs both updated_from and updated_through")
            if self.updated_from > self.updated_through:
                raise ValueError("updated_from is after updated_through")
        return self


class ChangeWorkEmailInput(BaseModel):
    """Payload of ``change_work_email``: whose work e-mail becomes what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    employee_id: str = Field(min_length=1, description="The worker's ID.")
    id_type: Literal["Employee_ID", "Contingent_Worker_ID"] = Field(
        default="Employee_ID", description="What kind of ID employee_id is."
    )
    email: str = Field(max_length=254, description="The new primary work e-mail address (public).")
    effective_date: date | None = Field(
        default=None, description="When the change takes effect; default: today, in Workday."
    )

    @model_validator(mode="after")
    def _check_email(self) -> ChangeWorkEmailInput:
        if not _EMAIL.match(self.email):
            raise ValueError("email is not an e-mail address")
        return self


class _QuietTransport(Transport):
    """zeep's transport without its debug log of every envelope.

    zeep logs each request in full at DEBUG level, WS-Security password included,
    and each response, personal data included. Neither may reach a log.
    """

    def post(self, address: str, message: Any, headers: dict[str, str]) -> Any:
        response = self.session.post(
            address, data=message, headers=headers, timeout=self.operation_timeout
        )
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if response.status_code >= 400 and not media_type.endswith("xml"):
            # An error page (a gateway, a maintenance window), not a SOAP fault: keep
            # its status, which zeep would lose if the page happens to parse as XML.
            raise TransportError(  # type: ignore[no-untyped-call]
                f"HTTP {response.status_code}",
                status_code=response.status_code,
                content=response.content,
            )
        return response


@functools.lru_cache(maxsize=8)
def _load_wsdl(location: str, timeout: float) -> Any:
    """The parsed WSDL (~0.3 s for Human_Resources), shared by connections that use it."""
    transport = Transport(timeout=timeout)  # type: ignore[no-untyped-call]
    # zeep annotates `transport` as a class, but passes and uses an instance.
    return Document(location, transport, settings=Settings())  # type: ignore[arg-type]


class WorkdayAdapter(Adapter):
    """Calls Workday's Human_Resources service through zeep, in a bounded thread pool."""

    name = "workday"
    Settings = WorkdaySettings
    actions: ClassVar = {
        "get_workers": Action(
            params=GetWorkersParams,
            input=GetWorkersInput,
            description="Get_Workers by ID, or updated in a range; compact workers.",
            writes=False,
        ),
        "change_work_email": Action(
            params=_NoParams,
            input=ChangeWorkEmailInput,
            description="Change_Work_Contact_Information: set the primary work e-mail.",
            writes=True,
            # Each call is a new business-process event, and a replayed old event
            # would overwrite a newer address: the delivery ledger guards it.
            idempotent=False,
        ),
    }

    def __init__(self, settings: Any, *, connection: str = "") -> None:
        if not isinstance(settings, WorkdaySettings):
            raise TypeError(f"WorkdayAdapter needs WorkdaySettings, got {type(settings).__name__}")
        super().__init__(settings, connection=connection)
        self._config = settings
        self._password: SecretStr | None = None
        self._old_passwords: list[SecretStr] = []
        self._client: Any = None
        self._service: Any = None
        self._session: requests.Session | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._refresh_lock = asyncio.Lock()
        self._generation = 0

    # -- life ---------------------------------------------------------------

    async def start(self) -> None:
        """Read the password, load the WSDL and open the thread pool and HTTP session."""
        if self._service is not None:
            return
        config = self._config
        self._password = self._resolve_password()
        pool = ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix=f"workday-{self.connection}"
        )
        loop = asyncio.get_running_loop()
        try:
            document = await loop.run_in_executor(pool, _load_wsdl, config.wsdl, config.timeout)
        except Exception as exc:  # noqa: BLE001 -- any load failure is a configuration problem
            pool.shutdown(wait=False)
            raise ConfigurationError(
                f"connection {self.connection!r} (adapter 'workday'): cannot load the WSDL "
                f"{config.wsdl!r}: {type(exc).__name__}: {exc}; check the 'wsdl' setting"
            ) from None
        session = requests.Session()
        # One pooled connection per worker thread, so no call waits for a socket.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=config.max_workers)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        if config.ca_bundle is not None:
            session.verify = str(config.ca_bundle)
            # Otherwise REQUESTS_CA_BUNDLE and friends override `verify`.
            session.trust_env = False
        if config.proxy is not None:
            session.proxies = {"https": config.proxy, "http": config.proxy}
        transport = _QuietTransport(  # type: ignore[no-untyped-call]
            session=session, timeout=config.timeout, operation_timeout=config.timeout
        )
        token = self._token(self._password)
        client = Client(document, wsse=token, transport=transport)  # type: ignore[no-untyped-call]
        self._client = client
        self._service = client.create_service(BINDING, config.service_url)  # type: ignore[no-untyped-call]
        self._session = session
        self._pool = pool

    async def close(self) -> None:
        """Stop the thread pool (calls in flight finish) and close the HTTP session."""
        pool, self._pool = self._pool, None
        session, self._session = self._session, None
        self._service = self._client = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if session is not None:
            session.close()

    # -- calls --------------------------------------------------------------

    async def call(self, request: Request) -> Any:
        """Run ``request.action``; see the module docstring for the results."""
        self.check_request(request)
        if self._service is None:
            raise RuntimeError(f"connection {self.connection!r} is not started; call start()")
        if request.action == "get_workers":
            lookup = self._input(GetWorkersInput, request)
            params = self._params(GetWorkersParams, request)
            kwargs = get_workers_request(
                ids=lookup.employee_ids,
                id_type=lookup.id_type,
                updated_from=lookup.updated_from,
                updated_through=lookup.updated_through,
                page=lookup.page,
                count=params.page_size,
                as_of_entry=lookup.as_of_entry,
            )
            response = await self._invoke("Get_Workers", kwargs)
            return workers_page(response, requested=lookup.employee_ids)

        change = self._input(ChangeWorkEmailInput, request)
        self._params(_NoParams, request)
        kwargs = change_work_email_request(
            person_id=change.employee_id,
            id_type=change.id_type,
            email=change.email,
            effective_date=change.effective_date,
        )
        response = await self._invoke("Change_Work_Contact_Information", kwargs)
        event = event_reference(response, "Change_Work_Contact_Information_Event_Reference")
        return {
            "event_id": event,
            "employee_id": change.employee_id,
            "email": change.email,
        }

    async def _invoke(self, operation: str, kwargs: dict[str, Any]) -> Any:
        """Call ``operation``; on an authentication fault re-read the password once."""
        where = f"Workday {operation} (connection {self.connection!r})"
        generation = self._generation
        try:
            return await self._send(operation, kwargs, where)
        except AuthenticationFaultError:
            await self._refresh(generation)
        try:
            return await self._send(operation, kwargs, where)
        except AuthenticationFaultError as exc:
            raise PermanentError(
                f"{where}: Workday refused the credentials of {self._config.login!r} "
                f"({exc.fault_code or 'authentication fault'}), also after re-reading the "
                f"password from {self._config.password}; check the integration system user's "
                "password, that the account is active and not locked, and the tenant name",
                status_code=500,
                vendor_code=exc.fault_code or None,
            ) from None

    async def _send(self, operation: str, kwargs: dict[str, Any], where: str) -> Any:
        pool = self._pool
        if pool is None or self._service is None:
            raise RuntimeError(f"connection {self.connection!r} is closed")
        method: Callable[..., Any] = self._service[operation]
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, functools.partial(method, **kwargs))
        except Exception as exc:  # noqa: BLE001 -- every failure is classified, then raised
            error = classify(exc, where=where, timeout=self._config.timeout)
            raise self._scrubbed(error) from None

    async def _refresh(self, generation: int) -> None:
        """Re-read the password and rebuild the token, unless another call just did."""
        async with self._refresh_lock:
            if generation != self._generation or self._client is None:
                return
            old = self._password
            try:
                self._password = self._resolve_password()
            except ConfigurationError as exc:
                raise PermanentError(
                    f"{exc}; Workday refused the old password, and the new one cannot be read"
                ) from None
            if old is not None and old.get_secret_value() != self._password.get_secret_value():
                self._old_passwords.append(old)
            self._client.wsse = self._token(self._password)
            self._generation += 1
            # Looked up here, not at import: logging may be configured after that.
            get_logger(_LOGGER).info(
                "workday credentials re-read after an authentication fault",
                connection=self.connection,
                username=self._config.login,
                source=str(self._config.password),
            )

    # -- helpers ------------------------------------------------------------

    def _resolve_password(self) -> SecretStr:
        try:
            return self._config.password.resolve()
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"connection {self.connection!r} (adapter 'workday'): password: {exc}"
            ) from None

    def _token(self, password: SecretStr) -> Any:
        # Workday takes the password as text (PasswordText), not a digest.
        return UsernameToken(self._config.login, password.get_secret_value())  # type: ignore[no-untyped-call]

    def _input(self, model: type[_M], request: Request) -> _M:
        try:
            return model.model_validate(request.payload)
        except ValidationError as exc:
            raise PermanentError(
                f"connection {self.connection!r}: invalid input for {request.action!r}: "
                f"{_first_error(exc)}; fix the step's mapping"
            ) from None

    def _params(self, model: type[_M], request: Request) -> _M:
        try:
            return model.model_validate(dict(request.params))
        except ValidationError as exc:
            raise PermanentError(
                f"connection {self.connection!r}: invalid params for {request.action!r}: "
                f"{_first_error(exc)}; fix the step's params"
            ) from None

    def _scrubbed(self, error: DeliveryError) -> DeliveryError:
        # A tenant or a library may echo a credential back; never pass it on.
        message = mask_secrets_in(error.message, [self._password, *self._old_passwords])
        if message == error.message:
            return error
        return type(error)(
            message,
            status_code=error.status_code,
            retry_after=error.retry_after,
            vendor_code=error.vendor_code,
        )

    def __repr__(self) -> str:
        return (
            f"WorkdayAdapter(connection={self.connection!r}, "
            f"endpoint={self._config.service_url!r}, username={self._config.login!r})"
        )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])
