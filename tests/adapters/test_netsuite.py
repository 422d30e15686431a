"""The ``netsuite`` adapter against a fake SuiteTalk that validates with the real 2023.2 WSDL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from lxml import etree
from pydantic import SecretStr

from platypus.adapter import AdapterRegistry, Request
from platypus.exceptions import (
    ConfigurationError,
    MissingDependencyError,
    PermanentError,
    RetryableError,
)
from platypus.logging import configure_logging
from platypus_adapters.netsuite import (
    CredentialsError,
    NetSuiteAdapter,
    NetSuiteSettings,
    endpoint_for,
    new_passport,
    signature,
)
from platypus_adapters.netsuite.errors import (
    ALERT_FAULTS,
    MISSING_RECORD_CODES,
    RETRYABLE_FAULTS,
    RETRYABLE_STATUS_CODES,
    SESSION_FAULT,
    classify_fault,
    classify_status,
)
from platypus_adapters.netsuite.records import netsuite_datetime
from tests.adapters import echoes
from tests.adapters.contract import AdapterContract, Failure
from tests.fakes.netsuite import (
    RESET,
    Credentials,
    Delay,
    FakeNetSuite,
    FaultReply,
    HttpReply,
    StatusReply,
    wsdl_path,
)
from tests.fakes.proxy import TunnelProxy
from tests.fakes.tls import TestCA

CREDENTIALS = Credentials(
    account="1234567_SB1",
    consumer_key="ck-3f1c9a0e",
    consumer_secret="netsuite-consumer-secret-b81d",
    token_id="tok-9ab2e4",
    token_secret="netsuite-token-secret-5e7c",
)
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSD_DIR = wsdl_path().parent / "xsd"

pytestmark = pytest.mark.skipif(
    not wsdl_path().exists(),
    reason=f"the NetSuite WSDL is not at {wsdl_path()}; set PLATYPUS_NETSUITE_WSDL to run them",
)


@pytest.fixture(scope="session")
def _netsuite_server() -> Iterator[FakeNetSuite]:
    # One server and one compiled schema (about 2 s) for the whole session.
    with FakeNetSuite(CREDENTIALS) as fake:
        yield fake


@pytest.fixture
def netsuite(
    _netsuite_server: FakeNetSuite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeNetSuite]:
    """The running fake, emptied, with the adapter's secrets in the environment."""
    monkeypatch.setenv("NS_CONSUMER_SECRET", CREDENTIALS.consumer_secret)
    monkeypatch.setenv("NS_TOKEN_SECRET", CREDENTIALS.token_secret)
    _netsuite_server.reset()
    yield _netsuite_server
    _netsuite_server.reset()


def make_adapter_settings(**overrides: Any) -> NetSuiteSettings:
    return NetSuiteSettings.model_validate(
        {
            "account": CREDENTIALS.account,
            "consumer_key": CREDENTIALS.consumer_key,
            "consumer_secret": {"env": "NS_CONSUMER_SECRET"},
            "token_id": CREDENTIALS.token_id,
            "token_secret": {"env": "NS_TOKEN_SECRET"},
            **overrides,
        }
    )


def make_adapter(fake: FakeNetSuite, **overrides: Any) -> NetSuiteAdapter:
    config: dict[str, Any] = {
        "account": CREDENTIALS.account,
        "consumer_key": CREDENTIALS.consumer_key,
        "consumer_secret": {"env": "NS_CONSUMER_SECRET"},
        "token_id": CREDENTIALS.token_id,
        "token_secret": {"env": "NS_TOKEN_SECRET"},
        "wsdl": str(wsdl_path()),
        "endpoint": fake.endpoint,
        # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
        # fake for longer than a tight timeout. Timeout cases set their own (1 s).
        "timeout": 5.0,
        **overrides,
    }
    adapter = NetSuiteAdapter.from_config(config, connection="erp")
    assert isinstance(adapter, NetSuiteAdapter)
    return adapter


def customer(external_id: str, **fields: Any) -> Request:
    payload = {"externalId": external_id, "companyName": "Acme Ltd", **fields}
    return Request(action="upsert_customer", payload=payload, event_id=external_id)


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


