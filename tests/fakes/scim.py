"""A fake SCIM 2.0 service provider: HTTPS on loopback, written from RFC 7643 and RFC 7644.

Served under ``/scim/v2`` (``base_url``). What it does, as the RFCs say:

* ``Authorization: Bearer <token>`` on every request, else 401 with a SCIM error.
* ``/ServiceProviderConfig`` says what it supports (``patch``, ``etag``, ``filter``).
* ``/Users`` and ``/Groups``: ``POST`` (201, ``Location``, ``ETag``), ``GET`` with a
  filter (``attr op value`` with eq/ne/co/sw/ew/gt/ge/lt/le/pr, joined by ``and``
  and ``or``; attribute names and operators case-insensitive; ``userName`` and a
  group's ``displayName`` compared case-insensitively, ``externalId`` exactly),
  answered as a ``ListResponse``; ``/<id>``: ``GET``, ``PUT``, ``PATCH`` and
  ``DELETE``.
* Resources are versioned (a weak ETag, also ``meta.version``); ``If-Match`` with
  another version is answered 412, and a change that changes nothing keeps it.
* PATCH (``PatchOp``): add, remove and replace, with or without a path, on simple
  and sub-attributes, the enterprise extension (``urn:...:User:department``) and
  ``members[value eq "..."]``; a filter that matches no member is ``noTarget``,
  a read-only attribute ``mutability``, an unknown one ``invalidPath``.
* A resource must list its schemas (an extension's too); an attribute outside
  them is ``invalidSyntax``; a second user with the same ``userName`` (or group
  with the same ``displayName``) is 409 ``uniqueness``.
* Errors are SCIM error resources (``schemas``, ``status`` as a string,
  ``scimType``, ``detail``) in ``application/scim+json``.

Built with ``patch=False`` it answers PATCH 501 and says so in its configuration;
with ``etag=False`` it versions nothing and ignores ``If-Match``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.scripted import RESET, Answer, Reply, Scripted, ScriptedFake, Slow

__all__ = ["PREFIX", "RESET", "FakeScim", "Reply", "Slow", "scim_error"]

PREFIX = "/scim/v2"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA = "application/scim+json"

USER_ATTRIBUTES = frozenset(
    {
        "userName", "externalId", "name", "displayName", "nickName", "profileUrl", "title",
        "userType", "preferredLanguage", "locale", "timezone", "active", "password",
        "emails", "phoneNumbers", "addresses", "ims", "photos", "entitlements", "roles",
        "x509Certificates",
    }
)  # fmt: skip
NAME_ATTRIBUTES = frozenset(
    {"formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"}
)
ENTERPRISE_ATTRIBUTES = frozenset(
    {"employeeNumber", "costCenter", "organization", "division", "department", "manager"}
)
GROUP_ATTRIBUTES = frozenset({"displayName", "externalId", "members"})
READ_ONLY = frozenset({"id", "meta", "groups"})
_CASE_INSENSITIVE = {"username", "displayname", "emails.value"}
_FILTER_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z0-9_.:$-]+)|(?P<paren>[()]))'
)


def scim_error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    """A SCIM error resource (RFC 7644 3.12)."""
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type is not None:
        body["scimType"] = scim_type
    return body


class _RefusedError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.answer = Answer(status, scim_error(status, detail, scim_type))


class FakeScim(ScriptedFake):
    """A SCIM service provider on loopback; see the module docstring."""

    token = "fake-scim-bearer-token-73a1"
    media_type = MEDIA

    def __init__(self, *, patch: bool = True, etag: bool = True) -> None:
        self.patch_supported = patch
        self.etag_supported = etag
        super().__init__()
        self.reset()

    def start(self) -> str:
        super().start()
        return self.base_url

    @property
    def base_url(self) -> str:
        """The SCIM root, as the adapter's ``base_url`` setting."""
        return self._server.url + PREFIX

    def reset(self) -> None:
        """Forget resources, scripts and the request log."""
        with self._lock:
            self.users: dict[str, dict[str, Any]] = {}
            self.groups: dict[str, dict[str, Any]] = {}
            self.patch_returns_no_content = False
            self._ids = itertools.count(1)
            self._forget_requests()

    # -- programming --------------------------------------------------------

    def fail_next(self, path: str, *answers: Scripted, method: str | None = None) -> None:
        """Answer the next requests to ``path`` (under the prefix), of ``method`` if given."""
        super().fail_next(PREFIX + path, *answers, method=method)

    def add_user(self, **attributes: Any) -> str:
        """Store a user as the provider would have created it; return its id."""
        with self._lock:
            return self._create("Users", {"schemas": [USER], **attributes})

    def add_group(self, display_name: str, **attributes: Any) -> str:
        with self._lock:
            return self._create(
                "Groups", {"schemas": [GROUP], "displayName": display_name, **attributes}
            )

    def touch(self, kind: str, resource_id: str) -> None:
        """Change a resource's version, as an edit by someone else would."""
        with self._lock:
            store = self.users if kind == "Users" else self.groups
            self._bump(store[resource_id])

    # -- inspection ---------------------------------------------------------

    def users_with(self, attribute: str, value: str) -> list[dict[str, Any]]:
        with self._lock:
            return [u for u in self.users.values() if u.get(attribute) == value]

    def member_ids(self, group_id: str) -> set[str]:
        with self._lock:
            return {m["value"] for m in self.groups[group_id].get("members", [])}

    # -- the vendor -----------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        try:
            return self._handle(method, path, query, headers, body)
        except _RefusedError as refused:
            return refused.answer

    def _handle(
        self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        if not path.startswith(PREFIX + "/"):
            raise _RefusedError(404, f"No such endpoint: {path}")
        if headers.get("authorization", "") != f"Bearer {self.token}":
            answer = Answer(401, scim_error(401, "Authorization failure"))
            answer.headers["WWW-Authenticate"] = 'Bearer realm="scim"'
            return answer
        parts = path[len(PREFIX) + 1 :].split("/")
        data: Any = None
        if body:
            media = headers.get("content-type", "").split(";")[0].strip()
            if media not in (MEDIA, "application/json"):
                raise _RefusedError(415, f"Unsupported media type {media!r}; use {MEDIA}")
            try:
                data = json.loads(body)
            except ValueError:
                raise _RefusedError(400, "The body is not JSON.", "invalidSyntax") from None
        query = {k: v[0] for k, v in parse_qs(query_string).items()}
        with self._lock:
            if parts == ["ServiceProviderConfig"] and method == "GET":
                return Answer(200, self._configuration())
            if parts[0] not in ("Users", "Groups") or len(parts) > 2:
                raise _RefusedError(404, f"No such endpoint: {path}")
            kind = parts[0]
            if len(parts) == 1:
                if method == "GET":
                    return self._list(kind, query)
                if method == "POST":
                    resource_id = self._create(kind, data)
                    return self._resource_answer(kind, resource_id, 201, location=True)
                raise _RefusedError(405, f"{method} is not supported on /{kind}")
            return self._one(kind, parts[1], method, headers, data)

    def _configuration(self) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": self.patch_supported},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": 200},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": self.etag_supported},
            "authenticationSchemes": [
                {"type": "oauthbearertoken", "name": "OAuth Bearer Token", "primary": True}
            ],
        }

    # -- reading ------------------------------------------------------------

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.users if kind == "Users" else self.groups

    def _list(self, kind: str, query: dict[str, str]) -> Answer:
        found = list(self._store(kind).values())
        if "filter" in query:
            test = _parse_filter(query["filter"])
            found = [r for r in found if test(self._view(kind, r))]
        start = max(int(query.get("startIndex", "1")), 1)
        count = min(int(query.get("count", "100")), 200)
        page = found[start - 1 : start - 1 + count]
        return Answer(
            200,
            {
                "schemas": [LIST],
                "totalResults": len(found),
                "startIndex": start,
                "itemsPerPage": len(page),
                "Resources": [self._view(kind, r) for r in page],
            },
        )

    def _view(self, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(resource))
        if kind == "Users":
            out["groups"] = [
                {"value": g["id"], "display": g["displayName"], "type": "direct"}
                for g in self.groups.values()
                if any(m["value"] == resource["id"] for m in g.get("members", []))
            ]
        if not self.etag_supported:
            out["meta"].pop("version", None)
        return out

    def _resource_answer(
        self, kind: str, resource_id: str, status: int = 200, *, location: bool = False
    ) -> Answer:
        resource = self._store(kind)[resource_id]
        answer = Answer(status, self._view(kind, resource))
        if self.etag_supported:
            answer.headers["ETag"] = resource["meta"]["version"]
        if location:
            answer.headers["Location"] = resource["meta"]["location"]
        return answer

    # -- writing ------------------------------------------------------------

    def _create(self, kind: str, data: Any) -> str:
        resource = self._checked(kind, data)
        self._check_unique(kind, resource, None)
        resource_id = f"{kind[0].lower()}{next(self._ids):04d}-{time.time_ns() % 10**8:08d}"
        now = _now()
        resource["id"] = resource_id
        resource["meta"] = {
            "resourceType": kind[:-1],
            "created": now,
            "lastModified": now,
            "location": f"{self.base_url}/{kind}/{resource_id}",
            "version": 'W/"1"',
        }
        self._store(kind)[resource_id] = resource
        return resource_id

    def _one(
        self, kind: str, resource_id: str, method: str, headers: dict[str, str], data: Any
    ) -> Answer:
        store = self._store(kind)
        resource = store.get(resource_id)
        if resource is None:
            raise _RefusedError(404, f"Resource {resource_id} not found")
        if method == "GET":
            wanted = headers.get("if-none-match")
            if self.etag_supported and wanted == resource["meta"]["version"]:
                return Answer(304)
            return self._resource_answer(kind, resource_id)
        if method not in ("PUT", "PATCH", "DELETE"):
            raise _RefusedError(405, f"{method} is not supported on a resource")
        expected = headers.get("if-match")
        if self.etag_supported and expected not in (None, "*", resource["meta"]["version"]):
            raise _RefusedError(412, "The resource changed: its version does not match If-Match")
        if method == "DELETE":
            del store[resource_id]
            for group in self.groups.values():
                group["members"] = [
                    m for m in group.get("members", []) if m["value"] != resource_id
                ]
            return Answer(204)
        before = json.dumps(resource, sort_keys=True)
        if method == "PUT":
            replacement = self._checked(kind, data)
            if data.get("id") not in (None, resource_id):
                raise _RefusedError(400, "id is immutable", "mutability")
            self._check_unique(kind, replacement, resource_id)
            meta = resource["meta"]
            resource.clear()
            resource.update(replacement, id=resource_id, meta=meta)
        else:
            if not self.patch_supported:
                raise _RefusedError(501, "PATCH is not supported by this service provider")
            self._patch(kind, resource, data)
        if json.dumps(resource, sort_keys=True) != before:
            self._bump(resource)
        if method == "PATCH" and self.patch_returns_no_content:
            return Answer(204)
        return self._resource_answer(kind, resource_id)

    def _bump(self, resource: dict[str, Any]) -> None:
        number = int(resource["meta"]["version"][3:-1]) + 1
        resource["meta"]["version"] = f'W/"{number}"'
        resource["meta"]["lastModified"] = _now()

    def _checked(self, kind: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise _RefusedError(400, "The body is not a resource.", "invalidSyntax")
        schemas = data.get("schemas")
        core = USER if kind == "Users" else GROUP
        if not isinstance(schemas, list) or core not in schemas:
            raise _RefusedError(400, f"schemas must include {core}", "invalidSyntax")
        allowed = USER_ATTRIBUTES if kind == "Users" else GROUP_ATTRIBUTES
        resource: dict[str, Any] = {"schemas": list(schemas)}
        for name, value in data.items():
            if name in ("schemas", "id", "meta", "groups"):
                continue  # read-only attributes in a request are ignored (RFC 7643 2.2)
            if name == ENTERPRISE and kind == "Users":
                if ENTERPRISE not in schemas:
                    raise _RefusedError(400, f"{ENTERPRISE} is not in schemas", "invalidSyntax")
                if not isinstance(value, dict) or set(value) - ENTERPRISE_ATTRIBUTES:
                    raise _RefusedError(400, "unknown enterprise attribute", "invalidSyntax")
            elif name not in allowed:
                raise _RefusedError(400, f"Unknown attribute {name!r}", "invalidSyntax")
            resource[name] = value
        self._check_values(kind, resource)
        return resource

    def _check_values(self, kind: str, resource: dict[str, Any]) -> None:
        if kind == "Groups":
            if not isinstance(resource.get("displayName"), str) or not resource["displayName"]:
                raise _RefusedError(400, "displayName is required", "invalidValue")
            for member in resource.get("members", []):
                if not isinstance(member, dict) or member.get("value") not in self.users:
                    raise _RefusedError(
                        400, "a member is not a user of this provider", "invalidValue"
                    )
            return
        if not isinstance(resource.get("userName"), str) or not resource["userName"]:
            raise _RefusedError(400, "userName is required", "invalidValue")
        if "active" in resource and not isinstance(resource["active"], bool):
            raise _RefusedError(400, "active must be a boolean", "invalidValue")
        name = resource.get("name")
        if name is not None and (not isinstance(name, dict) or set(name) - NAME_ATTRIBUTES):
            raise _RefusedError(400, "unknown sub-attribute of name", "invalidSyntax")
        for email in resource.get("emails", []) or []:
            if not isinstance(email, dict) or not isinstance(email.get("value"), str):
                raise _RefusedError(400, "an e-mail needs a value", "invalidValue")

    def _check_unique(self, kind: str, resource: dict[str, Any], own_id: str | None) -> None:
        key = "userName" if kind == "Users" else "displayName"
        wanted = str(resource.get(key, "")).lower()
        for other in self._store(kind).values():
            if other["id"] != own_id and str(other.get(key, "")).lower() == wanted:
                raise _RefusedError(409, f"{key} is already taken", "uniqueness")

    def _patch(self, kind: str, resource: dict[str, Any], data: Any) -> None:
        if not isinstance(data, dict) or PATCH_OP not in (data.get("schemas") or []):
            raise _RefusedError(400, f"schemas must be [{PATCH_OP}]", "invalidSyntax")
        operations = data.get("Operations")
        if not isinstance(operations, list) or not operations:
            raise _RefusedError(400, "Operations must be a non-empty list", "invalidSyntax")
        working = json.loads(json.dumps(resource))
        for operation in operations:
            if not isinstance(operation, dict):
                raise _RefusedError(400, "an operation must be an object", "invalidSyntax")
            op = str(operation.get("op", "")).lower()
            if op not in ("add", "remove", "replace"):
                raise _RefusedError(400, f"unknown op {operation.get('op')!r}", "invalidSyntax")
            path = operation.get("path")
            if op == "remove" and not path:
                raise _RefusedError(400, "remove needs a path", "noTarget")
            if path is None:
                value = operation.get("value")
                if not isinstance(value, dict):
                    raise _RefusedError(
                        400, "a value without a path must be an object", "invalidValue"
                    )
                for name, item in value.items():
                    self._apply(kind, working, op, name, item)
            else:
                self._apply(kind, working, op, str(path), operation.get("value"))
        checked = self._checked(kind, working)
        self._check_unique(kind, checked, resource["id"])
        meta = resource["meta"]
        resource.clear()
        resource.update(checked, id=working["id"], meta=meta)

    def _apply(self, kind: str, target: dict[str, Any], op: str, path: str, value: Any) -> None:
        members = re.match(r'^members\[value eq "((?:[^"\\]|\\.)*)"\]$', path, re.IGNORECASE)
        if members and kind == "Groups":
            if op != "remove":
                raise _RefusedError(400, "only remove takes a member filter here", "invalidPath")
            wanted = json.loads(f'"{members.group(1)}"')
            before = target.get("members", [])
            after = [m for m in before if m.get("value") != wanted]
            if len(after) == len(before):
                raise _RefusedError(400, f"no member {wanted}", "noTarget")
            target["members"] = after
            return
        if path.startswith(ENTERPRISE + ":"):
            attribute = path[len(ENTERPRISE) + 1 :]
            if kind != "Users" or attribute not in ENTERPRISE_ATTRIBUTES:
                raise _RefusedError(400, f"unknown attribute {path!r}", "invalidPath")
            extension = target.setdefault(ENTERPRISE, {})
            if ENTERPRISE not in target["schemas"]:
                target["schemas"].append(ENTERPRISE)
            _set(extension, attribute, op, value)
            return
        if path == ENTERPRISE:
            if kind != "Users" or not isinstance(value, dict):
                raise _RefusedError(
                    400, f"{ENTERPRISE} takes an object of attributes", "invalidValue"
                )
            for attribute, item in value.items():
                self._apply(kind, target, op, f"{ENTERPRISE}:{attribute}", item)
            return
        head, _, sub = path.partition(".")
        if head in READ_ONLY:
            raise _RefusedError(400, f"{head} is read-only", "mutability")
        allowed = USER_ATTRIBUTES if kind == "Users" else GROUP_ATTRIBUTES
        if head not in allowed:
            raise _RefusedError(400, f"unknown attribute {path!r}", "invalidPath")
        if sub:
            if head != "name" or sub not in NAME_ATTRIBUTES:
                raise _RefusedError(400, f"unknown attribute {path!r}", "invalidPath")
            _set(target.setdefault("name", {}), sub, op, value)
            return
        if head in ("members", "emails") and op == "add":
            if not isinstance(value, list):
                raise _RefusedError(400, f"{head} takes a list", "invalidValue")
            current = target.setdefault(head, [])
            for item in value:
                if item not in current and not (
                    head == "members" and any(m.get("value") == item.get("value") for m in current)
                ):
                    current.append(item)
            return
        _set(target, head, op, value)


def _set(target: dict[str, Any], name: str, op: str, value: Any) -> None:
    if op == "remove":
        target.pop(name, None)
    else:
        target[name] = value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- filters (RFC 7644 3.4.2.2) ------------------------------------------------------------


def _parse_filter(text: str) -> Any:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _FILTER_TOKEN.match(text, position)
        if match is None or match.end() == position:
            if not text[position:].strip():
                break
            raise _RefusedError(
                400, f"cannot parse the filter at {text[position:]!r}", "invalidFilter"
            )
        position = match.end()
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
    parser = _FilterParser(tokens)
    test = parser.expression()
    if parser.index != len(tokens):
        raise _RefusedError(400, "unexpected text at the end of the filter", "invalidFilter")
    return test


class _FilterParser:
    _OPS = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"}

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def _peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise _RefusedError(400, "the filter ends too early", "invalidFilter")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expression(self) -> Any:
        left = self.term()
        while (self._peek() or "").lower() == "or":
            self._take()
            right = self.term()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def term(self) -> Any:
        left = self.factor()
        while (self._peek() or "").lower() == "and":
            self._take()
            right = self.factor()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def factor(self) -> Any:
        kind, text = self._take()
        if text == "(":
            inner = self.expression()
            if self._take()[1] != ")":
                raise _RefusedError(400, "a parenthesis is not closed", "invalidFilter")
            return inner
        if kind != "word":
            raise _RefusedError(400, f"expected an attribute, got {text!r}", "invalidFilter")
        op = self._take()[1].lower()
        if op not in self._OPS:
            raise _RefusedError(400, f"unknown operator {op!r}", "invalidFilter")
        if op == "pr":
            return lambda r: _values(r, text) != []
        value_kind, raw = self._take()
        if value_kind == "string":
            value: Any = json.loads(raw)
        elif raw in ("true", "false", "null"):
            value = json.loads(raw)
        else:
            try:
                value = json.loads(raw)
            except ValueError:
                raise _RefusedError(400, f"{raw!r} is not a value", "invalidFilter") from None
        fold = text.lower() in _CASE_INSENSITIVE

        def compare(resource: dict[str, Any]) -> bool:
            wanted = value.lower() if fold and isinstance(value, str) else value
            for have in _values(resource, text):
                if fold and isinstance(have, str):
                    have = have.lower()
                if _compare(op, have, wanted):
                    return True
            return op == "ne" and not _values(resource, text)

        return compare


def _values(resource: dict[str, Any], path: str) -> list[Any]:
    if path.startswith(ENTERPRISE + ":"):
        value = (resource.get(ENTERPRISE) or {}).get(path[len(ENTERPRISE) + 1 :])
        return [] if value is None else [value]
    head, _, sub = path.partition(".")
    current = next((v for k, v in resource.items() if k.lower() == head.lower()), None)
    if current is None:
        return []
    if isinstance(current, list):
        return [item.get(sub or "value") for item in current if isinstance(item, dict)]
    if sub:
        if not isinstance(current, dict):
            return []
        found = next((v for k, v in current.items() if k.lower() == sub.lower()), None)
        return [] if found is None else [found]
    return [current]


def _compare(op: str, have: Any, wanted: Any) -> bool:
    if op == "eq":
        return bool(have == wanted)
    if op == "ne":
        return bool(have != wanted)
    if not isinstance(have, str) or not isinstance(wanted, str):
        return False
    return {
        "co": wanted in have,
        "sw": have.startswith(wanted),
        "ew": have.endswith(wanted),
        "gt": have > wanted,
        "ge": have >= wanted,
        "lt": have < wanted,
        "le": have <= wanted,
    }[op]
