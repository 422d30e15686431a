"""A fake NetSuite: SuiteTalk SOAP 1.1 on loopback, checked against the real 2023.2 WSDL.

::

    with FakeNetSuite(CREDENTIALS) as netsuite:
        ...  # point the adapter's endpoint at netsuite.endpoint
        netsuite.fail_next(FaultReply("ExceededRequestLimitFault", "WS_REQUEST_BLOCKED"))

Every request is

1. parsed as XML and validated, Envelope to leaves, with an XML Schema made of the
   SOAP 1.1 envelope and every schema the WSDL imports (``lxml.etree.XMLSchema``).
   The envelope's Header and Body are ``processContents="lax"``, so a NetSuite
   element there (``upsert``, ``tokenPassport``) is validated against its
   declaration, ``xsi:type`` records included. A request that fails gets a SOAP
   Fault without NetSuite detail, as the real service answers a SAX error;
2. dispatched on its SOAPAction and body element: ``upsert``, ``search`` (a
   ``TransactionSearchBasic`` by ``type`` and ``lastModifiedDate``) and
   ``searchMoreWithId``;
3. authenticated: the ``tokenPassport`` must name the known account, consumer key
   and token, carry a fresh timestamp and an unused nonce, and be signed with the
   known secrets, or the answer is an ``InvalidCredentialsFault``;
4. applied to a store keyed by (record type, externalId): upserting twice updates
   one record, which keeps its internalId. A sales order's or invoice's ``entity``
   must name a stored customer, an invoice's ``createdFrom`` a stored sales order,
   a vendor bill's ``entity`` a stored vendor (``INVALID_KEY_OR_REF`` otherwise).

Every upsert stamps the record's ``lastModifiedDate`` (`touch` sets it). A date
field is kept as NetSuite keeps it: the calendar day its ``xsd:dateTime`` falls on
in the integration user's time zone preference (`user_timezone`), an instant
without an offset read as America/Los_Angeles (`date_of`). A search
pages by ``searchPreferences/pageSize``, keeps its result under a ``searchId``,
and answers records with their ``internalId`` and ``lastModifiedDate``.

Answers are real ``upsertResponse``/``searchResponse`` envelopes, themselves validated against the
same schema before they are sent. Scripted failures (`fail_next`) replace the
next answers: faults, record statuses, HTTP errors, late answers and resets.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from starlette.types import Receive, Scope, Send

from platypus._server import ServerThread
from tests.fakes.tls import TestCA, TlsServerThread
from tests.fakes.vendor import read_request
from tests.fakes.vendor_files import vendor_file

__all__ = [
    "PATH",
    "RESET",
    "Credentials",
    "Delay",
    "FakeNetSuite",
    "FaultReply",
    "HttpReply",
    "StatusReply",
    "StoredRecord",
    "load_schema",
    "wsdl_path",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
PATH = "/services/NetSuitePort_2023_2"

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MESSAGES = "urn:messages_2023_2.platform.webservices.netsuite.com"
CORE = "urn:core_2023_2.platform.webservices.netsuite.com"
COMMON = "urn:common_2023_2.platform.webservices.netsuite.com"
SALES = "urn:sales_2023_2.transactions.webservices.netsuite.com"
FAULTS = "urn:faults_2023_2.platform.webservices.netsuite.com"
AXIS = "http://xml.apache.org/axis/"

# The SOAP 1.1 envelope schema (http://schemas.xmlsoap.org/soap/envelope/), as
# published, minus encodingStyle; it becomes the root of the validating schema.
_ENVELOPE_XSD = """\
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="http://schemas.xmlsoap.org/soap/envelope/"
    targetNamespace="http://schemas.xmlsoap.org/soap/envelope/">
  {imports}
  <xs:element name="Envelope" type="tns:Envelope"/>
  <xs:complexType name="Envelope">
    <xs:sequence>
      <xs:element ref="tns:Header" minOccurs="0"/>
      <xs:element ref="tns:Body" minOccurs="1"/>
      <xs:any namespace="##other" minOccurs="0" maxOccurs="unbounded" processContents="lax"/>
    </xs:sequence>
    <xs:anyAttribute namespace="##other" processContents="lax"/>
  </xs:complexType>
  <xs:element name="Header" type="tns:Header"/>
  <xs:complexType name="Header">
    <xs:sequence>
      <xs:any namespace="##other" minOccurs="0" maxOccurs="unbounded" processContents="lax"/>
    </xs:sequence>
    <xs:anyAttribute namespace="##other" processContents="lax"/>
  </xs:complexType>
  <xs:element name="Body" type="tns:Body"/>
  <xs:complexType name="Body">
    <xs:sequence>
      <xs:any namespace="##any" minOccurs="0" maxOccurs="unbounded" processContents="lax"/>
    </xs:sequence>
    <xs:anyAttribute namespace="##any" processContents="lax"/>
  </xs:complexType>
  <xs:element name="Fault" type="tns:Fault"/>
  <xs:complexType name="Fault" final="extension">
    <xs:sequence>
      <xs:element name="faultcode" type="xs:QName"/>
      <xs:element name="faultstring" type="xs:string"/>
      <xs:element name="faultactor" type="xs:anyURI" minOccurs="0"/>
      <xs:element name="detail" type="tns:detail" minOccurs="0"/>
    </xs:sequence>
  </xs:complexType>
  <xs:complexType name="detail">
    <xs:sequence>
      <xs:any namespace="##any" minOccurs="0" maxOccurs="unbounded" processContents="lax"/>
    </xs:sequence>
    <xs:anyAttribute namespace="##any" processContents="lax"/>
  </xs:complexType>