# -- the contract ---------------------------------------------------------------


class TestContract(AdapterContract):
    secret: ClassVar[str] = CREDENTIALS.token_secret

    @pytest.fixture
    def vendor(self, netsuite: FakeNetSuite) -> FakeNetSuite:
        return netsuite

    def make_adapter(self, vendor: FakeNetSuite) -> NetSuiteAdapter:
        return make_adapter(vendor, timeout=1.0)  # the "timeout" failure answers after 2 s

    def write(self, event_id: str) -> Request:
        return customer(f"CUST-{event_id}")

    def record_count(self, vendor: FakeNetSuite, request: Request) -> int:
        return vendor.count("customer", request.payload["externalId"])

    def fail_next(self, vendor: FakeNetSuite, failure: Failure) -> None:
        replies = {
            "permanent": StatusReply("INVALID_FLD_VALUE", "Invalid email reference key."),
            "retryable": FaultReply("ExceededConcurrentRequestLimitFault"),
            # Applied, then answered after the adapter's 1 s timeout.
            "timeout": Delay(2.0),
            "reset": RESET,
            # NetSuite's answer for a timed-out session; TBA re-signs and retries once.
            "expired_credential": FaultReply("InvalidSessionFault", "SESSION_TIMED_OUT"),
        }
        vendor.fail_next(replies[failure])


# -- the passport signature -----------------------------------------------------


def test_the_signature_matches_a_fixed_vector() -> None:
    # Derived once and cross-checked with openssl:
    #   printf '%s' '1234567_SB1&ck-4f2a9c&tok-7e31b0&n0nce8Qx2LmZ&1700000000' \
    #     | openssl dgst -sha256 -hmac 'cs-d26ad321&ts-c29a677d' -binary | base64
    assert (
        signature(
            account="1234567_SB1",
            consumer_key="ck-4f2a9c",
            token_id="tok-7e31b0",
            nonce="n0nce8Qx2LmZ",
            timestamp=1700000000,
            consumer_secret=SecretStr("cs-d26ad321"),
            token_secret=SecretStr("ts-c29a677d"),
        )
        == "3rjVg3xvreiE4hWdECbAGnXe52ct8zDmeHbw6Ue5OM8="
    )


@pytest.mark.parametrize(
    ("account", "nonce", "timestamp"),
    [("1234567", "abcdef123456", 1439829974), ("TSTDRV99_SB2", "Zz09yY8xX7wW", 1893456000)],
)
def test_the_signature_is_hmac_sha256_of_the_documented_base_string(
    account: str, nonce: str, timestamp: int
) -> None:
    # NetSuite: base = account&consumerKey&tokenId&nonce&timestamp,
    # key = consumerSecret&tokenSecret, base64(HMAC-SHA256).
    base = f"{account}&ck&tok&{nonce}&{timestamp}".encode()
    expected = base64.b64encode(hmac.new(b"cs&ts", base, hashlib.sha256).digest()).decode()
    passport = new_passport(
        account=account,
        consumer_key="ck",
        token_id="tok",
        consumer_secret=SecretStr("cs"),
        token_secret=SecretStr("ts"),
        nonce=nonce,
        timestamp=timestamp,
    )
    assert passport.signature == expected


def test_every_passport_has_a_new_nonce_and_the_current_time() -> None:
    kwargs: dict[str, Any] = {
        "account": "1",
        "consumer_key": "ck",
        "token_id": "tok",
        "consumer_secret": SecretStr("consumer-secret-value"),
        "token_secret": SecretStr("token-secret-value"),
    }
    first, second = new_passport(**kwargs), new_passport(**kwargs)
    assert first.nonce != second.nonce
    assert abs(first.timestamp - time.time()) < 5
    assert "secret-value" not in repr(first)


