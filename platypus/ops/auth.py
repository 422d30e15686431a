"""Who is using the dashboard: password logins, bearer tokens, roles, sessions, CSRF.

Identities come from ``ops:`` in ``platypus.yaml`` (`platypus.config.OpsSettings`):

* **users** log in with a password (a scrypt hash in the file, or the password
  itself from an environment variable or a file) and get a session cookie;
* **tokens** authenticate calls to the JSON API (``Authorization: Bearer <token>``).

Sessions are kept in the failed-event store (`FailureStore.create_session`): the
cookie carries a random token, signed, and the store says whether that login
still holds. It ends at logout (the old cookie stops working at once, on every
process serving the dashboard), after ``session_max_age``, or when the user's
role, reveal permission or password in ``platypus.yaml`` is no longer the one
the login was made with. Failed logins are counted per user name and per client
address (``ops.login_throttle``); past the limit, logins are refused with 429
until the oldest failures leave the window. Logins, logouts, failures,
throttling and revocations are audited.

A `Principal` has a role (`Role.VIEWER` looks; `Role.OPERATOR` also replays and
discards) and, separately, may be allowed to reveal personal data. It becomes the
`platypus.ops.Actor` the operations check and audit.

Other identity providers (OIDC behind a reverse proxy, say) plug in as an
`IdentityProvider`: given the request, return a `Principal` or None. See
docs/operations.md.

Hash a password for the file with::

    python -m platypus.ops.auth hash-password
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr

from platypus.config import OpsSettings, OpsUser, Role
from platypus.exceptions import ConfigurationError
from platypus.ops.actions import Actor, Permission
from platypus.ops.store import FailureStore, StoredSession

__all__ = [
    "Authenticator",
    "IdentityProvider",
    "Principal",
    "Session",
    "hash_password",
    "verify_password",
]

SESSION_COOKIE = "platypus_ops"

UNKNOWN_USER = "(unknown user)"
"""Who a failed login is audited as when the name given is no configured user: what
was typed may be a password typed in the wrong box, so it is never kept."""

_log = structlog.get_logger("platypus.ops.auth")

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64) of ``password``, for ``password_hash``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (from `hash_password`); constant time."""
    try:
        scheme, n, r, p, salt, digest = hashed.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user or token: a name, a role, and whether it may reveal."""

    name: str
    role: Role = Role.VIEWER
    reveal: bool = False
    via: str = "session"
    """``session`` (cookie; form posts need the CSRF token) or ``token`` (bearer)."""

    @property
    def permissions(self) -> frozenset[Permission]:
        """What the operations let this principal do."""
        granted: set[Permission] = set()
        if self.role is Role.OPERATOR:
            granted |= {Permission.REPLAY, Permission.DISCARD}
        if self.reveal:
            granted.add(Permission.REVEAL)
        return frozenset(granted)

    def can(self, permission: Permission) -> bool:
        """Whether the principal has ``permission``."""
        return permission in self.permissions

    @property
    def actor(self) -> Actor:
        """The actor the operations audit: tokens are named ``token:<name>``."""
        name = self.name if self.via != "token" else f"token:{self.name}"
        return Actor(name, self.permissions)


class IdentityProvider(Protocol):
    """The extension point for other logins (OIDC, a trusted proxy header, ...).

    Called for every request before the session cookie and bearer tokens are
    looked at; return the `Principal` the request proves, or None to fall through.
    A provider that trusts a header must only be used behind a proxy that sets it.
    """

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The principal the request's headers prove, or None."""
        ...


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's session: the CSRF token, and after login the user and the login's token.

    Before login a session is only its signed cookie (the CSRF token of the login
    form); a login is stored server-side under a hash of ``token``.
    """

    user: str | None
    csrf: str
    token: str | None = None

    @classmethod
    def new(cls) -> Session:
        """A fresh session before login, with a new CSRF token."""
        return cls(None, secrets.token_urlsafe(24))


class Authenticator:
    """Checks passwords, tokens and session cookies against ``ops:`` settings.

    Secrets (passwords given by reference, tokens, the session key) are read once,
    here, so a missing one stops start-up rather than the first login.
    """

    def __init__(
        self,
        settings: OpsSettings,
        store: FailureStore,
        *,
        providers: Sequence[IdentityProvider] = (),
        environ: dict[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.providers = list(providers)
        self.max_age = int(settings.session_max_age)
        self.clock = clock
        self._hashes: dict[str, str] = {}
        self._passwords: dict[str, SecretStr] = {}
        self._grants: dict[str, str] = {}
        for name, user in settings.users.items():
            if user.password_hash is not None:
                hashed = user.password_hash.get_secret_value()
                if not hashed.startswith("scrypt$"):
                    raise ConfigurationError(
                        f"ops.users.{name}.password_hash is not a scrypt hash: make one with "
                        "`python -m platypus.ops.auth hash-password`"
                    )
                self._hashes[name] = hashed
                credential = hashed
            elif user.password is not None:
                self._passwords[name] = user.password.resolve(environ)
                # Slow, like a password hash: the grant is stored, the password is not.
                credential = hashlib.scrypt(
                    self._passwords[name].get_secret_value().encode(),
                    salt=f"platypus.ops.grant:{name}".encode(),
                    dklen=16,
                    **_SCRYPT,
                ).hex()
            else:
                credential = ""
            self._grants[name] = _grant(user, credential)
        self._tokens = [
            (name, spec.token.resolve(environ).get_secret_value().encode())
            for name, spec in settings.tokens.items()
        ]
        self.metrics_token = (
            settings.metrics_token.resolve(environ).get_secret_value().encode()
            if settings.metrics_token is not None
            else None
        )
        # Without a configured key, one kept in the store: every process serving the
        # dashboard from the same store reads the same cookies, across restarts too.
        key = (
            settings.session_secret.resolve(environ).get_secret_value()
            if settings.session_secret is not None
            else store.shared_key("ops.session_signing")
        )
        self._signer = URLSafeTimedSerializer(key, salt="platypus.ops.session")
        # A wrong user name costs as much as a wrong password (no user enumeration).
        self._decoy = hash_password(secrets.token_urlsafe(12))

    # -- passwords and tokens ---------------------------------------------------

    def login(self, name: str, password: str) -> Principal | None:
        """The user ``name`` if ``password`` is theirs, else None."""
        user = self.settings.users.get(name)
        if user is None:
            verify_password(password, self._decoy)
            return None
        if name in self._hashes:
            ok = verify_password(password, self._hashes[name])
        else:
            ok = hmac.compare_digest(
                password.encode(), self._passwords[name].get_secret_value().encode()
            )
        return self.user(name) if ok else None

    def user(self, name: str) -> Principal | None:
        """The principal of configured user ``name`` (None if no longer configured)."""
        user = self.settings.users.get(name)
        if user is None:
            return None
        return Principal(name, user.role, user.reveal, via="session")

    def bearer(self, token: str) -> Principal | None:
        """The principal of an API token, compared in constant time against each one."""
        given = token.encode()
        found: str | None = None
        for name, value in self._tokens:
            if hmac.compare_digest(given, value):
                found = name
        if found is None:
            return None
        spec = self.settings.tokens[found]
        return Principal(found, spec.role, spec.reveal, via="token")

    def from_headers(self, headers: Mapping[str, str]) -> Principal | None:
        """A principal from the identity providers, then from a bearer token."""
        for provider in self.providers:
            found = provider.authenticate(headers)
            if found is not None:
                return found
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.bearer(token.strip())
        return None

    def metrics_allowed(self, headers: Mapping[str, str]) -> bool:
        """Whether a scrape may read /metrics (always, unless ``metrics_token`` is set)."""
        if self.metrics_token is None:
            return True
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.metrics_token
        )

    # -- sessions -----------------------------------------------------------------

    def start_session(self, principal: Principal, address: str) -> Session:
        """Store a new login of ``principal`` (audited) and return its session."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        stored = StoredSession(
            user=principal.name,
            csrf=secrets.token_urlsafe(24),
            grant=self._grants.get(principal.name, ""),
            address=address,
            created_at=now,
            expires_at=now + timedelta(seconds=self.max_age),
        )
        self.store.create_session(
            _session_id(token),
            stored,
            audit_row=(principal.name, "login", {"address": address}),
        )
        self.store.clear_login_failures("user", _user_key(principal.name))
        _log.info("dashboard login", user=principal.name, role=principal.role.value)
        return Session(principal.name, stored.csrf, token)

    def end_session(self, session: Session, why: str = "logout") -> None:
        """Revoke the login of ``session`` server-side: its cookie stops working."""
        if session.token is None:
            return
        actor = session.user or "platypus"
        self.store.revoke_session(
            _session_id(session.token), why, audit_row=(actor, why, {"user": session.user})
        )

    def dump_session(self, session: Session) -> str:
        """The signed cookie value of ``session``."""
        data: dict[str, Any] = {"c": session.csrf}
        if session.token is not None:
            data["t"] = session.token
        return self._signer.dumps(data)

    def load_session(self, cookie: str | None) -> Session | None:
        """The session of a cookie, None if missing, tampered with, expired or revoked.

        A login whose user's role, reveal permission or password changed since is
        revoked here, the first time its cookie comes back.
        """
        if not cookie:
            return None
        try:
            data: Any = self._signer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        token = data.get("t")
        if token is None:
            return Session(None, data["c"])
        if not isinstance(token, str):
            return None
        stored = self.store.session(_session_id(token))
        if stored is None or stored.revoked_at is not None or stored.expires_at <= self.clock():
            return None
        if self._grants.get(stored.user) != stored.grant:
            why = (
                "the user is no longer configured"
                if stored.user not in self._grants
                else "the user's role or password changed"
            )
            self.store.revoke_session(
                _session_id(token),
                why,
                audit_row=("platypus", "session.revoked", {"user": stored.user, "reason": why}),
            )
            _log.info("dashboard session revoked", user=stored.user, reason=why)
            return None
        return Session(stored.user, stored.csrf, token)

    # -- failed logins ------------------------------------------------------------

    def throttled(self, name: str, address: str) -> float | None:
        """Seconds until ``name`` may try logging in from ``address`` again, if refused now."""
        limits = self.settings.login_throttle
        now = self.clock()
        since = now - timedelta(seconds=limits.window)
        wait = 0.0
        for scope, subject, limit in (
            ("user", _user_key(name), limits.per_user),
            ("address", address, limits.per_address),
        ):
            failures = self.store.login_failures(scope, subject, since)
            if len(failures) >= limit:
                # Allowed again once fewer than `limit` failures are in the window.
                lifts = failures[-limit] + timedelta(seconds=limits.window)
                wait = max(wait, (lifts - now).total_seconds())
        return wait if wait > 0 else None

    def failed_login(self, name: str, address: str) -> None:
        """Count a failed login of ``name`` from ``address``; audit it and any throttling."""
        limits = self.settings.login_throttle
        now = self.clock()
        since = now - timedelta(seconds=limits.window)
        shown = name if name in self.settings.users else UNKNOWN_USER
        detail = {"address": address, "user": shown}
        rows: list[tuple[str, str, dict[str, Any]]] = [(shown, "login.failed", detail)]
        subjects = {"user": _user_key(name), "address": address}
        for scope, limit in (("user", limits.per_user), ("address", limits.per_address)):
            earlier = len(self.store.login_failures(scope, subjects[scope], since))
            if earlier + 1 == limit:
                # Audited once, when the limit is reached, not for every refused attempt.
                minutes = round(limits.window / 60)
                rows.append(
                    (shown, "login.throttled", {**detail, "scope": scope, "minutes": minutes})
                )
                _log.warning("dashboard logins throttled", scope=scope, user=shown, address=address)
        self.store.record_login_failure(
            subjects,
            at=now,
            forget_before=now - timedelta(seconds=limits.window),
            audit_rows=rows,
        )
        _log.info("dashboard login refused", user=shown, address=address)


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_key(name: str) -> str:
    # A hash: the name given may be anything, even a password typed in the wrong box.
    return hashlib.sha256(name.encode()).hexdigest()


def _grant(user: OpsUser, credential: str) -> str:
    """What a login is granted on: it stops holding when any of it changes."""
    text = f"{user.role.value}\x1f{user.reveal}\x1f{credential}"
    return hashlib.sha256(text.encode()).hexdigest()


def check_csrf(session: Session | None, given: str | None) -> bool:
    """Whether ``given`` is the session's CSRF token (constant time)."""
    if session is None or not given:
        return False
    return hmac.compare_digest(session.csrf.encode(), given.encode())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m platypus.ops.auth hash-password``: print a hash for ``password_hash``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["hash-password"]:
        print("usage: python -m platypus.ops.auth hash-password", file=sys.stderr)
        return 2
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Again: "):
        print("the passwords differ", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