</xs:schema>
"""

_FAULT_CODES = {
    # fault type → the FaultCodeType value NetSuite puts in it
    "ExceededConcurrentRequestLimitFault": "WS_CONCUR_SESSION_DISALLWD",
    "ExceededRequestLimitFault": "WS_REQUEST_BLOCKED",
    "InvalidCredentialsFault": "INVALID_LOGIN_CREDENTIALS",
    "InvalidSessionFault": "SESSION_TIMED_OUT",
    "InvalidAccountFault": "INVALID_ACCT",
    "InsufficientPermissionFault": "INSUFFICIENT_PERMISSION",
    "UnexpectedErrorFault": "UNEXPECTED_ERROR",
    "ExceededUsageLimitFault": "USER_ERROR",
}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def wsdl_path() -> Path:
    """The 2023.2 WSDL: ``$PLATYPUS_NETSUITE_WSDL``, or the shared vendor folder."""
    return vendor_file("netsuite-2023_2/netsuite.wsdl", "PLATYPUS_NETSUITE_WSDL")


@functools.cache
def load_schema(wsdl: Path) -> etree.XMLSchema:
    """An XML Schema for whole SOAP envelopes: the envelope plus every xsd the WSDL imports.

    Compiling it takes about two seconds, so it is built once per process.
    """
    definitions = etree.parse(str(wsdl), _PARSER)
    xs = "http://www.w3.org/2001/XMLSchema"
    imports = []
    for element in definitions.iter(f"{{{xs}}}import"):
        location = (wsdl.parent / element.get("schemaLocation")).resolve().as_uri()
        imports.append(
            f'<xs:import namespace="{element.get("namespace")}" schemaLocation="{location}"/>'
        )
    source = _ENVELOPE_XSD.format(imports="\n  ".join(imports))
    return etree.XMLSchema(etree.fromstring(source.encode(), _PARSER))


@dataclass(frozen=True)
class Credentials:
    """The TBA credentials the fake accepts."""

    account: str
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str

    def sign(self, nonce: str, timestamp: str) -> str:
        base = "&".join([self.account, self.consumer_key, self.token_id, nonce, timestamp])
        key = f"{self.consumer_secret}&{self.token_secret}"
        digest = hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")


# -- scripted answers -----------------------------------------------------------


@dataclass(frozen=True)
class FaultReply:
    """Answer with a NetSuite SOAP fault, e.g. ``FaultReply("ExceededRequestLimitFault")``."""

    name: str
    code: str | None = None
    message: str = "Scripted fault from the fake NetSuite."


@dataclass(frozen=True)
class StatusReply:
    """Answer ``writeResponse`` with ``status isSuccess="false"`` and this detail code."""

    code: str
    message: str = "Scripted record error from the fake NetSuite."


@dataclass(frozen=True)
class HttpReply:
    """Answer this HTTP status with a non-SOAP body (a proxy's or a load balancer's)."""

    status: int
    body: bytes = b"<html><body>Service Unavailable</body></html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class Delay:
    """Apply the request as usual, then answer only after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class _Reset:
    pass