async def test_a_wrong_token_secret_is_refused_by_the_fake_as_invalid_credentials(
    netsuite: FakeNetSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NS_TOKEN_SECRET", "not-the-token-secret")
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        with pytest.raises(CredentialsError) as caught:
            await adapter.call(customer("CUST-bad-secret"))
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "INVALID_LOGIN_CREDENTIALS"
    assert netsuite.count("customer", "CUST-bad-secret") == 0


# -- classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "vendor_code"),
    [
        (FaultReply("ExceededConcurrentRequestLimitFault"), RetryableError, None),
        (FaultReply("ExceededRequestLimitFault"), RetryableError, "WS_REQUEST_BLOCKED"),
        (FaultReply("UnexpectedErrorFault"), RetryableError, "UNEXPECTED_ERROR"),
        (FaultReply("InvalidCredentialsFault"), CredentialsError, "INVALID_LOGIN_CREDENTIALS"),
        (FaultReply("InvalidAccountFault"), CredentialsError, "INVALID_ACCT"),
        (FaultReply("InsufficientPermissionFault"), PermanentError, "INSUFFICIENT_PERMISSION"),
        (FaultReply("ExceededUsageLimitFault"), PermanentError, None),
        (StatusReply("RCRD_LOCKED_BY_WF"), RetryableError, "RCRD_LOCKED_BY_WF"),
        (StatusReply("UNEXPECTED_ERROR"), RetryableError, "UNEXPECTED_ERROR"),
        (StatusReply("RCRD_HAS_BEEN_CHANGED"), RetryableError, "RCRD_HAS_BEEN_CHANGED"),
        (StatusReply("INVALID_FLD_VALUE"), PermanentError, "INVALID_FLD_VALUE"),
        (StatusReply("USER_ERROR"), PermanentError, "USER_ERROR"),
        (StatusReply("DUP_ENTITY"), PermanentError, "DUP_ENTITY"),
        (StatusReply("INVALID_KEY_OR_REF"), MissingDependencyError, "INVALID_KEY_OR_REF"),
        (HttpReply(503), RetryableError, None),
        (HttpReply(502, b""), RetryableError, None),
        (HttpReply(500, b"<html><body>oops</body></html>"), RetryableError, None),
        (HttpReply(429, b"slow down", "text/plain"), RetryableError, None),
        (HttpReply(404, b"Not Found", "text/plain"), PermanentError, None),
        (Delay(2.0), RetryableError, None),
        (RESET, RetryableError, None),
    ],
    ids=lambda value: getattr(value, "name", None) or getattr(value, "code", None) or None,
)
async def test_each_fault_status_and_transport_failure_is_classified(
    netsuite: FakeNetSuite, reply: Any, error: type[Exception], vendor_code: str | None
) -> None:
    adapter = make_adapter(netsuite, timeout=1.0)  # Delay(2.0) must time out
    await adapter.start()
    try:
        netsuite.fail_next(reply)
        with pytest.raises(error) as caught:
            await adapter.call(customer("CUST-classified"))
    finally:
        await adapter.close()
    assert type(caught.value) is error
    if vendor_code is not None:
        assert caught.value.vendor_code == vendor_code  # type: ignore[attr-defined]
    if isinstance(reply, HttpReply):
        assert caught.value.status_code == reply.status  # type: ignore[attr-defined]


async def test_invalid_credentials_are_permanent_alert_worthy_and_logged_without_secrets(
    netsuite: FakeNetSuite, captured_logs: io.StringIO
) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        netsuite.fail_next(FaultReply("InvalidCredentialsFault"))
        with pytest.raises(PermanentError) as caught:
            await adapter.call(customer("CUST-alert"))
    finally:
        await adapter.close()
    assert isinstance(caught.value, CredentialsError)
    assert caught.value.alert is True
    assert not caught.value.retryable
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line]
    refused = [line for line in lines if line.get("event") == "netsuite_credentials_refused"]
    assert len(refused) == 1
    assert refused[0]["level"] == "error"
    assert refused[0]["connection"] == "erp"
    text = captured_logs.getvalue() + str(caught.value) + repr(caught.value)
    assert CREDENTIALS.token_secret not in text
    assert CREDENTIALS.consumer_secret not in text


