"""Who is using the dashboard: password logins, bearer tokens, roles, sessions, CSRF.

Identities come from ``ops:`` in ``platypus.yaml`` (`platypus.config.OpsSettings`):

* **users** log in with a password (a scrypt hash in the file, or the password
  itself from an environment variable or a file) and get a signed session cookie;
* **tokens** authenticate calls to the JSON API (``Authorization: Bearer <token>``).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr

from platypus.config import OpsSettings, Role
from platypus.exceptions import ConfigurationError
from platypus.ops.actions import Actor, Permission

__all__ = [
    "Authenticator",
    "IdentityProvider",
    "Principal",
    "Session",
    "hash_password",
    "verify_password",
]

SESSION_COOKIE = "platypus_ops"

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
    """What the session cookie holds: the user (None before login) and the CSRF token."""

    user: str | None
    csrf: str

    @classmethod
    def new(cls, user: str | None = None) -> Session:
        """A fresh session with a new CSRF token (new at every login)."""
        return cls(user, secrets.token_urlsafe(24))


class Authenticator:
    """Checks passwords, tokens and session cookies against ``ops:`` settings.

    Secrets (passwords given by reference, tokens, the session key) are read once,
    here, so a missing one stops start-up rather than the first login.
    """

    def __init__(
        self,
        settings: OpsSettings,
        *,
        providers: Sequence[IdentityProvider] = (),
        environ: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.providers = list(providers)
        self.max_age = int(settings.session_max_age)
        self._hashes: dict[str, str] = {}
        self._passwords: dict[str, SecretStr] = {}
        for name, user in settings.users.items():
            if user.password_hash is not None:
                hashed = user.password_hash.get_secret_value()
                if not hashed.startswith("scrypt$"):
                    raise ConfigurationError(
                        f"ops.users.{name}.password_hash is not a scrypt hash: make one with "
                        "`python -m platypus.ops.auth hash-password`"
                    )
                self._hashes[name] = hashed
            elif user.password is not None:
                self._passwords[name] = user.password.resolve(environ)
        self._tokens = [
            (name, spec.token.resolve(environ).get_secret_value().encode())
            for name, spec in settings.tokens.items()
        ]
        self.metrics_token = (
            settings.metrics_token.resolve(environ).get_secret_value().encode()
            if settings.metrics_token is not None
            else None
        )
        key = (
            settings.session_secret.resolve(environ).get_secret_value()
            if settings.session_secret is not None
            else secrets.token_urlsafe(32)
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

    def dump_session(self, session: Session) -> str:
        """The signed cookie value of ``session``."""
        return self._signer.dumps({"u": session.user, "c": session.csrf})

    def load_session(self, cookie: str | None) -> Session | None:
        """The session of a cookie, None if missing, tampered with or older than max age."""
        if not cookie:
            return None
        try:
            data: Any = self._signer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user = data.get("u")
        return Session(user if isinstance(user, str) else None, data["c"])


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
