"""A fake Salesforce: a real HTTPS server on loopback speaking Salesforce's wire format.

simple-salesforce only builds ``https://`` URLs, so the fake serves TLS with a
certificate from a throwaway `trustme` CA; clients trust ``ca_path``::

    with FakeSalesforce() as sf:
        sf.add_user("integration@acme.test", "pw", "token")
        ...  # a connection with login_url=sf.url and ca_bundle=sf.ca_path

What it answers:

* ``POST /services/Soap/u/<v>``: the SOAP ``login`` call (a real ``loginResponse``
  envelope whose ``serverUrl`` points back at the fake, or an ``INVALID_LOGIN``
  fault). As in Salesforce, there is no ``login()`` from API 65.0
  (``UNSUPPORTED_API_VERSION``), and an org can turn it off (`soap_login`);
* ``POST /services/oauth2/token`` (a form, as Salesforce's OAuth 2.0 endpoint):
  the JWT bearer grant (RS256 signature checked with the app's certificate key;
  ``iss`` a known consumer key, ``sub`` a pre-authorized user, ``aud`` the login
  server of this org, https://login.salesforce.com or, with `sandbox`,
  https://test.salesforce.com, and ``exp`` not past), the client credentials grant
  (``client_id``/``client_secret`` in the form or HTTP Basic, the app's Run As
  user) and the refresh token grant (a refresh token the app issued, with the
  secret when the app requires it; rotated when `rotate_refresh_tokens`).
  Refusals are Salesforce's: ``invalid_client_id``, ``invalid_client``,
  ``invalid_grant`` (``audience is invalid``, ``expired authorization code``,
  ``user hasn't approved this consumer``, ``no client credentials user enabled``,
  ``expired access/refresh token``) and ``unsupported_grant_type``. A success is
  ``access_token``, ``instance_url``, ``id``, ``token_type`` and ``scope``, with
  ``issued_at`` and an HMAC-SHA256 ``signature`` of ``id + issued_at`` under the
  consumer secret for the grants that know it;
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
import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from html import escape, unescape
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
from starlette.types import Receive, Scope, Send

from tests.fakes.tls import TestCA, TlsServerThread
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
class App:
    """An External Client App (or connected app) of the fake org."""

    consumer_key: str
    consumer_secret: str = ""
    public_key_pem: bytes | None = None  # the certificate's key, for JWT bearer
    jwt_users: set[str] = field(default_factory=set)  # pre-authorized users
    run_as: str | None = None  # the client credentials flow's Run As user
    secret_for_refresh: bool = True  # "Require Secret for Refresh Token Flow"
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> username


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


class FakeSalesforce:
    """A Salesforce org on loopback; see the module docstring."""

    def __init__(self) -> None:
        self._ca = TestCA()
        self.ca_path = self._ca.path
        """The CA certificate that signed the fake's: a connection's ca_bundle."""
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}
        self._apps: dict[str, App] = {}
        self._lookups: dict[tuple[str, str], str] = {}
        self.sandbox = False
        """A sandbox's login server is test.salesforce.com: JWTs must say so."""
        self.soap_login = True
        """Whether the org still allows SOAP login() (new orgs: off)."""
        self.rotate_refresh_tokens = False
        """Refresh token rotation: each refresh answers a new token, the old one revoked."""
        self._state = _State()
        self._ids = itertools.count(1)
        self._server = TlsServerThread(self._app, self._ca)

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()
        self._ca.remove()

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
        """Forget records, sessions, scripts, logs and usage; keep users, apps and lookups.

        The org's switches (`sandbox`, `soap_login`, `rotate_refresh_tokens`) go back
        to their defaults.
        """
        with self._lock:
            self._state = _State()
            self._ids = itertools.count(1)
            self.sandbox = False
            self.soap_login = True
            self.rotate_refresh_tokens = False

    # -- programming --------------------------------------------------------

    def add_user(self, username: str, password: str, security_token: str = "") -> None:
        """A user who logs in by SOAP with ``password + security_token``."""
        with self._lock:
            self._users[username] = password + security_token

    def add_jwt_app(self, consumer_key: str, public_key_pem: bytes, *usernames: str) -> None:
        """An app whose JWT assertions ``public_key_pem`` verifies, for ``usernames``."""
        app = self._app_named(consumer_key)
        with self._lock:
            app.public_key_pem = public_key_pem
            app.jwt_users = set(usernames)

    def add_client_credentials_app(
        self, consumer_key: str, secret: str, run_as: str | None
    ) -> None:
        """An app with the client credentials flow enabled, running as ``run_as``
        (None: the flow is enabled but names no Run As user)."""
        app = self._app_named(consumer_key)
        with self._lock:
            app.consumer_secret = secret
            app.run_as = run_as

    def issue_refresh_token(
        self, consumer_key: str, secret: str, username: str, *, secret_required: bool = True
    ) -> str:
        """A refresh token of the app for ``username``, as the web-server flow leaves one."""
        app = self._app_named(consumer_key)
        token = f"5Aep{secrets.token_urlsafe(32)}"
        with self._lock:
            app.consumer_secret = app.consumer_secret or secret
            app.secret_for_refresh = secret_required
            app.refresh_tokens[token] = username
        return token

    def revoke_refresh_tokens(self) -> None:
        """Revoke every refresh token (an admin did, or the policy expired them)."""
        with self._lock:
            for app in self._apps.values():
                app.refresh_tokens.clear()

    def _app_named(self, consumer_key: str) -> App:
        with self._lock:
            return self._apps.setdefault(consumer_key, App(consumer_key))

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
        elif path == "/services/oauth2/token":
            status, payload = self._token(method, headers, body)
            content, ctype = json.dumps(payload).encode(), "application/json"
            extra = {"cache-control": "no-store"}
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
        if float(version) >= 65.0:
            fault = _fault("UNSUPPORTED_API_VERSION", f"login() is not available in v{version}")
            return 500, fault.encode(), "text/xml; charset=utf-8"
        if not self.soap_login:
            fault = _fault("INVALID_OPERATION", "SOAP API login() is disabled by default")
            return 500, fault.encode(), "text/xml; charset=utf-8"
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

    def _token(
        self, method: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Salesforce's OAuth 2.0 token endpoint (see the module docstring)."""
        if method != "POST":
            return 405, _oauth_error("invalid_request", "must use HTTP POST")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return 400, _oauth_error("unsupported_grant_type", "grant type not supported")
        form = {k: v[0] for k, v in parse_qs(body.decode("ascii", "replace")).items()}
        grant = form.get("grant_type", "")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form)
        if grant in ("client_credentials", "refresh_token"):
            client_id, secret = _client_credentials(form, headers)
            with self._lock:
                app = self._apps.get(client_id)
            if app is None:
                return 400, _oauth_error("invalid_client_id", "client identifier invalid")
            if grant == "client_credentials":
                return self._client_credentials_grant(app, secret)
            return self._refresh_grant(app, secret, form.get("refresh_token", ""))
        return 400, _oauth_error("unsupported_grant_type", "grant type not supported")

    def _jwt_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return 400, _oauth_error("invalid_grant", "invalid assertion")
        with self._lock:
            app = self._apps.get(str(unverified.get("iss", "")))
        if app is None or app.public_key_pem is None:
            return 400, _oauth_error("invalid_client_id", "client identifier invalid")
        if header.get("alg") != "RS256":
            return 400, _oauth_error("invalid_grant", "invalid assertion")
        audience = "https://test.salesforce.com" if self.sandbox else "https://login.salesforce.com"
        try:
            claims = jwt.decode(
                assertion,
                app.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iss", "sub", "aud", "exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            return 400, _oauth_error("invalid_grant", "expired authorization code")
        except jwt.PyJWTError:
            return 400, _oauth_error("invalid_grant", "invalid assertion")
        if claims["aud"] != audience:
            return 400, _oauth_error("invalid_grant", "audience is invalid")
        if claims["sub"] not in app.jwt_users:
            return 400, _oauth_error("invalid_grant", "user hasn't approved this consumer")
        body = self._session_for("jwt", claims["sub"], aud=claims["aud"])
        # The JWT bearer answer has no issued_at and no signature: no secret is involved.
        return 200, {k: v for k, v in body.items() if k not in ("issued_at", "signature")}

    def _client_credentials_grant(self, app: App, secret: str) -> tuple[int, dict[str, Any]]:
        if not app.consumer_secret or not hmac.compare_digest(secret, app.consumer_secret):
            return 400, _oauth_error("invalid_client", "invalid client credentials")
        if app.run_as is None:
            return 400, _oauth_error("invalid_grant", "no client credentials user enabled")
        return 200, self._session_for("client_credentials", app.run_as, app=app)

    def _refresh_grant(
        self, app: App, secret: str, refresh_token: str
    ) -> tuple[int, dict[str, Any]]:
        if app.secret_for_refresh and not (
            app.consumer_secret and hmac.compare_digest(secret, app.consumer_secret)
        ):
            return 400, _oauth_error("invalid_client", "invalid client credentials")
        with self._lock:
            username = app.refresh_tokens.get(refresh_token)
            rotated = None
            if username is not None and self.rotate_refresh_tokens:
                del app.refresh_tokens[refresh_token]
                rotated = f"5Aep{secrets.token_urlsafe(32)}"
                app.refresh_tokens[rotated] = username
        if username is None:
            return 400, _oauth_error("invalid_grant", "expired access/refresh token")
        body = self._session_for("refresh_token", username, app=app)
        if rotated is not None:
            body["refresh_token"] = rotated
        return 200, body

    def _session_for(
        self, kind: str, username: str, *, app: App | None = None, aud: str | None = None
    ) -> dict[str, Any]:
        """A new session for ``username``, as the token endpoint's success answer."""
        session_id = f"{ORG_ID[:15]}!{secrets.token_urlsafe(24)}"
        login: dict[str, Any] = {"kind": kind, "username": username}
        if aud is not None:
            login["aud"] = aud
        with self._lock:
            self._state.sessions.add(session_id)
            self._state.logins.append(login)
        identity = f"{self.url}/id/{ORG_ID}/{USER_ID}"
        issued_at = str(int(time.time() * 1000))
        answer: dict[str, Any] = {
            "access_token": session_id,
            "scope": "api",
            "instance_url": self.url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        if app is not None and app.consumer_secret:
            digest = hmac.new(
                app.consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
            ).digest()
            answer["signature"] = base64.b64encode(digest).decode()
        return answer


def _oauth_error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}


def _client_credentials(form: dict[str, str], headers: dict[str, str]) -> tuple[str, str]:
    """``(client_id, client_secret)`` from the form, or from HTTP Basic authorization."""
    basic = headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(basic[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _fault(code: str, message: str) -> str:
    return _LOGIN_FAULT.replace("INVALID_LOGIN", code).replace(
        "Invalid username, password, security token; or user locked out.", message
    )


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