async def test_a_session_refused_twice_is_retryable_and_each_try_is_signed_anew(
    netsuite: FakeNetSuite,
) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        netsuite.fail_next(FaultReply(SESSION_FAULT), FaultReply(SESSION_FAULT))
        with pytest.raises(RetryableError) as caught:
            await adapter.call(customer("CUST-session"))
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "SESSION_TIMED_OUT"
    nonces = [_passport_field(r.body, "nonce") for r in netsuite.received]
    assert len(nonces) == 2
    assert nonces[0] != nonces[1]


def test_the_classified_codes_and_faults_exist_in_the_2023_2_schema() -> None:
    fault_types = (XSD_DIR / "platform.faultTypes.xsd").read_text()
    status_enum = fault_types.split('name="FaultCodeType"')[0]
    status_codes = set(re.findall(r'<enumeration value="([A-Z0-9_]+)"/>', status_enum))
    assert status_codes >= RETRYABLE_STATUS_CODES
    assert {"INVALID_FLD_VALUE", "USER_ERROR", "DUP_ENTITY"} <= status_codes
    assert status_codes >= MISSING_RECORD_CODES
    faults = set(
        re.findall(r'complexType name="(\w+Fault)"', (XSD_DIR / "platform.faults.xsd").read_text())
    )
    assert {*RETRYABLE_FAULTS, *ALERT_FAULTS, SESSION_FAULT} <= faults


# -- upserts ----------------------------------------------------------------------


async def test_upserting_twice_keeps_one_record_with_the_same_internal_id(
    netsuite: FakeNetSuite,
) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        first = await adapter.call(customer("CUST-twice", email="first@example.com"))
        second = await adapter.call(customer("CUST-twice", email="second@example.com"))
    finally:
        await adapter.close()
    assert first == second == {"internalId": "1001", "externalId": "CUST-twice", "type": "customer"}
    stored = netsuite.record("customer", "CUST-twice")
    assert stored is not None
    assert stored.upserts == 2
    email = stored.field("email")
    assert email is not None
    assert email.text == "second@example.com"
    assert len(netsuite.records) == 1


async def test_a_quote_to_cash_flow_upserts_customer_sales_order_and_invoice(
    netsuite: FakeNetSuite,
) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    lines = [{"item": {"internalId": "55"}, "quantity": 2, "rate": "10.50"}]
    try:
        cust = await adapter.call(
            customer(
                "CUST-q2c",
                email="ap@acme.example",
                isPerson=False,
                subsidiary={"internalId": "1"},
            )
        )
        order = await adapter.call(
            Request(
                action="upsert_sales_order",
                payload={
                    "externalId": "SO-q2c",
                    "entity": {"internalId": cust["internalId"]},
                    "tranDate": "2024-03-01",
                    "memo": "first order",
                    "items": lines,
                },
            )
        )
        invoice = await adapter.call(
            Request(
                action="upsert_invoice",
                payload={
                    "externalId": "INV-q2c",
                    "entity": {"externalId": "CUST-q2c"},
                    "createdFrom": {"internalId": order["internalId"]},
                    "tranDate": "2024-03-02",
                    "dueDate": "2024-04-01",
                    "items": [{**lines[0], "orderLine": 1}],
                },
            )
        )
    finally:
        await adapter.close()
    assert cust["type"] == "customer"
    assert order == {
        "internalId": order["internalId"],
        "externalId": "SO-q2c",
        "type": "salesOrder",
    }
    assert invoice["type"] == "invoice"
    assert invoice["externalId"] == "INV-q2c"
    assert len({cust["internalId"], order["internalId"], invoice["internalId"]}) == 3
    stored = netsuite.record("salesOrder", "SO-q2c")
    assert stored is not None
    item_list = stored.field("itemList")
    assert item_list is not None
    xml = etree.tostring(item_list).decode()
    assert 'internalId="55"' in xml
    assert ">2.0<" in xml
    assert ">10.50<" in xml
    tran_date = stored.field("tranDate")
    assert tran_date is not None
    assert tran_date.text is not None
    assert tran_date.text == "2024-03-01T10:30:00Z"


