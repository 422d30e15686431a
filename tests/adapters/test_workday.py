"""The ``workday`` adapter against a loopback Workday that validates with the real WSDL."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from lxml import etree
from zeep.exceptions import Fault

from platypus.adapter import Adapter, Request
from platypus.exceptions import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    RetryableError,
)
from platypus.logging import configure_logging
from platypus_adapters.workday import WorkdayAdapter, WorkdaySettings, default_endpoint
from platypus_adapters.workday._faults import AuthenticationFaultError, classify
from tests.adapters import echoes
from tests.adapters.contract import AdapterContract, Failure
from tests.fakes.proxy import TunnelProxy
from tests.fakes.tls import TestCA
from tests.fakes.workday import (
    WD,
    WSSE,
    Delay,
    FakeWorkday,
    ScriptedFault,
    WorkdaySchema,
    wsdl_path,
)

WSDL = wsdl_path()
PASSWORD = "wd-isu-secret-7c41"
PASSWORD_ENV = "CONTRACT_WORKDAY_PASSWORD"

pytestmark = pytest.mark.skipif(
    not WSDL.exists(),
    reason=f"the Workday WSDL is not at {WSDL}; set PLATYPUS_WORKDAY_WSDL to run these tests",
)


@pytest.fixture(scope="session")
def _workday_server() -> Iterator[FakeWorkday]:
    # One server and one WSDL load for the session; each test resets the tenant.
    fake = FakeWorkday(WorkdaySchema(WSDL), password=PASSWORD)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def workday(_workday_server: FakeWorkday, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWorkday]:
    """The fake tenant, reset, with the ISU password in the environment."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    _workday_server.reset(password=PASSWORD)
    yield _workday_server
    _workday_server.reset(password=PASSWORD)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    root.setLevel(logging.DEBUG)
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def make_adapter(fake: FakeWorkday, **settings: Any) -> WorkdayAdapter:
    config: dict[str, Any] = {
        "tenant": "acme",
        "username": "isu_platypus",
        "password": {"env": PASSWORD_ENV},
        "wsdl": str(WSDL),
        "endpoint": fake.endpoint,
        # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
        # fake's thread for longer than a tight timeout. Timeout tests set their own.
        "timeout": 5.0,
        **settings,
    }
    adapter = WorkdayAdapter.from_config(config, connection="hr")
    assert isinstance(adapter, WorkdayAdapter)
    return adapter


def lookup(payload: dict[str, Any], **params: Any) -> Request:
    return Request(action="get_workers", payload=payload, params=params, event_id="evt-lookup")


def change_email(employee_id: str, email: str, event_id: str = "evt-email") -> Request:
    return Request(
        action="change_work_email",
        payload={"employee_id": employee_id, "email": email},
        event_id=event_id,
        flow="people-sync",
        step="work-email",
    )


async def run(adapter: WorkdayAdapter, request: Request) -> Any:
    await adapter.start()
    try:
        return await adapter.call(request)
    finally:
        await adapter.close()


class TestContract(AdapterContract):
    secret: ClassVar[str] = PASSWORD

    @pytest.fixture
    def vendor(self, workday: FakeWorkday) -> FakeWorkday:
        return workday

    def make_adapter(self, vendor: FakeWorkday) -> Adapter:
        return make_adapter(vendor, timeout=1.0)  # the "timeout" failure delays 3 s

    def write(self, event_id: str) -> Request:
        return change_email("21001", f"{event_id}@acme.example", event_id)

    def record_count(self, vendor: FakeWorkday, request: Request) -> int:
        email = request.payload["email"]
        return sum(1 for c in vendor.changes if c.employee_id == "21001" and c.email == email)

    def fail_next(self, vendor: FakeWorkday, failure: Failure) -> None:
        scripted: dict[str, Any] = {
            "permanent": "validation",
            "retryable": "processing",
            "timeout": Delay(3.0),
            "reset": "reset",
            "expired_credential": "auth",
        }
        vendor.fail_next(scripted[failure])


# -- Get_Workers -------------------------------------------------------------


async def test_get_workers_by_employee_id_returns_compact_workers(workday: FakeWorkday) -> None:
    result = await run(make_adapter(workday), lookup({"employee_ids": ["21002", "21001", "99999"]}))

    assert result["missing"] == ["99999"]
    assert result["total_results"] == 2
    by_id = {w["worker_id"]: w for w in result["workers"]}
    assert by_id["21001"] == {
        "worker_id": "21001",
        "wid": workday.worker("21001").wid,
        "worker_type": "employee",
        "user_id": "ada.lovelace",
        "name": "Ada Lovelace",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "preferred_first_name": None,
        "work_email": "ada.lovelace@acme.example",
        "position_id": "P-0001",
        "position_title": "Engineer",
        "business_title": "Software Engineer",
        "active": True,
        "hire_date": "2020-01-06",
    }
    assert by_id["21002"]["business_title"] == "Engineering Manager"