RESET = _Reset()
"""Drop the connection mid-answer: headers promising a body, then nothing."""

Scripted = FaultReply | StatusReply | HttpReply | Delay | _Reset


@dataclass
class StoredRecord:
    """One record the fake holds."""

    type: str
    external_id: str
    internal_id: str
    xml: etree._Element
    upserts: int = 1
    last_modified: datetime = field(default_factory=lambda: datetime.now(UTC))

    def field(self, name: str) -> etree._Element | None:
        """The record's child element ``name`` (any namespace), or None."""
        for child in self.xml:
            if isinstance(child.tag, str) and etree.QName(child).localname == name:
                return child
        return None


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it, and what it answered (an HTTP status, or -1)."""

    soap_action: str
    body: bytes
    status: int
    fault: str = ""


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/xml; charset=utf-8"
    delay: float = 0.0
    reset: bool = False
    fault: str = ""


class _SoapFaultError(Exception):
    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.fault)
        self.answer = answer


class FakeNetSuite:
    """SuiteTalk on loopback; see the module docstring."""

    def __init__(
        self, credentials: Credentials, *, wsdl: Path | None = None, tls: TestCA | None = None
    ) -> None:
        """``tls``: serve HTTPS with that CA's certificate (clients need its ``path``)."""
        self.credentials = credentials
        self.schema = load_schema(wsdl or wsdl_path())
        self._lock = threading.Lock()
        self._server = ServerThread(self._app) if tls is None else TlsServerThread(self._app, tls)
        self.reset()

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        self._server.start()
        return self.endpoint

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeNetSuite:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The service URL, as the adapter's ``endpoint`` setting."""
        return self._server.url + PATH

    # -- programming and inspection -----------------------------------------

    def reset(self) -> None:
        """Forget records, requests, nonces, scripts and the slow-down."""
        with self._lock:
            self.records: dict[tuple[str, str], StoredRecord] = {}
            self.received: list[Received] = []
            self._script: deque[Scripted] = deque()
            self._nonces: set[str] = set()
            self._ids = itertools.count(1001)
            self.searches: dict[str, list[tuple[str, str]]] = {}
            self.slow_by = 0.0
            self.user_timezone = "America/Los_Angeles"
            """The integration user's Time Zone preference: which day a date field keeps."""
            self.in_flight = 0
            self.max_in_flight = 0

    def fail_next(self, *answers: Scripted) -> None:
        """Queue answers that replace the next requests' (after validation)."""
        with self._lock:
            self._script.extend(answers)

    def slow(self, seconds: float) -> None:
        """Answer every later request only after ``seconds`` (0: at once)."""
        self.slow_by = seconds

    def record(self, record_type: str, external_id: str) -> StoredRecord | None:
        with self._lock:
            return self.records.get((record_type, external_id))

    def touch(self, record_type: str, external_id: str, when: datetime) -> None:
        """Set a stored record's ``lastModifiedDate`` (as if someone edited it then)."""
        with self._lock:
            self.records[(record_type, external_id)].last_modified = when

    def date_of(self, record_type: str, external_id: str, field_name: str) -> date | None:
        """The calendar day NetSuite keeps for a date field, in `user_timezone`."""
        stored = self.record(record_type, external_id)
        element = stored.field(field_name) if stored is not None else None
        if element is None or not element.text:
            return None
        moment = datetime.fromisoformat(element.text.replace("Z", "+00:00"))
        if moment.tzinfo is None:  # SuiteTalk reads an instant without offset as Pacific
            moment = moment.replace(tzinfo=ZoneInfo("America/Los_Angeles"))
        return moment.astimezone(ZoneInfo(self.user_timezone)).date()

    def count(self, record_type: str, external_id: str) -> int:
        """How many records of the type carry this externalId (0 or 1, by design)."""
        return 1 if self.record(record_type, external_id) is not None else 0

    # -- HTTP ---------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = await read_request(scope, receive, send)
        if received is None:
            return
        body = received
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        soap_action = headers.get("soapaction", "").strip('"')
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if scope["path"] != PATH or scope["method"] != "POST":
                answer = _Answer(404, b"Not Found", "text/plain")
            else:
                answer = self._handle(soap_action, body)
            with self._lock:
                status = -1 if answer.reset else answer.status
                self.received.append(Received(soap_action, body, status, answer.fault))
            if self.slow_by + answer.delay > 0:
                await asyncio.sleep(self.slow_by + answer.delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        if answer.reset:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/xml"), (b"content-length", b"4096")],
                }
            )
            raise ConnectionResetError("the fake NetSuite drops this connection mid-answer")
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type.encode()),
                    (b"content-length", str(len(answer.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    # -- SOAP ---------------------------------------------------------------

    def _handle(self, soap_action: str, body: bytes) -> _Answer:
        try:
            operation = self._validated_operation(soap_action, body)
            with self._lock:
                scripted = self._script.popleft() if self._script else None
            delay = 0.0
            if isinstance(scripted, Delay):
                delay, scripted = scripted.seconds, None
            if scripted is not None:
                return self._scripted(scripted)
            self._authenticate(operation.getroottree().getroot())
            if operation.tag == f"{{{MESSAGES}}}upsert":
                answer = self._upsert(operation)
            else:
                answer = self._search(operation)
            answer.delay = delay
            return answer
        except _SoapFaultError as fault:
            return fault.answer

    def _validated_operation(self, soap_action: str, body: bytes) -> etree._Element:
        try:
            envelope = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise _SoapFaultError(
                _sax_fault(self.schema, f"org.xml.sax.SAXParseException: {exc}")
            ) from None
        if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
            raise _SoapFaultError(
                _fault_answer(
                    self.schema,
                    "soapenv:VersionMismatch",
                    f"Bad envelope tag: {etree.QName(envelope).localname}",
                )
            )
        if not self.schema.validate(envelope):
            errors = "; ".join(
                f"line {e.line}: {e.message}" for e in list(self.schema.error_log)[:3]
            )
            raise _SoapFaultError(_sax_fault(self.schema, f"org.xml.sax.SAXException: {errors}"))
        soap_body = envelope.find(f"{{{SOAP_ENV}}}Body")
        operations = [el for el in (soap_body if soap_body is not None else []) if _is_el(el)]
        served = {f"{{{MESSAGES}}}{name}" for name in _OPERATIONS}
        if len(operations) != 1 or operations[0].tag not in served:
            found = ", ".join(etree.QName(el).localname for el in operations) or "nothing"
            raise _SoapFaultError(
                _sax_fault(
                    self.schema,
                    f"No such operation '{found}' (the fake serves {', '.join(_OPERATIONS)})",
                )
            )
        name = etree.QName(operations[0]).localname
        if soap_action != name:
            raise _SoapFaultError(
                _sax_fault(self.schema, f"SOAPAction {soap_action!r} does not match {name!r}")
            )
        return operations[0]

    def _authenticate(self, envelope: etree._Element) -> None:
        passport = envelope.find(f"{{{SOAP_ENV}}}Header/{{{MESSAGES}}}tokenPassport")
        if passport is None:
            raise _SoapFaultError(
                _netsuite_fault(
                    self.schema,
                    "InvalidSessionFault",
                    "WS_LOG_IN_REQD",
                    "Please login before performing any other operation.",
                )
            )
        fields = {etree.QName(el).localname: (el.text or "") for el in passport if _is_el(el)}
        signature = passport.find(f"{{{CORE}}}signature")
        algorithm = signature.get("algorithm") if signature is not None else None
        known = self.credentials
        with self._lock:
            reused = fields["nonce"] in self._nonces
            self._nonces.add(fields["nonce"])
        fresh = abs(time.time() - int(fields["timestamp"])) <= 300
        valid = (
            fields["account"] == known.account
            and fields["consumerKey"] == known.consumer_key
            and fields["token"] == known.token_id
            and algorithm == "HMAC-SHA256"
            and hmac.compare_digest(
                fields["signature"], known.sign(fields["nonce"], fields["timestamp"])
            )
        )
        if not (valid and fresh and not reused):
            raise _SoapFaultError(
                _netsuite_fault(
                    self.schema,
                    "InvalidCredentialsFault",
                    "INVALID_LOGIN_CREDENTIALS",
                    "Invalid login attempt.",
                )
            )

    def _upsert(self, upsert: etree._Element) -> _Answer:
        record = upsert.find(f"{{{MESSAGES}}}record")
        assert record is not None  # the schema requires it
        xsi_type = record.get(f"{{{XSI}}}type", "")
        local = xsi_type.rpartition(":")[2]
        record_type = local[:1].lower() + local[1:]
        external_id = record.get("externalId")
        if not external_id:
            return self._status_answer("USER_ERROR", "externalId is required for upsert.")
        with self._lock:
            problem = self._check_references(record_type, record)
            if problem is not None:
                return self._status_answer(*problem)
            key = (record_type, external_id)
            stored = self.records.get(key)
            if stored is None:
                stored = StoredRecord(record_type, external_id, str(next(self._ids)), record)
                self.records[key] = stored
            else:
                stored.xml = record
                stored.upserts += 1
                stored.last_modified = datetime.now(UTC)
        return self._write_response(stored)

    def _search(self, operation: etree._Element) -> _Answer:
        envelope = operation.getroottree().getroot()
        size_text = envelope.findtext(
            f"{{{SOAP_ENV}}}Header/{{{MESSAGES}}}searchPreferences/{{{MESSAGES}}}pageSize"
        )
        page_size = int(size_text) if size_text else 1000
        if operation.tag == f"{{{MESSAGES}}}searchMoreWithId":
            search_id = operation.findtext(f"{{{MESSAGES}}}searchId") or ""
            page = int(operation.findtext(f"{{{MESSAGES}}}pageIndex") or "1")
            with self._lock:
                keys = self.searches.get(search_id)
            if keys is None:
                return self._search_status(
                    "INVALID_SEARCH", f"The search {search_id} has expired or does not exist."
                )
        else:
            keys = self._run_search(operation.find(f"{{{MESSAGES}}}searchRecord"))
            if isinstance(keys, _Answer):
                return keys
            search_id = f"WEBSERVICES_{self.credentials.account}_{uuid.uuid4().hex}"
            page = 1
            with self._lock:
                self.searches[search_id] = keys
        total_pages = (len(keys) + page_size - 1) // page_size
        on_page = keys[(page - 1) * page_size : page * page_size]
        result = _el(CORE, "searchResult")
        status = etree.SubElement(result, f"{{{CORE}}}status", isSuccess="true")
        del status  # only its presence matters
        for name, value in (
            ("totalRecords", len(keys)),
            ("pageSize", page_size),
            ("totalPages", total_pages),
            ("pageIndex", page),
            ("searchId", search_id),
        ):
            etree.SubElement(result, f"{{{CORE}}}{name}").text = str(value)
        listed = etree.SubElement(result, f"{{{CORE}}}recordList")
        with self._lock:
            for key in on_page:
                stored = self.records.get(key)
                if stored is not None:
                    listed.append(_found_record(stored))
        operation_name = etree.QName(operation).localname
        return self._respond(f"{operation_name}Response", result)

    def _run_search(self, search: etree._Element | None) -> list[tuple[str, str]] | _Answer:
        kind = "" if search is None else search.get(f"{{{XSI}}}type", "").rpartition(":")[2]
        if search is None or kind != "TransactionSearchBasic":
            return self._search_status(
                "INVALID_SEARCH", "The fake searches TransactionSearchBasic only."
            )
        wanted = {
            (v.text or "").lstrip("_")
            for v in search.iterfind(f"{{{COMMON}}}type/{{{CORE}}}searchValue")
        }
        modified = search.find(f"{{{COMMON}}}lastModifiedDate")
        low = high = None
        if modified is not None:
            operator = modified.get("operator")
            first = modified.findtext(f"{{{CORE}}}searchValue")
            second = modified.findtext(f"{{{CORE}}}searchValue2")
            if operator != "within" or not first or not second:
                return self._search_status(
                    "INVALID_SEARCH_OPERATOR", "The fake takes lastModifiedDate 'within' only."
                )
            low, high = _instant(first), _instant(second)
        with self._lock:
            found = [
                r
                for r in self.records.values()
                if (not wanted or r.type in wanted)
                and (low is None or low <= r.last_modified)
                and (high is None or r.last_modified <= high)
            ]
        found.sort(key=lambda r: (r.last_modified, int(r.internal_id)))
        return [(r.type, r.external_id) for r in found]

    def _search_status(self, code: str, message: str) -> _Answer:
        result = _el(CORE, "searchResult")
        status = etree.SubElement(result, f"{{{CORE}}}status", isSuccess="false")
        detail = etree.SubElement(status, f"{{{CORE}}}statusDetail", type="ERROR")
        etree.SubElement(detail, f"{{{CORE}}}code").text = code
        etree.SubElement(detail, f"{{{CORE}}}message").text = message
        return self._respond("searchResponse", result)

    def _respond(self, response_name: str, content: etree._Element) -> _Answer:
        nsmap = {
            "soapenv": SOAP_ENV,
            "xsi": XSI,
            "platformCore": CORE,
            "platformMsgs": MESSAGES,
            "tranSales": SALES,
        }
        envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
        header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
        info = etree.SubElement(header, f"{{{MESSAGES}}}documentInfo")
        etree.SubElement(
            info, f"{{{MESSAGES}}}nsId"
        ).text = f"WEBSERVICES_{self.credentials.account}"
        body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
        etree.SubElement(body, f"{{{MESSAGES}}}{response_name}").append(content)
        self.schema.assertValid(envelope)
        return _Answer(200, etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))

    def _check_references(self, record_type: str, record: etree._Element) -> tuple[str, str] | None:
        wanted = {"entity": "customer"}
        if record_type == "invoice":
            wanted["createdFrom"] = "salesOrder"
        if record_type == "vendorBill":
            wanted = {"entity": "vendor"}  # a bill is a vendor's, not a customer's
        for child in record:
            if not _is_el(child):
                continue
            name = etree.QName(child).localname
            if name in wanted and record_type in {"salesOrder", "invoice", "vendorBill"}:
                target = wanted[name]
                internal, external = child.get("internalId"), child.get("externalId")
                if not any(
                    r.type == target
                    and (r.internal_id == internal or (external and r.external_id == external))
                    for r in self.records.values()
                ):
                    ref = internal or external
                    return "INVALID_KEY_OR_REF", f"Invalid {name} reference key {ref}."
        return None

    # -- answers ------------------------------------------------------------

    def _scripted(self, scripted: Scripted) -> _Answer:
        if isinstance(scripted, FaultReply):
            code = scripted.code or _FAULT_CODES.get(scripted.name, "UNEXPECTED_ERROR")
            return _netsuite_fault(self.schema, scripted.name, code, scripted.message)
        if isinstance(scripted, StatusReply):
            return self._status_answer(scripted.code, scripted.message)
        if isinstance(scripted, HttpReply):
            return _Answer(scripted.status, scripted.body, scripted.content_type)
        return _Answer(200, reset=True)

    def _status_answer(self, code: str, message: str) -> _Answer:
        status = _el(CORE, "status", isSuccess="false")
        detail = etree.SubElement(status, f"{{{CORE}}}statusDetail", type="ERROR")
        etree.SubElement(detail, f"{{{CORE}}}code").text = code
        etree.SubElement(detail, f"{{{CORE}}}message").text = message
        return self._envelope(status, None)

    def _write_response(self, stored: StoredRecord) -> _Answer:
        status = _el(CORE, "status", isSuccess="true")
        ref = _el(
            MESSAGES,
            "baseRef",
            internalId=stored.internal_id,
            externalId=stored.external_id,
            type=stored.type,
        )
        ref.set(f"{{{XSI}}}type", "platformCore:RecordRef")
        return self._envelope(status, ref)

    def _envelope(self, status: etree._Element, base_ref: etree._Element | None) -> _Answer:
        nsmap = {"soapenv": SOAP_ENV, "xsi": XSI, "platformCore": CORE, "platformMsgs": MESSAGES}
        envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
        header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
        info = etree.SubElement(header, f"{{{MESSAGES}}}documentInfo")
        etree.SubElement(
            info, f"{{{MESSAGES}}}nsId"
        ).text = f"WEBSERVICES_{self.credentials.account}"
        body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
        response = etree.SubElement(body, f"{{{MESSAGES}}}upsertResponse")
        write = etree.SubElement(response, f"{{{MESSAGES}}}writeResponse")
        write.append(status)
        if base_ref is not None:
            write.append(base_ref)
        # The fake checks its own answers too: it must speak NetSuite's schema.
        self.schema.assertValid(envelope)
        return _Answer(200, etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


_OPERATIONS = ("upsert", "search", "searchMoreWithId")


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _found_record(stored: StoredRecord) -> etree._Element:
    """A stored record as a search answers it: its ids and lastModifiedDate added."""
    local = stored.type[:1].upper() + stored.type[1:]
    namespace = SALES if stored.type in ("invoice", "salesOrder") else None
    record = etree.Element(f"{{{CORE}}}record", nsmap={"tranSales": SALES, "xsi": XSI})
    if namespace is not None:
        record.set(f"{{{XSI}}}type", f"tranSales:{local}")
    record.set("internalId", stored.internal_id)
    record.set("externalId", stored.external_id)
    children = [etree.fromstring(etree.tostring(c)) for c in stored.xml if _is_el(c)]
    if namespace is not None:
        # lastModifiedDate comes before every field the adapter writes (schema order).
        modified = etree.SubElement(record, f"{{{SALES}}}lastModifiedDate")
        modified.text = stored.last_modified.isoformat()
    for child in children:
        record.append(child)
    return record


def _is_el(node: Any) -> bool:
    return isinstance(node.tag, str)


def _el(namespace: str, name: str, **attributes: str) -> etree._Element:
    return etree.Element(f"{{{namespace}}}{name}", attrib=attributes)


def _fault_answer(
    schema: etree.XMLSchema, code: str, message: str, detail: etree._Element | None = None
) -> _Answer:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = message
    details = etree.SubElement(fault, "detail")
    if detail is not None:
        details.append(detail)
    hostname = etree.SubElement(details, f"{{{AXIS}}}hostname", nsmap={"ns1": AXIS})
    hostname.text = "fake-netsuite"
    schema.assertValid(envelope)  # the fake's faults are NetSuite's too
    xml = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    name = etree.QName(detail).localname if detail is not None else code
    return _Answer(500, xml, fault=name)


def _sax_fault(schema: etree.XMLSchema, message: str) -> _Answer:
    """How NetSuite answers a request it cannot parse or validate: no NetSuite detail."""
    return _fault_answer(schema, "soapenv:Server.userException", message)


def _netsuite_fault(schema: etree.XMLSchema, name: str, code: str, message: str) -> _Answer:
    element = name[:1].lower() + name[1:]
    detail = etree.Element(f"{{{FAULTS}}}{element}", nsmap={"platformFaults": FAULTS})
    etree.SubElement(detail, f"{{{FAULTS}}}code").text = code
    etree.SubElement(detail, f"{{{FAULTS}}}message").text = message
    return _fault_answer(schema, "soapenv:Server.userException", message, detail)
