"""A fake Okta org: an HTTPS server on loopback speaking Okta's management API wire format.

Written from Okta's public API reference (the management OpenAPI document, the
error-code list and the rate-limit guide), not from the adapter. What it does,
as Okta does:

* ``POST /oauth2/v1/token``: client credentials for an API service app whose
  client authentication is a private-key JWT. The assertion's signature is checked
  with the app's public key, and its ``iss``/``sub`` (the client id), ``aud`` (this
  endpoint's URL), ``exp`` (at most an hour after ``iat``) and ``jti`` (never used
  before); every requested scope must be granted, else ``invalid_scope``.
* ``/api/v1/...`` wants ``Authorization: SSWS <api token>`` or ``Bearer <access
  token>`` (401 ``E0000011`` otherwise); a bearer token needs the scope of the
  operation (403 ``E0000006`` and a ``WWW-Authenticate`` insufficient_scope challenge).
* Users: create (``activate=false``: STAGED; ``activate=true``: PROVISIONED, no
  password), get by id, login or login short name, partial profile update, search
  (``status``, ``id`` and ``profile.*`` with eq/ne/lt/le/gt/ge/sw, joined by
  ``and``; paged by ``after`` with a ``Link: rel="next"`` header), the lifecycle
  operations with Okta's state rules and error codes, and revoking sessions.
  The base profile attributes plus ``custom_attributes`` are accepted; any other
  attribute is refused, as is a login already taken (case-insensitive).
* Groups: get, search by ``profile.name eq``, and OKTA_GROUP membership (PUT/DELETE).
* Every answer carries ``X-Rate-Limit-Limit/Remaining/Reset`` for its bucket and a
  ``Date`` header; a bucket used up within its minute answers 429 ``E0000047``.

Scripted answers (`fail_next`) come before authentication and rate limiting, as
a gateway's would; `Slow` processes the request and only answers late.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import string
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.scripted import RESET, Answer, Reply, ScriptedFake, Slow

__all__ = ["RESET", "FakeOkta", "Reply", "Slow", "okta_error"]

BASE_ATTRIBUTES = frozenset(
    {
        "login", "email", "secondEmail", "firstName", "lastName", "middleName",
        "honorificPrefix", "honorificSuffix", "title", "displayName", "nickName",
        "profileUrl", "primaryPhone", "mobilePhone", "streetAddress", "city", "state",
        "zipCode", "countryCode", "postalAddress", "preferredLanguage", "locale",
        "timezone", "userType", "employeeNumber", "costCenter", "organization",
        "division", "department", "managerId", "manager",
    }
)  # fmt: skip
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SCOPE_NEEDED = {
    ("GET", "users"): ("okta.users.read", "okta.users.manage"),
    ("WRITE", "users"): ("okta.users.manage",),
    ("GET", "groups"): ("okta.groups.read", "okta.groups.manage"),
    ("WRITE", "groups"): ("okta.groups.manage",),
}
_CLAUSE = re.compile(
    r"^\(?\s*(?P<attr>[A-Za-z][A-Za-z0-9_.]*)\s+(?P<op>eq|ne|lt|le|gt|ge|sw)\s+"
    r'"(?P<value>(?:[^"\\]|\\.)*)"\s*\)?$'
)


def okta_error(code: str, summary: str, *causes: str) -> dict[str, Any]:
    """An Okta error object."""
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae" + secrets.token_hex(10),
        "errorCauses": [{"errorSummary": cause} for cause in causes],
    }


def _validation(*causes: str) -> dict[str, Any]:
    fields = ", ".join(cause.split(":", 1)[0] for cause in causes)
    return okta_error("E0000001", f"Api validation failed: {fields}", *causes)


_NOT_ALLOWED = okta_error("E0000038", "This operation is not allowed in the user's current status.")
_ALREADY_ACTIVE = okta_error("E0000016", "Activation failed because the user is already active")


@dataclass
class _Bucket:
    limit: int
    remaining: int
    reset: int


@dataclass
class _Client:
    client_id: str
    public_key: Any
    scopes: set[str]
    key_id: str | None = "fake-kid-1"
    require_dpop: bool = False
    tokens_issued: int = 0


class FakeOkta(ScriptedFake):
    """An Okta org on loopback over HTTPS; see the module docstring."""

    api_token = "00FakeOktaSswsToken-5c1e9d2a7b"
    client_id = "0oafakeserviceapp01"

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        """The API service app's private key (PEM), for the adapter under test."""
        self._public_key = key.public_key()
        super().__init__()
        self.reset()

    def reset(self) -> None:
        """Forget users, groups, tokens, limits, scripts and the request log."""
        with self._lock:
            self.users: dict[str, dict[str, Any]] = {}
            self.groups: dict[str, dict[str, Any]] = {}
            self.members: set[tuple[str, str]] = set()  # (group id, user id)
            self.sessions_revoked: list[tuple[str, bool]] = []  # (user id, oauthTokens)
            self.activation_emails: list[str] = []
            self.custom_attributes: set[str] = {"startDate"}
            self.client = _Client(
                self.client_id,
                self._public_key,
                {"okta.users.read", "okta.users.manage", "okta.groups.read", "okta.groups.manage"},
            )
            self.access_tokens: dict[str, tuple[float, frozenset[str]]] = {}
            self.used_jti: set[str] = set()
            self.token_lifetime = 3600
            self.default_limit = 600
            self.limits: dict[str, int] = {}
            self._buckets: dict[str, _Bucket] = {}
            self.clock_skew = 0.0
            self._ids = itertools.count(1)
            self._forget_requests()

    # -- programming --------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired, as if its hour had passed."""
        with self._lock:
            self.access_tokens = {t: (float("-inf"), s) for t, (_, s) in self.access_tokens.items()}

    def set_limit(self, bucket: str, limit: int) -> None:
        """Requests a minute allowed in ``bucket`` (``"GET /api/v1/users/{id}"``, say)."""
        with self._lock:
            self.limits[bucket] = limit
            self._buckets.pop(bucket, None)

    def add_group(self, name: str, *, kind: str = "OKTA_GROUP") -> str:
        """Create a group; return its id."""
        with self._lock:
            group_id = self._new_id("00g")
            now = _now_iso()
            self.groups[group_id] = {
                "id": group_id,
                "created": now,
                "lastUpdated": now,
                "lastMembershipUpdated": now,
                "objectClass": ["okta:user_group"],
                "type": kind,
                "profile": {"name": name, "description": None},
            }
            return group_id

    def add_user(self, status: str = "ACTIVE", **profile: Any) -> str:
        """Create a user directly, with ``status``; return its id."""
        with self._lock:
            return self._store_user(profile, status)

    # -- inspection ---------------------------------------------------------

    def users_with_login(self, login: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                u for u in self.users.values() if u["profile"]["login"].lower() == login.lower()
            ]

    def groups_of(self, user_id: str) -> set[str]:
        """Names of the groups ``user_id`` is a member of."""
        with self._lock:
            return {self.groups[g]["profile"]["name"] for g, u in self.members if u == user_id}

    # -- the vendor -----------------------------------------------------------

    def extra_headers(self) -> dict[str, str]:
        return {"Date": formatdate(time.time() + self.clock_skew, usegmt=True)}

    def handle(
        self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        query = {k: v[0] for k, v in parse_qs(query_string).items()}
        bucket = _bucket(method, path)
        limited = self._count(bucket)
        if limited is not None:
            return limited
        answer = self._route(method, path, query, headers, body)
        answer.headers.update(self._limit_headers(bucket))
        return answer

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Answer:
        if path == "/oauth2/v1/token":
            if method != "POST":
                return Answer(405, okta_error("E0000022", "The endpoint does not support GET."))
            return self._token(body)
        if not path.startswith("/api/v1/"):
            return Answer(404, okta_error("E0000022", "The requested path was not found"))
        parts = path.split("/")[3:]
        resource = parts[0] if parts else ""
        problem = self._authorize(headers.get("authorization", ""), method, resource)
        if problem is not None:
            return problem
        data: Any = None
        if body:
            if "application/json" not in headers.get("content-type", ""):
                return Answer(
                    415, okta_error("E0000109", "Unsupported media type: use application/json.")
                )
            try:
                data = json.loads(body)
            except ValueError:
                return Answer(400, okta_error("E0000003", "The request body was not well-formed."))
        with self._lock:
            if resource == "users":
                return self._users(method, parts[1:], query, data)
            if resource == "groups":
                return self._groups_api(method, parts[1:], query)
        return Answer(404, okta_error("E0000022", "The requested path was not found"))

    # -- authentication ------------------------------------------------------

    def _authorize(self, header: str, method: str, resource: str) -> Answer | None:
        scheme, _, credential = header.partition(" ")
        invalid = Answer(401, okta_error("E0000011", "Invalid token provided"))
        if scheme == "SSWS":
            return None if credential == self.api_token else invalid
        if scheme != "Bearer":
            return invalid
        with self._lock:
            found = self.access_tokens.get(credential)
        if found is None or found[0] <= time.time():
            return invalid
        needed = _SCOPE_NEEDED.get(("GET" if method == "GET" else "WRITE", resource), ())
        if needed and not set(needed) & found[1]:
            challenge = (
                f'Bearer authorization_uri="{self.url}/oauth2/v1/authorize", '
                f'realm="IdpMyAccountAPI", scope="{needed[-1]}", error="insufficient_scope", '
                'error_description="The access token provided does not contain the required '
                'scopes.", resource="/api/v1/' + resource + '"'
            )
            return Answer(
                403,
                okta_error(
                    "E0000006", "You do not have permission to perform the requested action"
                ),
                {"WWW-Authenticate": challenge},
            )
        return None

    def _token(self, body: bytes) -> Answer:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}

        def refused(error: str, description: str, status: int = 401) -> Answer:
            return Answer(status, {"error": error, "error_description": description})

        if form.get("grant_type") != "client_credentials":
            return refused("unsupported_grant_type", "The grant type is not supported.", 400)
        if form.get("client_assertion_type") != _ASSERTION_TYPE or not form.get("client_assertion"):
            return refused("invalid_client", "Client authentication failed.")
        client = self.client
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                client.public_key,
                algorithms=["RS256", "RS384", "RS512"],
                audience=f"{self.url}/oauth2/v1/token",
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
            )
        except jwt.InvalidAudienceError:
            return refused(
                "invalid_client",
                "The audience claim for client_assertion must be the endpoint invoked for the "
                "request.",
            )
        except jwt.ExpiredSignatureError:
            return refused("invalid_client", "The client_assertion token is expired.")
        except jwt.InvalidSignatureError:
            return refused("invalid_client", "The client_assertion signature is invalid.")
        except jwt.PyJWTError as exc:
            return refused("invalid_client", f"The client_assertion token is invalid: {exc}.")
        if claims["iss"] != client.client_id or claims["sub"] != client.client_id:
            return refused(
                "invalid_client", "The client_assertion token's iss and sub must be the client_id."
            )
        if client.key_id is not None and header.get("kid") not in (None, client.key_id):
            return refused("invalid_client", "The client_assertion token has an invalid kid.")
        if int(claims["exp"]) - int(claims["iat"]) > 3600:
            return refused(
                "invalid_client",
                "The client_assertion token has an expiration too far into the future.",
            )
        with self._lock:
            if claims["jti"] in self.used_jti:
                return refused(
                    "invalid_client", "The client_assertion token has already been used."
                )
            self.used_jti.add(claims["jti"])
        if client.require_dpop:
            return refused("invalid_dpop_proof", "The DPoP proof JWT header is missing.", 400)
        requested = set(form.get("scope", "").split())
        if not requested:
            return refused("invalid_scope", "The scope parameter is required.", 400)
        denied = sorted(requested - client.scopes)
        if denied:
            return refused(
                "invalid_scope", f"The following scopes are not allowed: {' '.join(denied)}", 400
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            client.tokens_issued += 1
            self.access_tokens[token] = (time.time() + self.token_lifetime, frozenset(requested))
        return Answer(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "access_token": token,
                "scope": " ".join(sorted(requested)),
            },
        )

    # -- users --------------------------------------------------------------

    def _users(self, method: str, parts: list[str], query: dict[str, str], data: Any) -> Answer:
        if not parts or parts == [""]:
            if method == "GET":
                return self._list_users(query)
            if method == "POST":
                return self._create_user(query, data)
            return _method_not_allowed()
        user = self._find(parts[0])
        if user is None:
            return Answer(
                404, okta_error("E0000007", f"Not found: Resource not found: {parts[0]} (User)")
            )
        rest = parts[1:]
        if not rest:
            if method == "GET":
                return Answer(200, user)
            if method == "POST":
                return self._update_user(user, data)
            return _method_not_allowed()
        if rest == ["sessions"] and method == "DELETE":
            self.sessions_revoked.append((user["id"], query.get("oauthTokens") == "true"))
            return Answer(204)
        if len(rest) == 2 and rest[0] == "lifecycle" and method == "POST":
            return self._lifecycle(user, rest[1], query)
        return Answer(404, okta_error("E0000022", "The requested path was not found"))

    def _find(self, ref: str) -> dict[str, Any] | None:
        if ref in self.users:
            return self.users[ref]
        wanted = ref.lower()
        for user in self.users.values():
            login = user["profile"]["login"].lower()
            if login == wanted or login.split("@", 1)[0] == wanted:
                return user
        return None

    def _check_profile(self, profile: Any, *, creating: bool) -> list[str]:
        if not isinstance(profile, dict):
            return ["profile: The profile is required."]
        causes = [
            f"Property name '{name}' is not defined in profile"
            for name in profile
            if name not in BASE_ATTRIBUTES | self.custom_attributes
        ]
        if creating:
            causes += [
                f"{name}: The field cannot be left blank"
                for name in ("login", "email", "firstName", "lastName")
                if not profile.get(name)
            ]
        login = profile.get("login")
        if isinstance(login, str) and ("@" not in login or len(login) > 100):
            causes.append("login: Username must be in the form of an email address")
        email = profile.get("email")
        if isinstance(email, str) and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
            causes.append("email: Does not match required pattern")
        return causes

    def _login_taken(self, login: Any, except_id: str | None = None) -> bool:
        return isinstance(login, str) and any(
            u["profile"]["login"].lower() == login.lower() and u["id"] != except_id
            for u in self.users.values()
        )

    def _create_user(self, query: dict[str, str], data: Any) -> Answer:
        if not isinstance(data, dict):
            return Answer(400, okta_error("E0000003", "The request body was not well-formed."))
        profile = data.get("profile")
        causes = self._check_profile(profile, creating=True)
        if causes:
            return Answer(400, _validation(*causes))
        assert isinstance(profile, dict)
        if self._login_taken(profile["login"]):
            return Answer(
                400,
                _validation("login: An object with this field already exists in the current "
                            "organization"),
            )  # fmt: skip
        group_ids = data.get("groupIds") or []
        if len(group_ids) > 20:
            return Answer(
                400,
                okta_error(
                    "E0000093",
                    "Target count limit exceeded",
                    "The number of group targets is too large.",
                ),
            )
        unknown = [g for g in group_ids if g not in self.groups]
        if unknown:
            return Answer(400, _validation(f"groupIds: Group not found: {unknown[0]}"))
        activate = query.get("activate", "true") != "false"
        has_password = bool(((data.get("credentials") or {}).get("password") or {}).get("value"))
        status = ("ACTIVE" if has_password else "PROVISIONED") if activate else "STAGED"
        user_id = self._store_user(profile, status)
        for group_id in group_ids:
            self.members.add((group_id, user_id))
        return Answer(200, self.users[user_id])

    def _store_user(self, profile: dict[str, Any], status: str) -> str:
        user_id = self._new_id("00u")
        now = _now_iso()
        self.users[user_id] = {
            "id": user_id,
            "status": status,
            "created": now,
            "activated": now if status not in ("STAGED",) else None,
            "statusChanged": now,
            "lastLogin": None,
            "lastUpdated": now,
            "passwordChanged": None,
            "type": {"id": "oty" + "0" * 17},
            "profile": {"mobilePhone": None, "secondEmail": None, **profile},
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": f"{self.url}/api/v1/users/{user_id}"}},
        }
        return user_id

    def _update_user(self, user: dict[str, Any], data: Any) -> Answer:
        if not isinstance(data, dict):
            return Answer(400, okta_error("E0000003", "The request body was not well-formed."))
        profile = data.get("profile")
        causes = self._check_profile(profile, creating=False) if profile is not None else []
        if causes:
            return Answer(400, _validation(*causes))
        if profile:
            if self._login_taken(profile.get("login"), except_id=user["id"]):
                return Answer(
                    400,
                    _validation("login: An object with this field already exists in the "
                                "current organization"),
                )  # fmt: skip
            user["profile"].update(profile)
            user["lastUpdated"] = _now_iso()
        return Answer(200, user)

    def _lifecycle(self, user: dict[str, Any], operation: str, query: dict[str, str]) -> Answer:
        status = user["status"]
        if operation == "activate":
            if status not in ("STAGED", "DEPROVISIONED"):
                return Answer(403, _ALREADY_ACTIVE if status != "SUSPENDED" else _NOT_ALLOWED)
            self._set_status(user, "PROVISIONED")
            token = "".join(secrets.choice(string.ascii_letters) for _ in range(20))
            if query.get("sendEmail", "true") == "false":
                return Answer(
                    200,
                    {"activationUrl": f"{self.url}/welcome/{token}", "activationToken": token},
                )
            self.activation_emails.append(user["id"])
            return Answer(200, {})
        if operation == "deactivate":
            if status == "DEPROVISIONED":
                return Answer(403, _NOT_ALLOWED)
            self._set_status(user, "DEPROVISIONED")
            return Answer(200, {})
        if operation == "suspend":
            if status != "ACTIVE":
                return Answer(400, _validation("suspend: Cannot suspend a user that is not active"))
            self._set_status(user, "SUSPENDED")
            return Answer(200, {})
        if operation == "unsuspend":
            if status != "SUSPENDED":
                return Answer(
                    400, _validation("unsuspend: Cannot unsuspend a user that is not suspended")
                )
            self._set_status(user, "ACTIVE")
            return Answer(200, {})
        return Answer(404, okta_error("E0000022", "The requested path was not found"))

    def _set_status(self, user: dict[str, Any], status: str) -> None:
        user["status"] = status
        user["statusChanged"] = user["lastUpdated"] = _now_iso()

    def _list_users(self, query: dict[str, str]) -> Answer:
        search = query.get("search")
        try:
            clauses = _parse_search(search) if search else []
        except ValueError as exc:
            return Answer(400, okta_error("E0000031", "Invalid search criteria.", str(exc)))
        limit = min(int(query.get("limit", "200")), 200)
        after = query.get("after")
        found = sorted(
            (u for u in self.users.values() if all(_matches(u, c) for c in clauses)),
            key=lambda u: u["id"],
        )
        if after:
            found = [u for u in found if u["id"] > after]
        page = found[:limit]
        headers: dict[str, str] = {}
        if len(found) > limit:
            params = {"after": page[-1]["id"], "limit": str(limit)}
            if search:
                params["search"] = search
            headers["Link"] = f'<{self.url}/api/v1/users?{urlencode(params)}>; rel="next"'
        return Answer(200, page, headers)

    # -- groups -------------------------------------------------------------

    def _groups_api(self, method: str, parts: list[str], query: dict[str, str]) -> Answer:
        if not parts or parts == [""]:
            if method != "GET":
                return _method_not_allowed()
            search = query.get("search", "")
            match = re.match(r'^profile\.name eq "((?:[^"\\]|\\.)*)"$', search)
            if search and match is None:
                return Answer(400, okta_error("E0000031", "Invalid search criteria."))
            name = re.sub(r"\\(.)", r"\1", match.group(1)) if match else None
            listed = [
                g for g in self.groups.values() if name is None or g["profile"]["name"] == name
            ]
            return Answer(200, listed)
        group = self.groups.get(parts[0])
        if group is None:
            return Answer(
                404,
                okta_error("E0000007", f"Not found: Resource not found: {parts[0]} (UserGroup)"),
            )
        rest = parts[1:]
        if not rest:
            return Answer(200, group) if method == "GET" else _method_not_allowed()
        if rest[0] != "users":
            return Answer(404, okta_error("E0000022", "The requested path was not found"))
        if len(rest) == 1 and method == "GET":
            return Answer(200, [self.users[u] for g, u in sorted(self.members) if g == group["id"]])
        if len(rest) == 2 and method in ("PUT", "DELETE"):
            user = self.users.get(rest[1])
            if user is None:
                return Answer(
                    404, okta_error("E0000007", f"Not found: Resource not found: {rest[1]} (User)")
                )
            if group["type"] != "OKTA_GROUP":
                return Answer(
                    400, _validation("groupId: Cannot modify the membership of an app group")
                )
            if method == "PUT":
                self.members.add((group["id"], user["id"]))
            else:
                self.members.discard((group["id"], user["id"]))
            return Answer(204)
        return _method_not_allowed()

    # -- rate limits --------------------------------------------------------

    def _count(self, bucket: str) -> Answer | None:
        with self._lock:
            now = int(time.time() + self.clock_skew)
            state = self._buckets.get(bucket)
            if state is None or now >= state.reset:
                limit = self.limits.get(bucket, self.default_limit)
                state = self._buckets[bucket] = _Bucket(limit, limit, (now // 60 + 1) * 60)
            if state.remaining <= 0:
                return Answer(
                    429,
                    okta_error(
                        "E0000047",
                        "API call exceeded rate limit due to too many requests.",
                    ),
                    self._limit_headers(bucket, locked=True),
                )
            state.remaining -= 1
            return None

    def _limit_headers(self, bucket: str, *, locked: bool = False) -> dict[str, str]:
        if not locked:
            with self._lock:
                return self._limit_headers(bucket, locked=True)
        state = self._buckets[bucket]
        return {
            "X-Rate-Limit-Limit": str(state.limit),
            "X-Rate-Limit-Remaining": str(max(state.remaining, 0)),
            "X-Rate-Limit-Reset": str(state.reset),
        }

    def _new_id(self, prefix: str) -> str:
        n = next(self._ids)
        return f"{prefix}{n:06d}{secrets.token_hex(6)[:11]}"


def _bucket(method: str, path: str) -> str:
    """Okta counts one bucket per endpoint: ids and logins in the path make no new one."""
    parts = path.split("/")  # ['', 'api', 'v1', 'users', '<id>', 'lifecycle', 'activate']
    for index in (4, 6):
        if len(parts) > index and parts[index] and parts[index - 1] != "lifecycle":
            parts[index] = "{id}"
    return f"{method} {'/'.join(parts)}"


def _parse_search(search: str) -> list[tuple[str, str, str]]:
    clauses = []
    for raw in re.split(r"\s+and\s+", search.strip()):
        match = _CLAUSE.match(raw.strip())
        if match is None:
            raise ValueError(f"cannot parse {raw!r}")
        value = re.sub(r"\\(.)", r"\1", match.group("value"))
        clauses.append((match.group("attr"), match.group("op"), value))
    return clauses


def _matches(user: dict[str, Any], clause: tuple[str, str, str]) -> bool:
    attr, op, value = clause
    if attr.startswith("profile."):
        have = user["profile"].get(attr.removeprefix("profile."))
    else:
        have = user.get(attr)
    if have is None:
        return op == "ne"
    have = str(have)
    return {
        "eq": have == value,
        "ne": have != value,
        "lt": have < value,
        "le": have <= value,
        "gt": have > value,
        "ge": have >= value,
        "sw": have.startswith(value),
    }[op]


def _method_not_allowed() -> Answer:
    return Answer(405, okta_error("E0000022", "The endpoint does not support the HTTP method."))


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