async def test_get_workers_by_contingent_worker_id(workday: FakeWorkday) -> None:
    result = await run(
        make_adapter(workday),
        lookup({"employee_ids": ["C-9001"], "id_type": "Contingent_Worker_ID"}),
    )

    [worker] = result["workers"]
    assert worker["worker_type"] == "contingent"
    assert worker["work_email"] == "k.johnson@contractor.example"


async def test_get_workers_by_updated_range_returns_only_workers_updated_in_it(
    workday: FakeWorkday,
) -> None:
    result = await run(
        make_adapter(workday),
        lookup(
            {
                "updated_from": "2024-03-01T00:00:00Z",
                "updated_through": "2024-03-04T00:00:00Z",
            }
        ),
    )

    # 21001 (Mar 1) and C-9001 (Mar 3); not 21002 (Mar 5) nor 21003 (Feb 1).
    assert sorted(w["worker_id"] for w in result["workers"]) == ["21001", "C-9001"]
    sent = etree.fromstring(workday.received[-1].body)
    range_data = sent.find(f".//{{{WD}}}Transaction_Date_Range_Data")
    assert range_data is not None
    assert range_data.findtext(f"{{{WD}}}Updated_From") == "2024-03-01T00:00:00Z"


async def test_get_workers_pages_through_an_updated_range(workday: FakeWorkday) -> None:
    adapter = make_adapter(workday)
    window = {
        "updated_from": "2024-01-01T00:00:00Z",
        "updated_through": "2024-12-31T00:00:00Z",
        "as_of_entry": "2024-12-31T00:00:00Z",
    }
    await adapter.start()
    try:
        first = await adapter.call(lookup({**window, "page": 1}, page_size=3))
        second = await adapter.call(lookup({**window, "page": 2}, page_size=3))
    finally:
        await adapter.close()

    assert (first["total_results"], first["total_pages"], first["page"]) == (4, 2, 1)
    assert len(first["workers"]) == 3
    assert [w["worker_id"] for w in second["workers"]] == ["C-9001"]
    sent = etree.fromstring(workday.received[-1].body)
    as_of = sent.findtext(f".//{{{WD}}}Response_Filter/{{{WD}}}As_Of_Entry_DateTime")
    assert as_of == "2024-12-31T00:00:00Z"


async def test_a_changed_work_email_is_found_by_the_next_poll(workday: FakeWorkday) -> None:
    adapter = make_adapter(workday)
    await adapter.start()
    try:
        written = await adapter.call(change_email("21003", "alan.turing@acme.example"))
        changed_at = workday.worker("21003").updated
        polled = await adapter.call(
            lookup(
                {
                    "updated_from": changed_at.isoformat(),
                    "updated_through": changed_at.isoformat(),
                }
            )
        )
    finally:
        await adapter.close()

    assert written == {
        "event_id": workday.changes[-1].event_wid,
        "employee_id": "21003",
        "email": "alan.turing@acme.example",
    }
    [worker] = polled["workers"]
    assert (worker["worker_id"], worker["work_email"]) == ("21003", "alan.turing@acme.example")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"employee_ids": ["1"], "updated_from": "2024-01-01T00:00:00Z"},
        {"updated_from": "2024-01-01T00:00:00Z"},
        {"updated_from": "2024-02-01T00:00:00Z", "updated_through": "2024-01-01T00:00:00Z"},
        {"updated_from": "2024-01-01T00:00:00", "updated_through": "2024-02-01T00:00:00"},
    ],
    ids=["nothing", "ids-and-range", "open-range", "reversed-range", "naive-times"],
)
async def test_a_bad_lookup_is_permanent_and_sends_nothing(
    workday: FakeWorkday, payload: dict[str, Any]
) -> None:
    with pytest.raises(PermanentError, match="invalid input for 'get_workers'"):
        await run(make_adapter(workday), lookup(payload))
    assert workday.received == []


# -- the write ----------------------------------------------------------------


async def test_change_work_email_for_an_unknown_worker_is_a_validation_fault(
    workday: FakeWorkday,
) -> None:
    with pytest.raises(PermanentError) as caught:
        await run(make_adapter(workday), change_email("99999", "nobody@acme.example"))

    assert caught.value.vendor_code == "Validation_Fault"
    assert "'99999' is not a valid ID value" in caught.value.message
    assert "Person_Reference" in caught.value.message  # the fault's Xpath
    assert workday.changes == []


