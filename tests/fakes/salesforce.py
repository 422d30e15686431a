"""A fake Salesforce: a real HTTPS server on loopback speaking Salesforce's wire format.

simple-salesforce only builds ``https://`` URLs, so the fake serves TLS with a
certificate from a throwaway `trustme` CA; clients trust ``ca_path``::

    with FakeSalesforce() as sf:
        sf.add_user("integration@acme.test", "pw", "token")
        ...  # a connection with login_url=sf.url and ca_bundle=sf.ca_path

What it answers:

* ``POST /services/Soap/u/<v>``: the SOAP ``login`` call (a real ``loginResponse``
  envelope whose ``serverUrl`` points back at the fake, or an ``INVALID_LOGIN`` fault);
* ``POST /services/oauth2/token``: the JWT bearer grant; the assertion's RS256
  signature is checked with the registered app's public key, and its iss, sub,
  aud and exp claims;
* under ``/services/data/v<v>/``: ``sobjects/<Type>/`` (POST create),
  ``sobjects/<Type>/<Field>/<value>`` (PATCH upsert), ``sobjects/<Type>/<Id>``
  (PATCH update, GET) and ``query/?q=`` (a small SOQL subset: SELECT fields FROM
  Type [WHERE a = 'x' AND b = 1] [LIMIT n]).

Lookups declared with `add_lookup` are enforced as an org enforces them: an id
of no such record is ``INVALID_CROSS_REFERENCE_KEY``, and a parent named by
external id (``{"Account__r": {"External_Id__c": "A-1"}}``) is resolved to its
id, or refused with ``INVALID_FIELD`` "Foreign key external ID: A-1 not found".

Every data answer carries ``Sforce-Limit-Info: api-usage=<used>/<limit>``; every
data request counts one. Errors are Salesforce's error array,
``[{"message", "errorCode", "fields"}]``, with its HTTP status. Tests script
failures with `fail_next`, `delay_next`, `reset_next` and `expire_sessions`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from html import escape, unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
import trustme
import uvicorn
from starlette.types import Receive, Scope, Send

from platypus._server import ServerThread
from tests.fakes.vendor import read_request

__all__ = ["Failure", "FakeSalesforce", "SfRequest"]

ORG_ID = "00D000000000001EAA"
USER_ID = "005000000000001AAA"
AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")

_STATUS_BY_CODE = {
    "INVALID_SESSION_ID": 401,
    "REQUEST_LIMIT_EXCEEDED": 403,
    "SERVER_UNAVAILABLE": 503,
    "ENTITY_IS_DELETED": 404,
    "NOT_FOUND": 404,
    "UNKNOWN_EXCEPTION": 500,
}
_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "Opportunity": "006"}
_REQUIRED = {"Account": ("Name",), "Contact": ("LastName",), "Lead": ("LastName", "Company")}

_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<sobject>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)\s*(?:AND\b|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """One scripted answer for the next data request.

    ``code`` answers Salesforce's error array with ``status`` (derived from the
    code when 0); ``delay`` answers normally, late; ``reset`` drops the connection.
    """

    code: str = ""
    status: int = 0
    message: str = ""
    delay: float = 0.0
    reset: bool = False


@dataclass(frozen=True)
class SfRequest:
    """One request as the fake received it. Header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


@dataclass
class _State:
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    failures: deque[Failure] = field(default_factory=deque)
    log: list[SfRequest] = field(default_factory=list)
    logins: list[dict[str, Any]] = field(default_factory=list)
    api_used: int = 0
    api_limit: int = 15000
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0


class _TlsServerThread(ServerThread):
    """`ServerThread` serving HTTPS with the given key and certificate chain files."""

    def __init__(self, app: Any, *, certfile: Path, keyfile: Path) -> None:
        super().__init__(app)
        self._config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            interface="asgi3",
            timeout_graceful_shutdown=2,
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
        )

    def start(self, timeout: float = 10.0) -> str:
        url = super().start(timeout)
        self._url = url.replace("http://", "https://", 1)
        return self._url


