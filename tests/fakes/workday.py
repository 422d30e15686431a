"""A fake Workday tenant: a real SOAP server on loopback, checked against the real WSDL.

It serves the Human_Resources v30.0 endpoint
``/ccx/service/<tenant>/Human_Resources/v30.0`` and, like the real service:

* parses every request and validates the Body's element against the XML schema
  embedded in Workday's own WSDL (lxml ``XMLSchema``), so a malformed envelope or
  an element the schema does not allow gets a SOAP fault with a
  ``wd:Validation_Fault`` detail (HTTP 500), as Workday answers it;
* checks the WS-Security UsernameToken (user name and PasswordText password);
  anything else gets ``SOAP-ENV:Client.authenticationError`` "invalid username or
  password";
* keeps workers by Employee_ID with a last-updated time, answers ``Get_Workers``
  by references (honouring ``Skip_Non_Existing_Instances``) or by
  ``Transaction_Log_Criteria_Data`` updated-in-range, with paging, in a
  ``Get_Workers_Response`` rendered from the schema (and validated too);
* applies ``Change_Work_Contact_Information`` (the worker's work e-mail) and
  logs every change, so tests can count them.

Scripted failures, one per request, in order (`FakeWorkday.fail_next`):
``"validation"``, ``"processing"``, ``"auth"`` (an authentication fault, whatever
the credentials), ``500``/``503`` (an HTML error page), ``"reset"`` (headers
with a Content-Length, then the connection drops), ``Delay(seconds)``
(answer normally, late) and ``ScriptedFault(kind, message)`` (a validation or processing
fault saying ``message``, as Workday's quote what was sent).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from starlette.types import Receive, Scope, Send
from zeep import Client

from platypus._server import ServerThread
from tests.fakes.tls import TestCA, TlsServerThread
from tests.fakes.vendor import read_request
from tests.fakes.vendor_files import vendor_file

__all__ = [
    "Delay",
    "FakeWorkday",
    "FakeWorker",
    "ScriptedFault",
    "WorkChange",
    "WorkdaySchema",
    "wsdl_path",
]

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordText"
)
WD = "urn:com.workday/bsvc"
_NS = {"soap": SOAP, "wsse": WSSE, "wd": WD}
_REPO = Path(__file__).resolve().parents[2]


def wsdl_path() -> Path:
    """Where the real WSDL is: ``$PLATYPUS_WORKDAY_WSDL``, or the shared vendor folder."""
    return vendor_file("workday-Human_Resources-v30.wsdl", "PLATYPUS_WORKDAY_WSDL")


class WorkdaySchema:
    """The WSDL's XML schema (for validation) and zeep's view of it (for rendering)."""

    def __init__(self, wsdl: Path) -> None:
        document = etree.parse(str(wsdl))
        schema = document.find(
            "wsdl:types/xsd:schema",
            {"wsdl": "http://schemas.xmlsoap.org/wsdl/", "xsd": "http://www.w3.org/2001/XMLSchema"},
        )
        if schema is None:
            raise ValueError(f"{wsdl} has no embedded XML schema")
        self.xml_schema = etree.XMLSchema(schema)
        self.zeep = Client(str(wsdl))

    def validate(self, element: Any) -> list[str]:
        """Schema errors of ``element`` (empty when it is valid)."""
        if self.xml_schema.validate(element):
            return []
        return [f"{e.message} (line {e.line})" for e in self.xml_schema.error_log]

    def render(self, name: str, **values: Any) -> Any:
        """Element ``wd:<name>`` built by zeep from ``values``, checked against the schema."""
        element = self.zeep.get_element(f"{{{WD}}}{name}")
        holder = etree.Element("holder")
        element.render(holder, element(**values))
        rendered = holder[0]
        errors = self.validate(rendered)
        if errors:  # the fake's own bug: fail loudly rather than teach the adapter wrong XML
            raise AssertionError(f"the fake rendered an invalid {name}: {errors}")
        return rendered


@dataclass
class FakeWorker:
    """One worker the fake tenant holds."""

    employee_id: str
    first_name: str
    last_name: str
    email: str | None = None
    position_id: str = "P-0001"
    position_title: str = "Engineer"
    business_title: str = "Software Engineer"
    active: bool = True
    hire_date: date = date(2020, 1, 6)
    updated: datetime = field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    contingent: bool = False
    wid: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class WorkChange:
    """One ``Change_Work_Contact_Information`` the fake applied."""

    employee_id: str
    email: str
    event_wid: str
    at: datetime


@dataclass(frozen=True)
class Delay:
    """A scripted failure: answer normally, ``seconds`` late."""

    seconds: float


@dataclass(frozen=True)
class ScriptedFault:
    """A scripted SOAP fault of ``kind`` ("validation", "processing") saying ``message``."""

    kind: str
    message: str


@dataclass(frozen=True)
class Received:
    """One request as the fake received it (header names lower-cased)."""

    path: str
    headers: dict[str, str]
    body: bytes
    answer: str  # "ok", a fault kind, an HTTP status, "reset"


def seed_workers() -> list[FakeWorker]:
    """The workers every reset starts with."""
    return [
        FakeWorker(
            "21001",
            "Ada",
            "Lovelace",
            "ada.lovelace@acme.example",
            updated=datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        ),
        FakeWorker(
            "21002",
            "Grace",
            "Hopper",
            "grace.hopper@acme.example",
            position_id="P-0002",
            position_title="Manager",
            business_title="Engineering Manager",
            updated=datetime(2024, 3, 5, 12, 30, tzinfo=UTC),
        ),
        FakeWorker(
            "21003",
            "Alan",
            "Turing",
            None,
            active=False,
            updated=datetime(2024, 2, 1, 8, 0, tzinfo=UTC),
        ),
        FakeWorker(
            "C-9001",
            "Katherine",
            "Johnson",
            "k.johnson@contractor.example",
            contingent=True,
            updated=datetime(2024, 3, 3, 15, 0, tzinfo=UTC),
        ),
    ]


class _FaultError(Exception):
    def __init__(self, kind: str, message: str, xpath: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.xpath = xpath


class FakeWorkday:
    """A Workday tenant on loopback; see the module docstring."""

    def __init__(
        self,
        schema: WorkdaySchema,
        *,
        tenant: str = "acme",
        username: str = "isu_platypus@acme",
        password: str = "workday-isu-password",  # noqa: S107 -- a fake tenant's password
        tls: TestCA | None = None,
    ) -> None:
        """``tls``: serve HTTPS with that CA's certificate (clients need its ``path``)."""
        self.schema = schema
        self.tenant = tenant
        self.username = username
        self.password = password
        self._lock = threading.Lock()
        self._workers: dict[str, FakeWorker] = {}
        self._changes: list[WorkChange] = []
        self._failures: deque[Any] = deque()
        self._received: list[Received] = []
        self._in_flight = 0
        self._generation = 0
        self.max_in_flight = 0
        self._server = ServerThread(self._app) if tls is None else TlsServerThread(self._app, tls)
        self.reset()

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321``."""
        return self._server.url

    @property
    def endpoint(self) -> str:
        """The Human_Resources endpoint, shaped like the real one."""
        return f"{self.url}{self.path}"

    @property
    def path(self) -> str:
        return f"/ccx/service/{self.tenant}/Human_Resources/v30.0"

    def reset(self, *, password: str | None = None) -> None:
        """Back to the seeded workers, no changes, no scripted failures, empty log."""
        with self._lock:
            self._workers = {w.employee_id: w for w in seed_workers()}
            self._changes.clear()
            self._failures.clear()
            self._received.clear()
            self.max_in_flight = self._in_flight = 0
            self._generation += 1
            if password is not None:
                self.password = password

    # -- programming and inspection -------------------------------------------

    def add_worker(self, worker: FakeWorker) -> None:
        with self._lock:
            self._workers[worker.employee_id] = worker

    def worker(self, employee_id: str) -> FakeWorker:
        with self._lock:
            return self._workers[employee_id]

    def fail_next(self, *failures: Any) -> None:
        """Queue failures, one per coming request; see the module docstring."""
        with self._lock:
            self._failures.extend(failures)

    @property
    def changes(self) -> list[WorkChange]:
        with self._lock:
            return list(self._changes)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    # -- the ASGI app -------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = await read_request(scope, receive, send)
        if received is None:
            return
        body = received
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            generation = self._generation
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            failure = self._failures.popleft() if self._failures else None
        try:
            reply = await self._answer(scope, body, failure)
        finally:
            # Counted out before the answer goes: once the client has it, it may send
            # its next request before this coroutine resumes.
            with self._lock:
                if generation == self._generation:  # not a late one from before a reset
                    self._in_flight -= 1
        answer = "reset" if reply is None else reply[0]
        with self._lock:
            self._received.append(Received(scope["path"], headers, body, answer))
        if reply is None:
            # Promise a body, send none, and fail: uvicorn drops the connection.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000"), (b"content-type", b"text/xml")],
                }
            )
            raise ConnectionResetError("the fake Workday resets this connection")
        _, status, content, content_type = reply
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _answer(
        self, scope: Scope, body: bytes, failure: Any
    ) -> tuple[str, int, bytes, str] | None:
        """(what it was, status, body, content type), or None to reset the connection."""
        if isinstance(failure, Delay):
            generation = self._generation
            await asyncio.sleep(failure.seconds)
            # A late request from an earlier test must not change the next test's tenant.
            failure = None if generation == self._generation else "processing"
        if failure == "reset":
            return None
        if isinstance(failure, int):
            page = f"<html><body><h1>{failure} Service Unavailable</h1></body></html>"
            return str(failure), failure, page.encode(), "text/html; charset=utf-8"
        if scope["method"] != "POST" or scope["path"] != self.path:
            return "404", 404, b"<html><body>Not Found</body></html>", "text/html"
        try:
            if isinstance(failure, ScriptedFault):
                raise _FaultError(failure.kind, failure.message)
            if failure == "auth":
                raise _FaultError("auth", "invalid username or password")
            if failure == "validation":
                raise _FaultError("validation", "Invalid ID value. 'scripted' is not valid")
            if failure == "processing":
                raise _FaultError("processing", "The task submitted is locked by another process")
            response = self._handle(body)
        except _FaultError as fault:
            return fault.kind, 500, self._fault_envelope(fault), "text/xml; charset=utf-8"
        return "ok", 200, _envelope(response), "text/xml; charset=utf-8"

    # -- SOAP ---------------------------------------------------------------

    def _handle(self, body: bytes) -> Any:
        try:
            envelope = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError as exc:
            raise _FaultError("validation", f"Invalid request: not XML: {exc}") from None
        if envelope.tag != f"{{{SOAP}}}Envelope":
            raise _FaultError(
                "validation", f"Invalid request: root element {envelope.tag} is no Envelope"
            )
        self._authenticate(envelope)
        soap_body = envelope.find("soap:Body", _NS)
        if soap_body is None or len(soap_body) != 1:
            raise _FaultError("validation", "Invalid request: the Body must hold one element")
        request = soap_body[0]
        errors = self.schema.validate(request)
        if errors:
            raise _FaultError("validation", f"Validation error occurred. {errors[0]}", xpath="/")
        operation = etree.QName(request).localname
        if operation == "Get_Workers_Request":
            return self._get_workers(request)
        if operation == "Change_Work_Contact_Information_Request":
            return self._change_work_contact(request)
        raise _FaultError("processing", f"the fake Workday does not implement {operation}")

    def _authenticate(self, envelope: Any) -> None:
        token = envelope.find("soap:Header/wsse:Security/wsse:UsernameToken", _NS)
        if token is None:
            raise _FaultError("auth", "invalid username or password")
        username = token.findtext("wsse:Username", default="", namespaces=_NS)
        password = token.find("wsse:Password", _NS)
        if (
            username != self.username
            or password is None
            or password.get("Type", PASSWORD_TEXT) != PASSWORD_TEXT
            or password.text != self.password
        ):
            raise _FaultError("auth", "invalid username or password")

    def _get_workers(self, request: Any) -> Any:
        skip_missing = _bool(
            request.find("wd:Request_References", _NS), "Skip_Non_Existing_Instances"
        )
        references = request.findall("wd:Request_References/wd:Worker_Reference/wd:ID", _NS)
        ranges = request.findall(
            "wd:Request_Criteria/wd:Transaction_Log_Criteria_Data/wd:Transaction_Date_Range_Data",
            _NS,
        )
        with self._lock:
            workers = list(self._workers.values())
        if references:
            chosen = []
            for ref in references:
                id_type = ref.get(f"{{{WD}}}type")
                found = next((w for w in workers if _matches(w, id_type, ref.text)), None)
                if found is not None:
                    chosen.append(found)
                elif not skip_missing:
                    raise _FaultError(
                        "validation",
                        f"Invalid ID value.  '{ref.text}' is not a valid ID value "
                        f"for type = '{id_type}'",
                        xpath="/ns0:Get_Workers_Request[1]/ns0:Request_References[1]",
                    )
        elif ranges:
            chosen = [w for w in workers if any(_in_range(w.updated, r) for r in ranges)]
        else:
            chosen = workers
        chosen.sort(key=lambda w: w.employee_id)
        page = int(request.findtext("wd:Response_Filter/wd:Page", default="1", namespaces=_NS))
        count = int(request.findtext("wd:Response_Filter/wd:Count", default="100", namespaces=_NS))
        total_pages = max((len(chosen) + count - 1) // count, 1) if chosen else 0
        on_page = chosen[(page - 1) * count : page * count]
        return self.schema.render(
            "Get_Workers_Response",
            Response_Results={
                "Total_Results": len(chosen),
                "Total_Pages": total_pages,
                "Page_Results": len(on_page),
                "Page": page,
            },
            Response_Data={"Worker": [_worker_data(w) for w in on_page]} if on_page else None,
            version="v30.0",
        )

    def _change_work_contact(self, request: Any) -> Any:
        data = request.find("wd:Change_Work_Contact_Information_Data", _NS)
        ref = data.find("wd:Person_Reference/wd:ID", _NS)
        if ref is None:
            raise _FaultError("validation", "Person_Reference is required by the fake")
        id_type = ref.get(f"{{{WD}}}type")
        emails = data.findall(
            "wd:Person_Contact_Information_Data/wd:Person_Email_Information_Data/"
            "wd:Email_Information_Data",
            _NS,
        )
        work = [
            e.findtext("wd:Email_Data/wd:Email_Address", namespaces=_NS)
            for e in emails
            if e.find("wd:Usage_Data/wd:Type_Data/wd:Type_Reference/wd:ID", _NS) is not None
            and e.find("wd:Usage_Data/wd:Type_Data/wd:Type_Reference/wd:ID", _NS).text == "WORK"
        ]
        if not work:
            raise _FaultError("validation", "At least one work e-mail address is required")
        event = uuid.uuid4().hex
        with self._lock:
            worker = next(
                (w for w in self._workers.values() if _matches(w, id_type, ref.text)), None
            )
            if worker is None:
                raise _FaultError(
                    "validation",
                    f"Invalid ID value.  '{ref.text}' is not a valid ID value "
                    f"for type = '{id_type}'",
                    xpath="/ns0:Change_Work_Contact_Information_Request[1]/"
                    "ns0:Change_Work_Contact_Information_Data[1]/ns0:Person_Reference[1]",
                )
            now = datetime.now(UTC)
            worker.email = work[0]
            worker.updated = now
            self._changes.append(WorkChange(worker.employee_id, work[0], event, now))
        return self.schema.render(
            "Change_Work_Contact_Information_Response",
            Change_Work_Contact_Information_Event_Reference={
                "ID": [{"_value_1": event, "type": "WID"}]
            },
            version="v30.0",
        )

    def _fault_envelope(self, fault: _FaultError) -> bytes:
        root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"SOAP-ENV": SOAP, "wd": WD})
        soap_fault = etree.SubElement(etree.SubElement(root, f"{{{SOAP}}}Body"), f"{{{SOAP}}}Fault")
        code = {
            "auth": "SOAP-ENV:Client.authenticationError",
            "validation": "SOAP-ENV:Client.validationError",
            "processing": "SOAP-ENV:Client.processingError",
        }[fault.kind]
        etree.SubElement(soap_fault, "faultcode").text = code
        etree.SubElement(soap_fault, "faultstring").text = fault.message
        if fault.kind == "validation":
            detail = etree.SubElement(soap_fault, "detail")
            error: dict[str, Any] = {"Message": fault.message}
            if fault.xpath:
                error["Xpath"] = fault.xpath
            detail.append(self.schema.render("Validation_Fault", Validation_Error=[error]))
        elif fault.kind == "processing":
            detail = etree.SubElement(soap_fault, "detail")
            detail.append(self.schema.render("Processing_Fault", Detail_Message=fault.message))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _envelope(payload: Any) -> bytes:
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"env": SOAP})
    etree.SubElement(root, f"{{{SOAP}}}Body").append(payload)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _bool(element: Any, attribute: str) -> bool:
    if element is None:
        return False
    return element.get(f"{{{WD}}}{attribute}", "false") in {"true", "1"}


def _matches(worker: FakeWorker, id_type: str | None, value: str | None) -> bool:
    if id_type == "WID":
        return worker.wid == value
    if id_type == "Contingent_Worker_ID":
        return worker.contingent and worker.employee_id == value
    return not worker.contingent and worker.employee_id == value


def _in_range(updated: datetime, date_range: Any) -> bool:
    start = date_range.findtext("wd:Updated_From", namespaces=_NS)
    end = date_range.findtext("wd:Updated_Through", namespaces=_NS)
    if start and updated < _moment(start):
        return False
    return not (end and updated > _moment(end))


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _worker_data(worker: FakeWorker) -> dict[str, Any]:
    id_type = "Contingent_Worker_ID" if worker.contingent else "Employee_ID"
    personal: dict[str, Any] = {
        "Name_Data": {
            "Legal_Name_Data": {
                "Name_Detail_Data": {
                    "Country_Reference": {
                        "ID": [{"_value_1": "US", "type": "ISO_3166-1_Alpha-2_Code"}]
                    },
                    "First_Name": worker.first_name,
                    "Last_Name": worker.last_name,
                }
            }
        }
    }
    if worker.email:
        personal["Contact_Data"] = {
            "Email_Address_Data": [
                {
                    "Email_Address": worker.email,
                    "Usage_Data": [
                        {
                            "Type_Data": [
                                {
                                    "Type_Reference": {
                                        "ID": [
                                            {
                                                "_value_1": "WORK",
                                                "type": "Communication_Usage_Type_ID",
                                            }
                                        ]
                                    },
                                    "Primary": True,
                                }
                            ],
                            "Public": True,
                        }
                    ],
                }
            ]
        }
    return {
        "Worker_Reference": {
            "ID": [
                {"_value_1": worker.wid, "type": "WID"},
                {"_value_1": worker.employee_id, "type": id_type},
            ]
        },
        "Worker_Descriptor": f"{worker.first_name} {worker.last_name}",
        "Worker_Data": {
            "Worker_ID": worker.employee_id,
            "User_ID": f"{worker.first_name}.{worker.last_name}".lower(),
            "Personal_Data": personal,
            "Employment_Data": {
                "Worker_Job_Data": [
                    {
                        "Position_Data": {
                            "Position_ID": worker.position_id,
                            "Position_Title": worker.position_title,
                            "Business_Title": worker.business_title,
                        },
                        "Primary_Job": True,
                    }
                ],
                "Worker_Status_Data": {"Active": worker.active, "Hire_Date": worker.hire_date},
            },
        },
    }