async def test_change_work_email_rejects_a_non_address_before_sending(
    workday: FakeWorkday,
) -> None:
    with pytest.raises(PermanentError, match="email"):
        await run(make_adapter(workday), change_email("21001", "not-an-address"))
    assert workday.received == []


# -- faults -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error", "status", "vendor_code", "text"),
    [
        ("validation", PermanentError, 500, "Validation_Fault", "Validation_Fault"),
        ("processing", RetryableError, 500, "Processing_Fault", "Processing_Fault"),
        (500, RetryableError, 500, None, "HTTP 500"),
        (503, RetryableError, 503, None, "HTTP 503"),
        ("reset", RetryableError, None, None, "retryable"),
        (Delay(3.0), RetryableError, None, None, "timed out after 1s"),
    ],
    ids=["validation", "processing", "http-500", "http-503", "reset", "timeout"],
)
async def test_faults_are_classified(
    workday: FakeWorkday,
    failure: Any,
    error: type[Exception],
    status: int | None,
    vendor_code: str | None,
    text: str,
) -> None:
    workday.fail_next(failure)
    with pytest.raises(error) as caught:
        await run(make_adapter(workday, timeout=1.0), lookup({"employee_ids": ["21001"]}))

    assert isinstance(caught.value, PermanentError | RetryableError)
    assert caught.value.status_code == status
    assert caught.value.vendor_code == vendor_code
    assert text in caught.value.message


def _fault(code: str, message: str = "boom") -> Fault:
    return Fault(message, code=code)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (_fault("SOAP-ENV:Client.validationError"), PermanentError),
        (_fault("SOAP-ENV:Client.processingError"), RetryableError),
        (_fault("SOAP-ENV:Server"), RetryableError),
        (_fault("SOAP-ENV:Client"), PermanentError),
    ],
    ids=["validation-code", "processing-code", "server", "client"],
)
def test_faults_without_workday_detail_are_classified_by_faultcode(
    fault: Fault, error: type[Exception]
) -> None:
    assert isinstance(classify(fault, where="Workday Get_Workers", timeout=1.0), error)


def test_an_authentication_fault_is_left_to_the_adapter() -> None:
    fault = _fault("SOAP-ENV:Client.authenticationError", "invalid username or password")
    with pytest.raises(AuthenticationFaultError):
        classify(fault, where="Workday Get_Workers", timeout=1.0)


# -- credentials ----------------------------------------------------------------


async def test_a_rotated_password_is_re_read_after_one_authentication_fault(
    workday: FakeWorkday, monkeypatch: pytest.MonkeyPatch, captured_logs: io.StringIO
) -> None:
    adapter = make_adapter(workday)
    await adapter.start()
    try:
        # The password is rotated in Workday and in the secret store while running.
        workday.password = "rotated-password-93"
        monkeypatch.setenv(PASSWORD_ENV, "rotated-password-93")
        result = await adapter.call(change_email("21001", "ada@acme.example"))
    finally:
        await adapter.close()

    assert result["email"] == "ada@acme.example"
    assert [r.answer for r in workday.received] == ["auth", "ok"]
    logs = captured_logs.getvalue()
    assert "credentials re-read" in logs
    assert "rotated-password-93" not in logs
    assert PASSWORD not in logs


async def test_a_password_refused_twice_is_permanent_and_not_echoed(
    workday: FakeWorkday, monkeypatch: pytest.MonkeyPatch
) -> None:
    workday.password = "the-tenant-wants-another"
    with pytest.raises(PermanentError) as caught:
        await run(make_adapter(workday, timeout=1.0), lookup({"employee_ids": ["21001"]}))

    error = caught.value
    assert error.vendor_code == "SOAP-ENV:Client.authenticationError"
    assert "refused the credentials of 'isu_platypus@acme'" in error.message
    assert f"env:{PASSWORD_ENV}" in error.message
    assert PASSWORD not in f"{error!s} {error!r}"
    assert [r.answer for r in workday.received] == ["auth", "auth"]  # re-read once, no more