async def test_a_sales_order_for_a_customer_not_there_yet_waits_for_it(
    netsuite: FakeNetSuite,
) -> None:
    adapter = make_adapter(netsuite)
    order = Request(
        action="upsert_sales_order",
        payload={
            "externalId": "SO-orphan",
            "entity": {"externalId": "CUST-later"},
            "items": [{"item": {"internalId": "55"}, "quantity": 1}],
        },
    )
    await adapter.start()
    try:
        with pytest.raises(MissingDependencyError) as caught:
            await adapter.call(order)
        await adapter.call(customer("CUST-later"))
        placed = await adapter.call(order)  # what the retry does once the customer exists
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "INVALID_KEY_OR_REF"
    assert caught.value.retryable
    assert "CUST-later" in caught.value.message
    assert "dependency_wait" in caught.value.message
    assert placed["externalId"] == "SO-orphan"


@pytest.mark.parametrize(
    ("codes", "error"),
    [
        (["INVALID_KEY_OR_REF"], MissingDependencyError),
        (["INVALID_KEY_OR_REF", "RCRD_LOCKED_BY_WF"], MissingDependencyError),
        (["INVALID_KEY_OR_REF", "INVALID_FLD_VALUE"], PermanentError),
        (["RCRD_LOCKED_BY_WF"], RetryableError),
    ],
)
def test_a_missing_reference_waits_unless_something_permanent_is_wrong_too(
    codes: list[str], error: type[Exception]
) -> None:
    found = classify_status([(code, f"{code} here") for code in codes], where="upsert invoice")
    assert type(found) is error


INVOICE_DATES = Request(
    action="upsert_invoice",
    payload={
        "externalId": "INV-dates",
        "entity": {"externalId": "CUST-dates"},
        "tranDate": "2026-01-31",  # winter in the north: PST, NZDT
        "dueDate": "2026-07-01",  # summer in the north: PDT, NZST
        "items": [{"item": {"internalId": "55"}, "amount": 10}],
    },
)


@pytest.mark.parametrize(
    "user_timezone",
    [
        "Pacific/Honolulu",  # UTC-10, west of Pacific time
        "America/Anchorage",  # UTC-9/-8
        "America/Los_Angeles",
        "America/New_York",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Australia/Sydney",
        "Pacific/Auckland",  # UTC+13 in January
        "Pacific/Tongatapu",  # UTC+13
    ],
)
async def test_dates_keep_their_day_for_users_in_any_time_zone_from_utc_minus_10_to_plus_13(
    netsuite: FakeNetSuite, user_timezone: str
) -> None:
    netsuite.user_timezone = user_timezone
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        await adapter.call(customer("CUST-dates"))
        await adapter.call(INVOICE_DATES)
    finally:
        await adapter.close()
    assert netsuite.date_of("invoice", "INV-dates", "tranDate") == date(2026, 1, 31)
    assert netsuite.date_of("invoice", "INV-dates", "dueDate") == date(2026, 7, 1)


@pytest.mark.parametrize("user_timezone", ["Pacific/Pago_Pago", "Pacific/Kiritimati", "Asia/Tokyo"])
async def test_with_the_users_time_zone_set_dates_keep_their_day_even_at_utc_minus_11_or_plus_14(
    netsuite: FakeNetSuite, user_timezone: str
) -> None:
    netsuite.user_timezone = user_timezone
    adapter = make_adapter(netsuite, timezone=user_timezone)
    await adapter.start()
    try:
        await adapter.call(customer("CUST-dates"))
        await adapter.call(INVOICE_DATES)
    finally:
        await adapter.close()
    assert netsuite.date_of("invoice", "INV-dates", "tranDate") == date(2026, 1, 31)
    assert netsuite.date_of("invoice", "INV-dates", "dueDate") == date(2026, 7, 1)
    stored = netsuite.record("invoice", "INV-dates")
    assert stored is not None
    tran_date = stored.field("tranDate")
    assert tran_date is not None
    assert tran_date.text is not None
    assert tran_date.text.startswith("2026-01-31T12:00:00")  # noon there, with its offset


@pytest.mark.parametrize(
    ("zone", "sent"),
    [
        (None, "2026-01-31T10:30:00+00:00"),
        ("Pacific/Honolulu", "2026-01-31T12:00:00-10:00"),
        ("Europe/Berlin", "2026-01-31T12:00:00+01:00"),
    ],
)
def test_a_date_is_sent_as_an_instant_with_its_offset(zone: str | None, sent: str) -> None:
    moment = netsuite_datetime(date(2026, 1, 31), zone)
    assert moment is not None
    assert moment.isoformat() == sent


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        make_adapter_settings(timezone="Mars/Olympus")