class FakeSalesforce:
    """A Salesforce org on loopback; see the module docstring."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="fake-salesforce-"))
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = self._dir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        certfile, keyfile = self._dir / "cert.pem", self._dir / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(str(certfile), append=True)
        cert.private_key_pem.write_to_path(str(keyfile))
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}
        self._apps: dict[str, tuple[bytes, set[str]]] = {}
        self._lookups: dict[tuple[str, str], str] = {}
        self._state = _State()
        self._ids = itertools.count(1)
        self._server = _TlsServerThread(self._app, certfile=certfile, keyfile=keyfile)

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeSalesforce:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``: the login host and the instance URL at once."""
        return self._server.url

    def reset(self) -> None:
        """Forget records, sessions, scripts, logs and usage; keep users and apps."""
        with self._lock:
            self._state = _State()
            self._ids = itertools.count(1)

    # -- programming --------------------------------------------------------

    def add_user(self, username: str, password: str, security_token: str = "") -> None:
        """A user who logs in by SOAP with ``password + security_token``."""
        with self._lock:
            self._users[username] = password + security_token

    def add_jwt_app(self, consumer_key: str, public_key_pem: bytes, *usernames: str) -> None:
        """A connected app whose JWT assertions ``public_key_pem`` verifies, for ``usernames``."""
        with self._lock:
            self._apps[consumer_key] = (public_key_pem, set(usernames))

    def add_lookup(self, sobject: str, field_name: str, target: str) -> None:
        """Make ``sobject.field_name`` a lookup to ``target`` records (``Account__c``,
        or ``AccountId``); its relationship (``Account__r``, ``Account``) takes an
        external id."""
        with self._lock:
            self._lookups[(sobject, field_name)] = target

    def issue_session(self) -> str:
        """A valid session id, as if obtained elsewhere (for session auth)."""
        session_id = f"{ORG_ID[:15]}!{secrets.token_urlsafe(24)}"
        with self._lock:
            self._state.sessions.add(session_id)
        return session_id

    def expire_sessions(self) -> None:
        """Invalidate every session: the next data call answers 401 INVALID_SESSION_ID."""
        with self._lock:
            self._state.sessions.clear()

    def fail_next(self, code: str, *, status: int = 0, message: str = "", times: int = 1) -> None:
        """Answer the next ``times`` data requests with error ``code``."""
        for _ in range(times):
            self._script(Failure(code=code, status=status, message=message))

    def delay_next(self, seconds: float) -> None:
        """Process the next data request, then answer it ``seconds`` late."""
        self._script(Failure(delay=seconds))

    def reset_next(self) -> None:
        """Drop the connection of the next data request without answering."""
        self._script(Failure(reset=True))

    def set_delay(self, seconds: float) -> None:
        """Answer every data request ``seconds`` late (0 clears)."""
        with self._lock:
            self._state.delay = seconds

    def set_api_usage(self, used: int, limit: int) -> None:
        """Requests used so far and the daily allocation, as Sforce-Limit-Info reports."""
        with self._lock:
            self._state.api_used, self._state.api_limit = used, limit

    def _script(self, failure: Failure) -> None:
        with self._lock:
            self._state.failures.append(failure)

    # -- inspection ---------------------------------------------------------

    @property
    def requests(self) -> list[SfRequest]:
        with self._lock:
            return list(self._state.log)

    @property
    def logins(self) -> list[dict[str, Any]]:
        """Successful logins: ``{"kind": "soap"|"jwt", "username", "version"|"aud"}``."""
        with self._lock:
            return list(self._state.logins)

    @property
    def max_in_flight(self) -> int:
        """The most data requests the fake was answering at once."""
        with self._lock:
            return self._state.max_in_flight

    def records(self, sobject: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._state.records.get(sobject, {}).values()]

    def count(self, sobject: str, **match: Any) -> int:
        """Records of ``sobject`` whose fields equal ``match``."""
        return sum(1 for r in self.records(sobject) if all(r.get(k) == v for k, v in match.items()))

    def insert(self, sobject: str, **fields: Any) -> str:
        """Put a record in place directly; return its id."""
        with self._lock:
            return self._insert(sobject, dict(fields))

    # -- the ASGI app -------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = await read_request(scope, receive, send)
        if received is None:
            return
        body = received
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope["query_string"].decode("latin-1")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        if method == "POST" and re.fullmatch(r"/services/Soap/u/\d+\.\d+", path):
            status, content, ctype = self._soap_login(path.rsplit("/", 1)[1], body)
            extra: dict[str, str] = {}
        elif method == "POST" and path == "/services/oauth2/token":
            status, payload = self._token(body)
            content, ctype, extra = json.dumps(payload).encode(), "application/json", {}
        # The raw path: an external id may hold an escaped "/".
        elif match := re.fullmatch(r"/services/data/v(\d+\.\d+)/(.*)", _raw_path(scope)):
            await self._data(scope, send, match, method, path, query, headers, body)
            return
        else:
            status, content, ctype, extra = 404, b"[]", "application/json", {}
        with self._lock:
            self._state.log.append(SfRequest(method, path, query, headers, body, status))
        await _respond(send, status, content, ctype, extra)

    async def _data(
        self,
        scope: Scope,
        send: Send,
        match: re.Match[str],
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        version, rest = float(match.group(1)), match.group(2)
        with self._lock:
            state = self._state
            failure = state.failures.popleft() if state.failures else Failure()
            state.api_used += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            delay = state.delay + failure.delay
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if failure.reset:
                status, answer = -1, None
            elif failure.code:
                status = failure.status or _STATUS_BY_CODE.get(failure.code, 400)
                answer = _errors(failure.code, failure.message or f"scripted {failure.code}")
            elif token not in state.sessions:
                status, answer = 401, _errors("INVALID_SESSION_ID", "Session expired or invalid")
            else:
                status, answer = self._handle(method, rest, query, body, version)
            usage = f"api-usage={state.api_used}/{state.api_limit}"
            state.log.append(SfRequest(method, path, query, headers, body, status))
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            if status == -1:
                # Promise a body, send none, and fail: uvicorn closes the connection.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"100")],
                    }
                )
                raise _ResetError("the fake resets this connection")
            content = b"" if answer is None else json.dumps(answer).encode()
            await _respond(send, status, content, "application/json", {"sforce-limit-info": usage})
        finally:
            with self._lock:
                self._state.in_flight -= 1

    # -- REST resources (called with the lock held) ------------------------

    def _handle(
        self, method: str, rest: str, query: str, body: bytes, version: float
    ) -> tuple[int, Any]:
        parts = [unquote(p) for p in rest.rstrip("/").split("/")]
        if parts == ["query"] and method == "GET":
            return self._query(parse_qs(query).get("q", [""])[0])
        if parts[0] != "sobjects" or len(parts) < 2:
            return 404, _errors("NOT_FOUND", "The requested resource does not exist")
        try:
            fields = json.loads(body) if body else {}
        except ValueError:
            return 400, _errors("JSON_PARSER_ERROR", "The request body is not JSON")
        sobject = parts[1]
        if method in ("POST", "PATCH"):
            refused = self._resolve_references(sobject, fields)
            if refused is not None:
                return refused
        if len(parts) == 2 and method == "POST":
            missing = self._missing(sobject, fields)
            if missing:
                return 400, missing
            return 201, {"id": self._insert(sobject, fields), "success": True, "errors": []}
        if len(parts) == 3 and method in ("PATCH", "GET"):
            return self._by_id(method, sobject, parts[2], fields)
        if len(parts) == 4 and method == "PATCH":
            return self._upsert(sobject, parts[2], parts[3], fields, version)
        return 404, _errors("NOT_FOUND", "The requested resource does not exist")

    def _by_id(
        self, method: str, sobject: str, record_id: str, fields: dict[str, Any]
    ) -> tuple[int, Any]:
        if not re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", record_id):
            return 400, _errors(
                "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {record_id}", ["Id"]
            )
        record = self._state.records.get(sobject, {}).get(record_id[:15])
        if record is None:
            return 404, _errors("NOT_FOUND", "The requested resource does not exist")
        if method == "GET":
            return 200, {"attributes": {"type": sobject}, **record}
        record.update(fields)
        return 204, None

    def _upsert(
        self, sobject: str, field_name: str, value: str, fields: dict[str, Any], version: float
    ) -> tuple[int, Any]:
        table = self._state.records.setdefault(sobject, {})
        matches = [r for r in table.values() if str(r.get(field_name)) == value]
        if len(matches) > 1:
            return 300, [f"/services/data/v{version}/sobjects/{sobject}/{r['Id']}" for r in matches]
        if matches:
            matches[0].update(fields)
            if version >= 46.0:  # API 46.0 added a body to the "updated" answer
                body = {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}
                return 200, body
            return 204, None
        missing = self._missing(sobject, fields)
        if missing:
            return 400, missing
        record_id = self._insert(sobject, {**fields, field_name: value})
        return 201, {"id": record_id, "success": True, "errors": [], "created": True}

    def _query(self, soql: str) -> tuple[int, Any]:
        match = _SOQL.match(soql)
        if not match:
            return 400, _errors("MALFORMED_QUERY", f"unexpected token in: {soql[:80]}")
        conditions: dict[str, Any] = {}
        where = match.group("where") or ""
        consumed = 0
        for cond in _CONDITION.finditer(where):
            if cond.start() != consumed:
                break
            conditions[cond.group(1)] = _soql_value(cond.group(2))
            consumed = cond.end()
        if consumed != len(where):
            return 400, _errors("MALFORMED_QUERY", f"unsupported WHERE clause: {where[:80]}")
        names = [f.strip() for f in match.group("fields").split(",")]
        sobject = match.group("sobject")
        rows = [
            r
            for r in self._state.records.get(sobject, {}).values()
            if all(r.get(k) == v for k, v in conditions.items())
        ]
        if match.group("limit"):
            rows = rows[: int(match.group("limit"))]
        records = [
            {
                "attributes": {"type": sobject, "url": f"/sobjects/{sobject}/{r['Id']}"},
                **{name: r.get(name) for name in names},
            }
            for r in rows
        ]
        return 200, {"totalSize": len(records), "done": True, "records": records}

    def _resolve_references(self, sobject: str, fields: dict[str, Any]) -> tuple[int, Any] | None:
        """Check lookup ids, and turn relationships by external id into ids, in place."""
        for (owner, field_name), target in self._lookups.items():
            if owner != sobject:
                continue
            relationship = (
                field_name[:-3] + "__r" if field_name.endswith("__c") else field_name[:-2]
            )
            parent = fields.pop(relationship, None)
            if isinstance(parent, dict) and len(parent) == 1:
                [(external_field, value)] = parent.items()
                matches = [
                    r
                    for r in self._state.records.get(target, {}).values()
                    if str(r.get(external_field)) == str(value)
                ]
                if not matches:
                    return 400, _errors(
                        "INVALID_FIELD",
                        f"Foreign key external ID: {value} not found for field "
                        f"{external_field} in entity {target}",
                    )
                fields[field_name] = matches[0]["Id"]
            record_id = fields.get(field_name)
            if record_id and str(record_id)[:15] not in self._state.records.get(target, {}):
                return 400, _errors(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field_name]
                )
        return None

    def _missing(self, sobject: str, fields: dict[str, Any]) -> list[dict[str, Any]] | None:
        missing = [f for f in _REQUIRED.get(sobject, ()) if fields.get(f) in (None, "")]
        if not missing:
            return None
        return _errors(
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            missing,
        )

    def _insert(self, sobject: str, fields: dict[str, Any]) -> str:
        prefix = _PREFIXES.get(sobject, "a00")
        record_id = f"{prefix}{next(self._ids):012d}"
        self._state.records.setdefault(sobject, {})[record_id] = {**fields, "Id": record_id}
        return record_id

    # -- logins -------------------------------------------------------------

    def _soap_login(self, version: str, body: bytes) -> tuple[int, bytes, str]:
        text = body.decode("utf-8", "replace")
        username = unescape(_element(text, "username"))
        password = unescape(_element(text, "password"))
        with self._lock:
            valid = username in self._users and self._users[username] == password
            if valid:
                session_id = f"{ORG_ID[:15]}!{secrets.token_urlsafe(24)}"
                self._state.sessions.add(session_id)
                self._state.logins.append(
                    {"kind": "soap", "username": username, "version": version}
                )
        if not valid:
            return 500, _LOGIN_FAULT.encode(), "text/xml; charset=utf-8"
        server = f"{self.url}/services/Soap/u/{version}/{ORG_ID[:15]}"
        envelope = _LOGIN_RESPONSE.format(
            server_url=escape(server),
            metadata_url=escape(f"{self.url}/services/Soap/m/{version}/{ORG_ID[:15]}"),
            session_id=escape(session_id),
            user_id=USER_ID,
            org_id=ORG_ID,
            username=escape(username),
        )
        return 200, envelope.encode(), "text/xml; charset=utf-8"

    def _token(self, body: bytes) -> tuple[int, dict[str, Any]]:
        form = {k: v[0] for k, v in parse_qs(body.decode("ascii", "replace")).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type", "error_description": "grant type"}
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            with self._lock:
                key, usernames = self._apps[unverified.get("iss", "")]
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=list(AUDIENCES),
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except (jwt.PyJWTError, KeyError):
            return 400, {"error": "invalid_grant", "error_description": "invalid assertion"}
        if claims["sub"] not in usernames:
            return 400, {"error": "invalid_grant", "error_description": "user hasn't approved"}
        session_id = f"{ORG_ID[:15]}!{secrets.token_urlsafe(24)}"
        with self._lock:
            self._state.sessions.add(session_id)
            self._state.logins.append(
                {"kind": "jwt", "username": claims["sub"], "aud": claims["aud"]}
            )
        return 200, {
            "access_token": session_id,
            "scope": "api",
            "instance_url": self.url,
            "id": f"{self.url}/id/{ORG_ID}/{USER_ID}",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
        }


class _ResetError(Exception):
    pass


def _errors(code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    return [{"message": message, "errorCode": code, "fields": fields or []}]


def _raw_path(scope: Scope) -> str:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    return raw.decode("latin-1").split("?", 1)[0]


def _element(text: str, name: str) -> str:
    found = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", text, re.DOTALL)
    return found.group(1) if found else ""


def _soql_value(token: str) -> Any:
    if token.startswith("'"):
        return re.sub(
            r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), token[1:-1]
        )
    lowered = token.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    try:
        return int(token)
    except ValueError:
        return float(token)


async def _respond(
    send: Send, status: int, content: bytes, ctype: str, extra: dict[str, str]
) -> None:
    headers = {"content-type": ctype, "content-length": str(len(content)), **extra}
    if status == 204:
        headers.pop("content-type")
        headers.pop("content-length")
        content = b""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": content})


_LOGIN_RESPONSE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><loginResponse><result>
<metadataServerUrl>{metadata_url}</metadataServerUrl>
<passwordExpired>false</passwordExpired>
<sandbox>false</sandbox>
<serverUrl>{server_url}</serverUrl>
<sessionId>{session_id}</sessionId>
<userId>{user_id}</userId>
<userInfo><organizationId>{org_id}</organizationId><userName>{username}</userName>\
<sessionSecondsValid>7200</sessionSecondsValid></userInfo>
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""

_LOGIN_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>
<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.\
</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault">\
<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>\
<sf:exceptionMessage>Invalid username, password, security token; or user locked out.\
</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body>\
</soapenv:Envelope>"""
