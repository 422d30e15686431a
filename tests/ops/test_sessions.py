"""Dashboard logins in the store (SQLite and PostgreSQL): revocation, expiry, throttling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from platypus.config import LoginThrottle, OpsSettings, OpsUser, Role
from platypus.ops.auth import UNKNOWN_USER, Authenticator, Principal, hash_password
from platypus.ops.store import FailureStore, login_failures, sessions
from platypus.secrets import SecretRef

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADDRESS = "192.0.2.10"
# One hash per password for the module: scrypt is slow on purpose.
HASHES = {p: hash_password(p) for p in ("olga-pass-1", "olga-pass-2", "vera-pass")}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def settings(**users: OpsUser) -> OpsSettings:
    found = users or {
        "olga": OpsUser(role=Role.OPERATOR, password_hash=HASHES["olga-pass-1"]),
        "vera": OpsUser(role=Role.VIEWER, password_hash=HASHES["vera-pass"]),
    }
    return OpsSettings(
        users=found,
        session_max_age=3600,
        login_throttle=LoginThrottle(per_user=3, per_address=5, window=600),
    )


def auth(store: FailureStore, ops: OpsSettings | None = None, **kwargs: Any) -> Authenticator:
    return Authenticator(ops or settings(), store, **kwargs)


def logged_in(authenticator: Authenticator, name: str = "olga") -> str:
    principal = authenticator.user(name)
    assert principal is not None
    return authenticator.dump_session(authenticator.start_session(principal, ADDRESS))


def actions(store: FailureStore) -> list[tuple[str, str]]:
    return [(row.actor, row.action) for row in reversed(store.audit_log())]


def test_a_login_is_stored_and_its_cookie_loads_the_user(store: FailureStore) -> None:
    cookie = logged_in(auth(store))

    session = auth(store).load_session(cookie)  # another process: same store, same key
    assert session is not None
    assert session.user == "olga"
    assert actions(store) == [("olga", "login")]


def test_the_store_keeps_a_hash_of_the_token_never_the_token(store: FailureStore) -> None:
    authenticator = auth(store)
    principal = authenticator.user("olga")
    assert principal is not None
    session = authenticator.start_session(principal, ADDRESS)
    with store.engine.connect() as conn:
        [row] = conn.execute(sa.select(sessions)).all()
    assert session.token is not None
    assert session.token not in str(tuple(row))
    assert row.username == "olga"


def test_logout_revokes_the_login_for_every_process(store: FailureStore) -> None:
    first, second = auth(store), auth(store)
    cookie = logged_in(first)
    session = second.load_session(cookie)
    assert session is not None

    second.end_session(session)

    assert first.load_session(cookie) is None
    assert second.load_session(cookie) is None
    assert actions(store) == [("olga", "login"), ("olga", "logout")]


def test_a_login_expires_after_the_max_age_even_with_a_valid_signature(
    store: FailureStore,
) -> None:
    clock = Clock()
    authenticator = auth(store, clock=clock)
    cookie = logged_in(authenticator)
    clock.now = T0 + timedelta(seconds=3599)
    assert authenticator.load_session(cookie) is not None
    clock.now = T0 + timedelta(seconds=3600)
    assert authenticator.load_session(cookie) is None


def test_a_password_change_revokes_earlier_logins_and_is_audited(store: FailureStore) -> None:
    cookie = logged_in(auth(store))
    changed = settings(
        olga=OpsUser(role=Role.OPERATOR, password_hash=HASHES["olga-pass-2"]),
        vera=OpsUser(role=Role.VIEWER, password_hash=HASHES["vera-pass"]),
    )

    assert auth(store, changed).load_session(cookie) is None
    assert auth(store).load_session(cookie) is None  # revoked, not just unrecognised
    assert actions(store)[-1] == ("platypus", "session.revoked")
    assert store.audit_log()[0].detail == {
        "user": "olga",
        "reason": "the user's role or password changed",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"role": Role.VIEWER},
        {"reveal": True},
    ],
)
def test_a_role_or_reveal_change_revokes_earlier_logins(
    store: FailureStore, change: dict[str, Any]
) -> None:
    cookie = logged_in(auth(store))
    user = OpsUser(**{"role": Role.OPERATOR, "password_hash": HASHES["olga-pass-1"], **change})
    assert auth(store, settings(olga=user)).load_session(cookie) is None


def test_a_password_given_by_reference_is_a_grant_too(
    store: FailureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLGA_PW", "first")
    by_env = settings(olga=OpsUser(role=Role.OPERATOR, password=SecretRef(env="OLGA_PW")))
    cookie = logged_in(auth(store, by_env))
    assert auth(store, by_env).load_session(cookie) is not None

    monkeypatch.setenv("OLGA_PW", "second")
    assert auth(store, by_env).load_session(cookie) is None
    with store.engine.connect() as conn:
        stored = str(conn.execute(sa.select(sessions)).all())
    assert "first" not in stored


def test_a_removed_user_loses_their_login(store: FailureStore) -> None:
    cookie = logged_in(auth(store), "vera")
    only_olga = settings(olga=OpsUser(role=Role.OPERATOR, password_hash=HASHES["olga-pass-1"]))
    assert auth(store, only_olga).load_session(cookie) is None
    assert store.audit_log()[0].detail["reason"] == "the user is no longer configured"


def test_an_unchanged_configuration_keeps_the_login_across_a_restart(
    store: FailureStore,
) -> None:
    cookie = logged_in(auth(store))
    store.close()
    reopened = FailureStore(store.engine.url.render_as_string(hide_password=False))
    try:
        session = auth(reopened).load_session(cookie)
    finally:
        reopened.close()
    assert session is not None
    assert session.user == "olga"


def test_a_session_secret_signs_cookies_instead_of_the_stored_key(
    store: FailureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_KEY", "a-configured-key")
    configured = settings().model_copy(update={"session_secret": SecretRef(env="SESSION_KEY")})
    cookie = logged_in(auth(store, configured))
    assert auth(store, configured).load_session(cookie) is not None
    assert auth(store).load_session(cookie) is None  # the stored key does not verify it


def test_failed_logins_are_throttled_per_user_and_audited_once(store: FailureStore) -> None:
    clock = Clock()
    authenticator = auth(store, clock=clock)
    for n in range(3):
        assert authenticator.throttled("olga", ADDRESS) is None
        authenticator.failed_login("olga", f"198.51.100.{n}")
        clock.now += timedelta(seconds=10)

    wait = authenticator.throttled("olga", "203.0.113.9")  # any address: it is the user
    assert wait == pytest.approx(600 - 30)
    assert authenticator.throttled("vera", ADDRESS) is None
    assert actions(store) == [
        ("olga", "login.failed"),
        ("olga", "login.failed"),
        ("olga", "login.failed"),
        ("olga", "login.throttled"),
    ]
    assert store.audit_log()[0].detail == {
        "address": "198.51.100.2",
        "user": "olga",
        "scope": "user",
        "minutes": 10,
    }

    # The oldest failure leaves the window: one more attempt is allowed.
    clock.now = T0 + timedelta(seconds=600)
    assert authenticator.throttled("olga", ADDRESS) is None


def test_failed_logins_are_throttled_per_address_whatever_the_name(store: FailureStore) -> None:
    clock = Clock()
    authenticator = auth(store, clock=clock)
    for n in range(5):
        authenticator.failed_login(f"guess-{n}", ADDRESS)

    assert authenticator.throttled("vera", ADDRESS) == pytest.approx(600)
    assert authenticator.throttled("vera", "192.0.2.99") is None
    throttled = [row for row in store.audit_log() if row.action == "login.throttled"]
    assert [row.detail["scope"] for row in throttled] == ["address"]


def test_a_successful_login_clears_the_users_failures(store: FailureStore) -> None:
    authenticator = auth(store)
    authenticator.failed_login("olga", ADDRESS)
    authenticator.failed_login("olga", ADDRESS)
    logged_in(authenticator)
    authenticator.failed_login("olga", ADDRESS)
    authenticator.failed_login("olga", ADDRESS)
    assert authenticator.throttled("olga", ADDRESS) is None


def test_names_that_are_no_user_are_never_kept(store: FailureStore) -> None:
    typed = "olga-pass-1 typed in the name box"
    auth(store).failed_login(typed, ADDRESS)

    [row] = store.audit_log()
    assert (row.actor, row.detail["user"]) == (UNKNOWN_USER, UNKNOWN_USER)
    with store.engine.connect() as conn:
        kept = str(conn.execute(sa.select(login_failures)).all())
    assert typed not in kept
    assert "olga-pass-1" not in kept


def test_tokens_and_providers_do_not_need_a_session(store: FailureStore) -> None:
    class Proxy:
        def authenticate(self, headers: Any) -> Principal | None:
            return Principal("sso-user", Role.VIEWER, via="token")

    authenticator = auth(store, providers=[Proxy()])
    found = authenticator.from_headers({})
    assert found is not None
    assert found.name == "sso-user"