async def test_an_invalid_payload_is_permanent_and_names_fields_not_values(
    netsuite: FakeNetSuite,
) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        with pytest.raises(PermanentError) as caught:
            await adapter.call(
                Request(
                    action="upsert_sales_order",
                    payload={"externalId": "SO-bad", "entity": {}, "items": [], "x": "secret@pii"},
                )
            )
    finally:
        await adapter.close()
    message = str(caught.value)
    assert "entity" in message
    assert "items" in message
    assert "x" in message
    assert "secret@pii" not in message
    assert netsuite.received == []


# -- the fake validates -------------------------------------------------------------


def _envelope(body: str, header: str = "") -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" '
        'xmlns:m="urn:messages_2023_2.platform.webservices.netsuite.com" '
        'xmlns:r="urn:relationships_2023_2.lists.webservices.netsuite.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Header>{header}</soapenv:Header><soapenv:Body>{body}</soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"<soapenv:Envelope", "SAXParseException"),
        (_envelope("<m:upsert/>"), "Missing child element"),
        (
            _envelope(
                '<m:upsert><m:record xsi:type="r:Customer" externalId="x">'
                "<r:nickname>A</r:nickname></m:record></m:upsert>"
            ),
            "not expected",
        ),
        (
            _envelope(
                '<m:upsert><m:record xsi:type="r:Customer" externalId="x">'
                "<r:isPerson>maybe</r:isPerson></m:record></m:upsert>"
            ),
            "not a valid value",
        ),
        (_envelope('<m:upsert><m:record externalId="x"/></m:upsert>'), "abstract"),
        (b'<Envelope xmlns="urn:not-soap"><Body/></Envelope>', "Bad envelope"),
    ],
    ids=["not-xml", "no-record", "unknown-field", "bad-boolean", "no-xsi-type", "not-soap"],
)
def test_the_fake_answers_a_malformed_request_with_a_soap_fault(
    netsuite: FakeNetSuite, content: bytes, says: str
) -> None:
    response = httpx.post(
        netsuite.endpoint,
        content=content,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"upsert"'},
    )
    assert response.status_code == 500
    fault = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert says in (fault.findtext("faultstring") or "")
    assert netsuite.records == {}


def test_a_fault_without_netsuite_detail_is_a_permanent_error() -> None:
    # How NetSuite (and the fake) answer a request that fails its schema: a fault
    # with no platformFaults element. Sending the same request again cannot help.
    error = classify_fault("", None, "org.xml.sax.SAXException: ...", where="here")
    assert type(error) is PermanentError
    assert "SAXException" in str(error)


async def test_every_request_the_adapter_sends_passes_the_schema(
    netsuite: FakeNetSuite,
) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        await adapter.call(customer("CUST-valid", phone="+1 555 0100"))
    finally:
        await adapter.close()
    (received,) = netsuite.received
    assert received.status == 200
    assert received.soap_action == "upsert"
    assert netsuite.schema.validate(etree.fromstring(received.body))


# -- threads, limits and settings ----------------------------------------------------


async def test_the_thread_pool_bounds_calls_in_flight(netsuite: FakeNetSuite) -> None:
    adapter = make_adapter(netsuite, max_workers=2, timeout=5)
    await adapter.start()
    netsuite.slow(0.2)
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(adapter.call(customer(f"CUST-pool-{n}")) for n in range(6))
        )
        elapsed = time.monotonic() - started
    finally:
        netsuite.slow(0)
        await adapter.close()
    assert len({r["internalId"] for r in results}) == 6
    assert 1 <= netsuite.max_in_flight <= 2  # never more than the pool
    assert elapsed >= 3 * 0.2