async def test_a_missing_password_fails_at_start(
    workday: FakeWorkday, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(ConfigurationError, match=PASSWORD_ENV):
        await make_adapter(workday).start()


async def test_requests_carry_a_ws_security_username_token_and_logs_no_password(
    workday: FakeWorkday, captured_logs: io.StringIO
) -> None:
    await run(make_adapter(workday), lookup({"employee_ids": ["21001"]}))

    sent = etree.fromstring(workday.received[-1].body)
    token = sent.find(f".//{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    assert token is not None
    assert token.findtext(f"{{{WSSE}}}Username") == "isu_platypus@acme"
    password = token.find(f"{{{WSSE}}}Password")
    assert password is not None
    assert password.get("Type", "").endswith("#PasswordText")
    assert password.text == PASSWORD
    # zeep logs whole envelopes at DEBUG; the adapter's transport does not.
    assert PASSWORD not in captured_logs.getvalue()


# -- the fake validates like Workday ----------------------------------------------

_ENVELOPE = """<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wd="urn:com.workday/bsvc">
  <env:Header>
    <wsse:Security xmlns:wsse="{wsse}">
      <wsse:UsernameToken>
        <wsse:Username>isu_platypus@acme</wsse:Username>
        <wsse:Password>{password}</wsse:Password>
      </wsse:UsernameToken>
    </wsse:Security>
  </env:Header>
  <env:Body>
    <wd:Get_Workers_Request wd:version="v30.0">
      <wd:Request_References>
        <wd:Worker_Reference><wd:ID wd:type="Employee_ID">21001</wd:ID></wd:Worker_Reference>
      </wd:Request_References>
      {extra}
    </wd:Get_Workers_Request>
  </env:Body>
</env:Envelope>"""


def _post(fake: FakeWorkday, body: str) -> httpx.Response:
    return httpx.post(
        fake.endpoint,
        content=body.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=5,
    )


def _fault_of(response: httpx.Response) -> tuple[str, Any]:
    root = etree.fromstring(response.content)
    fault = root.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault is not None, response.text
    return fault.findtext("faultcode") or "", fault.find("detail")


def test_the_fake_answers_a_well_formed_request(workday: FakeWorkday) -> None:
    response = _post(workday, _ENVELOPE.format(wsse=WSSE, password=PASSWORD, extra=""))
    assert response.status_code == 200
    assert b"Get_Workers_Response" in response.content


@pytest.mark.parametrize(
    "body",
    [
        _ENVELOPE.format(wsse=WSSE, password=PASSWORD, extra="<wd:Not_In_The_Schema/>"),
        _ENVELOPE.format(
            wsse=WSSE,
            password=PASSWORD,
            extra="<wd:Response_Filter><wd:Page>first</wd:Page></wd:Response_Filter>",
        ),
        "<env:Envelope xmlns:env='http://schemas.xmlsoap.org/soap/envelope/'><env:Body>",
    ],
    ids=["unknown-element", "wrong-type", "not-xml"],
)
def test_the_fake_answers_a_malformed_request_with_a_validation_fault(
    workday: FakeWorkday, body: str
) -> None:
    response = _post(workday, body)

    assert response.status_code == 500
    code, detail = _fault_of(response)
    assert code == "SOAP-ENV:Client.validationError"
    assert detail is not None
    assert (
        detail.find(f"{{{WD}}}Validation_Fault/{{{WD}}}Validation_Error/{{{WD}}}Message")
        is not None
    )


def test_the_fake_refuses_a_wrong_password(workday: FakeWorkday) -> None:
    response = _post(workday, _ENVELOPE.format(wsse=WSSE, password="wrong", extra=""))

    assert response.status_code == 500
    code, detail = _fault_of(response)
    assert code == "SOAP-ENV:Client.authenticationError"
    assert detail is None


# -- threads, settings ------------------------------------------------------------


async def test_calls_in_flight_are_bounded_by_max_workers(workday: FakeWorkday) -> None:
    adapter = make_adapter(workday, max_workers=2, timeout=5)
    workday.fail_next(*[Delay(0.2)] * 6)
    await adapter.start()
    started = time.monotonic()
    try:
        results = await asyncio.gather(
            *(adapter.call(lookup({"employee_ids": ["21001"]})) for _ in range(6))
        )
    finally:
        await adapter.close()
    elapsed = time.monotonic() - started

    assert all(r["workers"][0]["worker_id"] == "21001" for r in results)
    assert 1 <= workday.max_in_flight <= 2  # never more than the pool
    assert elapsed >= 3 * 0.2  # six calls of 0.2 s, two at a time


def test_settings_default_to_the_tenant_endpoint_and_user_at_tenant() -> None:
    settings = WorkdaySettings.model_validate(
        {"tenant": "acme_preview1", "username": "isu_sync", "password": {"env": "X"}, "wsdl": "x"}
    )

    assert settings.service_url == (
        "https://wd2-impl-services1.workday.com/ccx/service/acme_preview1/Human_Resources/v30.0"
    )
    assert settings.service_url == default_endpoint("acme_preview1")
    assert settings.login == "isu_sync@acme_preview1"
    assert settings.timeout == 30.0


@pytest.mark.parametrize(
    "change",
    [
        {"password": "plain-text"},
        {"tenant": "acme/../other"},
        {"endpoint": "ftp://x"},
        {"max_workers": 0},
        {"unknown": 1},
    ],
    ids=["plain-password", "bad-tenant", "bad-endpoint", "no-workers", "unknown-field"],
)
def test_bad_settings_are_configuration_errors(change: dict[str, Any]) -> None:
    config = {"tenant": "acme", "username": "isu", "password": {"env": "X"}, "wsdl": "x", **change}
    with pytest.raises(ConfigurationError, match="connection 'hr'"):
        WorkdayAdapter.from_config(config, connection="hr")


async def test_an_unreadable_wsdl_fails_at_start(workday: FakeWorkday) -> None:
    adapter = make_adapter(workday, wsdl="/nonexistent/Human_Resources.wsdl")
    with pytest.raises(ConfigurationError, match="cannot load the WSDL"):
        await adapter.start()


async def test_a_password_that_cannot_be_re_read_is_permanent(
    workday: FakeWorkday, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make_adapter(workday)
    await adapter.start()
    try:
        monkeypatch.delenv(PASSWORD_ENV)
        workday.fail_next("auth")
        with pytest.raises(PermanentError, match=f"{PASSWORD_ENV} is not set"):
            await adapter.call(lookup({"employee_ids": ["21001"]}))
    finally:
        await adapter.close()


# -- TLS and proxies -----------------------------------------------------------------


@pytest.fixture(scope="module")
def _https_workday(test_ca: TestCA) -> Iterator[FakeWorkday]:
    fake = FakeWorkday(WorkdaySchema(WSDL), password=PASSWORD, tls=test_ca)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def https_workday(_https_workday: FakeWorkday, monkeypatch: pytest.MonkeyPatch) -> FakeWorkday:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    _https_workday.reset(password=PASSWORD)
    return _https_workday


async def test_the_ca_bundle_verifies_workday_and_the_proxy_tunnels_every_call(
    https_workday: FakeWorkday, test_ca: TestCA, tunnel_proxy: TunnelProxy
) -> None:
    assert https_workday.endpoint.startswith("https://")
    adapter = make_adapter(
        https_workday, ca_bundle=str(test_ca.path), proxy=tunnel_proxy.url, timeout=5
    )
    await adapter.start()
    try:
        result = await adapter.call(lookup({"employee_ids": ["21001"]}))
    finally:
        await adapter.close()
    assert [w["worker_id"] for w in result["workers"]] == ["21001"]
    assert set(tunnel_proxy.tunnels) == {urlsplit(https_workday.endpoint).netloc}


async def test_without_the_ca_bundle_the_tenant_is_not_trusted(
    https_workday: FakeWorkday,
) -> None:
    adapter = make_adapter(https_workday, timeout=5)
    await adapter.start()
    try:
        with pytest.raises(DeliveryError):
            await adapter.call(lookup({"employee_ids": ["21001"]}))
    finally:
        await adapter.close()
    assert https_workday.received == []


def test_ca_bundle_proxy_and_endpoint_left_empty_by_the_environment_are_unset() -> None:
    settings = WorkdaySettings.model_validate(
        {
            "tenant": "acme",
            "username": "isu",
            "password": {"env": PASSWORD_ENV},
            "wsdl": str(WSDL),
            "endpoint": "",
            "ca_bundle": "",
            "proxy": "",
        }
    )
    assert (settings.endpoint, settings.ca_bundle, settings.proxy) == (None, None, None)
    with pytest.raises(ValueError, match="proxy URL"):
        WorkdaySettings.model_validate({**settings.model_dump(), "proxy": "socks5://p:1080"})


@pytest.mark.parametrize("how", sorted(echoes.ECHOES))
@pytest.mark.parametrize("kind", ["validation", "processing", 503])
async def test_personal_data_workday_echoes_changed_is_masked_everywhere(
    workday: FakeWorkday, how: str, kind: str | int
) -> None:
    # Workday's validation faults quote the value refused ("... is not a valid e-mail").
    workday.fail_next(ScriptedFault(kind, echoes.ECHOES[how]) if isinstance(kind, str) else kind)
    adapter = make_adapter(workday)
    await adapter.start()
    try:
        request = change_email("21001", echoes.EMAIL, "evt-echo")
        # An HTML error page is not quoted: only its status is told.
        await echoes.assert_masked(lambda: adapter.call(request), quoted=kind != 503)
    finally:
        await adapter.close()