async def test_the_event_loop_is_not_blocked_while_a_call_waits(netsuite: FakeNetSuite) -> None:
    adapter = make_adapter(netsuite, timeout=5)
    await adapter.start()
    netsuite.slow(0.3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await adapter.call(customer("CUST-loop"))
    finally:
        ticker.cancel()
        netsuite.slow(0)
        await adapter.close()
    assert ticks >= 10


def test_the_endpoint_is_derived_from_the_account() -> None:
    assert endpoint_for("1234567_SB1") == (
        "https://1234567-sb1.suitetalk.api.netsuite.com/services/NetSuitePort_2023_2"
    )
    settings = NetSuiteSettings.model_validate(
        {
            "account": "TSTDRV1",
            "consumer_key": "ck",
            "consumer_secret": {"env": "A"},
            "token_id": "t",
            "token_secret": {"env": "B"},
        }
    )
    assert settings.service_url == endpoint_for("tstdrv1")


def test_settings_forbid_unknown_fields_and_describe_every_field() -> None:
    with pytest.raises(ConfigurationError, match="token_secret"):
        NetSuiteAdapter.from_config(
            {"account": "1", "consumer_key": "c", "consumer_secret": {"env": "A"}, "token_id": "t"}
        )
    with pytest.raises(ConfigurationError, match="password"):
        NetSuiteAdapter.from_config(
            {
                "account": "1",
                "consumer_key": "c",
                "consumer_secret": {"env": "A"},
                "token_id": "t",
                "token_secret": {"env": "B"},
                "password": "x",
            }
        )
    assert all(f.description for f in NetSuiteSettings.model_fields.values())


def test_the_adapter_is_registered_with_idempotent_upserts_and_a_search() -> None:
    assert AdapterRegistry.default().get("netsuite") is NetSuiteAdapter
    assert set(NetSuiteAdapter.actions) == {
        "upsert_customer",
        "upsert_sales_order",
        "upsert_invoice",
        "upsert_vendor_bill",
        "search_transactions",
    }
    for name, action in NetSuiteAdapter.actions.items():
        assert action.writes == (name != "search_transactions")
        assert action.idempotent
        assert action.input is not None


# -- search by lastModifiedDate -------------------------------------------------


async def _invoices(adapter: NetSuiteAdapter, netsuite: FakeNetSuite, count: int) -> None:
    await adapter.call(customer("CUST-s", currency={"externalId": "USD"}))
    for n in range(count):
        await adapter.call(
            Request(
                action="upsert_invoice",
                payload={
                    "externalId": f"INV-{n:03d}",
                    "entity": {"externalId": "CUST-s"},
                    "tranDate": "2024-03-02",
                    "dueDate": "2024-04-01",
                    "currency": {"externalId": "USD"},
                    "items": [
                        {"item": {"internalId": "55"}, "description": "Seats", "amount": 100.0}
                    ],
                },
            )
        )
        netsuite.touch("invoice", f"INV-{n:03d}", datetime(2024, 3, 2, 10, n, tzinfo=UTC))


def search(page: int = 1, search_id: str | None = None, **payload: Any) -> Request:
    return Request(
        action="search_transactions",
        payload={
            "record_type": "invoice",
            "modified_from": "2024-03-02T10:00:00Z",
            "modified_through": "2024-03-02T10:59:59Z",
            "page_index": page,
            "search_id": search_id,
            **payload,
        },
        params={"page_size": 5},
    )


async def test_a_search_pages_through_invoices_modified_in_the_range(
    netsuite: FakeNetSuite,
) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        await _invoices(adapter, netsuite, 7)
        netsuite.touch("invoice", "INV-006", datetime(2024, 3, 2, 11, 30, tzinfo=UTC))
        first = await adapter.call(search())
        second = await adapter.call(search(2, first["search_id"]))
    finally:
        await adapter.close()
    assert (first["total_records"], first["total_pages"], first["page_index"]) == (6, 2, 1)
    assert [r["externalId"] for r in first["records"]] == [f"INV-{n:03d}" for n in range(5)]
    assert [r["externalId"] for r in second["records"]] == ["INV-005"]
    record = first["records"][0]
    assert record["type"] == "invoice"
    assert record["lastModifiedDate"].startswith("2024-03-02T10:00:00")
    assert record["tranDate"] == "2024-03-02"
    assert record["dueDate"] == "2024-04-01"
    assert record["entity"]["externalId"] == "CUST-s"
    assert record["items"][0]["amount"] == 100.0
    # Every search request and answer passed the 2023.2 schema (the fake checks both).
    assert [r.soap_action for r in netsuite.received][-2:] == ["search", "searchMoreWithId"]
    assert all(r.status == 200 for r in netsuite.received)


async def test_a_search_over_the_request_limit_is_retryable(netsuite: FakeNetSuite) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    netsuite.fail_next(FaultReply("ExceededRequestLimitFault"))
    try:
        with pytest.raises(RetryableError):
            await adapter.call(search())
    finally:
        await adapter.close()


async def test_an_invalid_search_is_permanent_and_says_why(netsuite: FakeNetSuite) -> None:
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        with pytest.raises(PermanentError, match="search_id"):
            await adapter.call(search(2))
        with pytest.raises(PermanentError, match="modified_from is after"):
            await adapter.call(search(modified_from="2024-03-03T00:00:00Z"))
    finally:
        await adapter.close()


def _passport_field(body: bytes, name: str) -> str:
    envelope = etree.fromstring(body)
    value = envelope.findtext(
        f"{{{SOAP_ENV}}}Header/{{urn:messages_2023_2.platform.webservices.netsuite.com}}"
        f"tokenPassport/{{urn:core_2023_2.platform.webservices.netsuite.com}}{name}"
    )
    assert value is not None
    return value


# -- TLS and proxies -----------------------------------------------------------------


@pytest.fixture(scope="module")
def _https_netsuite(test_ca: TestCA) -> Iterator[FakeNetSuite]:
    with FakeNetSuite(CREDENTIALS, tls=test_ca) as fake:
        yield fake


@pytest.fixture
def https_netsuite(_https_netsuite: FakeNetSuite, netsuite: FakeNetSuite) -> FakeNetSuite:
    _https_netsuite.reset()
    return _https_netsuite


async def test_the_ca_bundle_verifies_netsuite_and_the_proxy_tunnels_every_call(
    https_netsuite: FakeNetSuite, test_ca: TestCA, tunnel_proxy: TunnelProxy
) -> None:
    assert https_netsuite.endpoint.startswith("https://")
    adapter = make_adapter(
        https_netsuite, ca_bundle=str(test_ca.path), proxy=tunnel_proxy.url, timeout=5
    )
    await adapter.start()
    try:
        result = await adapter.call(customer("CUST-tls"))
    finally:
        await adapter.close()
    assert result["externalId"] == "CUST-tls"
    assert set(tunnel_proxy.tunnels) == {urlsplit(https_netsuite.endpoint).netloc}


def test_settings_read_from_an_empty_environment_are_unset() -> None:
    settings = make_adapter_settings(endpoint="", ca_bundle="", proxy="", timezone="")
    assert (settings.endpoint, settings.ca_bundle, settings.proxy, settings.timezone) == (
        None,
        None,
        None,
        None,
    )
    assert settings.service_url == endpoint_for(CREDENTIALS.account)


@pytest.mark.parametrize("how", sorted(echoes.ECHOES))
@pytest.mark.parametrize("kind", ["status", "fault", "http"])
async def test_personal_data_netsuite_echoes_changed_is_masked_everywhere(
    netsuite: FakeNetSuite, how: str, kind: str
) -> None:
    # A record error quotes the field value; a fault its request; a proxy page its URL.
    text = echoes.ECHOES[how]
    replies = {
        "status": StatusReply("INVALID_FLD_VALUE", text),
        "fault": FaultReply("ExceededConcurrentRequestLimitFault", message=text),
        "http": HttpReply(503, f"<html><body>{text}</body></html>".encode()),
    }
    netsuite.fail_next(replies[kind])
    adapter = make_adapter(netsuite)
    await adapter.start()
    try:
        request = customer("CUST-echo", email=echoes.EMAIL, companyName=echoes.NAME)
        # A page that is not SOAP is not quoted: only its status is told.
        await echoes.assert_masked(lambda: adapter.call(request), quoted=kind != "http")
    finally:
        await adapter.close()
