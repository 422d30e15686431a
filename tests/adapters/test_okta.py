"""The ``okta`` adapter: the adapter contract and Okta's own behaviour, on a loopback fake."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from platypus.adapter import Adapter, Request
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus_adapters.okta import RESULTS, CredentialsError, OktaAdapter
from platypus_adapters.okta._ratelimit import RateLimits, bucket_of, parse_rate_limit
from platypus_adapters.okta.models import ApiTokenAuth, OktaSettings, PrivateKeyJwtAuth
from tests.adapters.contract import AdapterContract, Failure
from tests.fakes.okta import RESET, FakeOkta, Reply, Slow, okta_error
from tests.fakes.proxy import TunnelProxy

LOGIN = "ada.quill@example.com"


@pytest.fixture(scope="module")
def _okta_server() -> Iterator[FakeOkta]:
    fake = FakeOkta()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def okta(_okta_server: FakeOkta, monkeypatch: pytest.MonkeyPatch) -> FakeOkta:
    """The fake org, emptied, with the credentials in the environment."""
    _okta_server.reset()
    monkeypatch.setenv("OKTA_API_TOKEN", FakeOkta.api_token)
    monkeypatch.setenv("OKTA_PRIVATE_KEY", _okta_server.private_key_pem)
    return _okta_server


def settings(fake: FakeOkta, auth: str = "private_key_jwt", **extra: Any) -> dict[str, Any]:
    if auth == "api_token":
        credentials: dict[str, Any] = {"type": "api_token", "token": {"env": "OKTA_API_TOKEN"}}
    else:
        credentials = {
            "type": "private_key_jwt",
            "client_id": FakeOkta.client_id,
            "private_key": {"env": "OKTA_PRIVATE_KEY"},
            "key_id": "fake-kid-1",
        }
    credentials.update(extra.pop("auth_extra", {}))
    return {
        "org_url": fake.url,
        "auth": credentials,
        "ca_bundle": str(fake.ca_path),
        # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
        # fake for longer than a tight timeout. Timeout cases set their own (1 s).
        "timeout": 5.0,
        **extra,
    }


def make_adapter(fake: FakeOkta, auth: str = "private_key_jwt", **extra: Any) -> OktaAdapter:
    adapter = OktaAdapter.from_config(settings(fake, auth, **extra), connection="okta")
    assert isinstance(adapter, OktaAdapter)
    return adapter


@pytest.fixture
async def adapter(okta: FakeOkta) -> AsyncIterator[OktaAdapter]:
    started = make_adapter(okta)
    await started.start()
    yield started
    await started.close()


def profile(login: str = LOGIN, **extra: Any) -> dict[str, Any]:
    return {
        "login": login,
        "email": login,
        "firstName": "Ada",
        "lastName": "Quill",
        "employeeNumber": "W-10042",
        **extra,
    }


def create(login: str = LOGIN, event_id: str = "evt-1", **payload: Any) -> Request:
    return Request(
        action="create_user",
        payload={"profile": profile(login), **payload},
        event_id=event_id,
        flow="hire-to-okta",
        step="create_user",
    )


async def call(adapter: Adapter, action: str, **payload: Any) -> Any:
    result = await adapter.call(Request(action=action, payload=payload, event_id="evt-x"))
    RESULTS[action].model_validate(result)  # every answer fits its declared model
    return result


# -- the contract, with each kind of credential -----------------------------------------


class _Contract(AdapterContract):
    secret: ClassVar[str] = FakeOkta.api_token
    auth: ClassVar[str] = "api_token"

    @pytest.fixture
    def vendor(self, okta: FakeOkta) -> FakeOkta:
        return okta

    def make_adapter(self, vendor: FakeOkta) -> Adapter:
        return make_adapter(vendor, self.auth, timeout=1.0)  # "timeout" answers after 2 s

    def write(self, event_id: str) -> Request:
        return create(f"{event_id}@example.com", event_id)

    def record_count(self, vendor: FakeOkta, request: Request) -> int:
        return len(vendor.users_with_login(request.payload["profile"]["login"]))

    def fail_next(self, vendor: FakeOkta, failure: Failure) -> None:
        if failure == "permanent":
            vendor.fail_next(
                "/api/v1/users",
                Reply(400, okta_error("E0000001", "Api validation failed: email", "email: bad")),
            )
        elif failure == "retryable":
            vendor.fail_next(
                "/api/v1/users", Reply(503, okta_error("E0000010", "Service is in read only mode"))
            )
        elif failure == "timeout":
            vendor.fail_next("/api/v1/users", Slow(2.0))
        elif failure == "reset":
            vendor.fail_next("/api/v1/users", RESET)
        else:
            vendor.expire_tokens()


class TestContractWithAnApiToken(_Contract):
    refreshes_credentials: ClassVar[bool] = False


class TestContractWithAPrivateKeyJwt(_Contract):
    auth: ClassVar[str] = "private_key_jwt"
    # The private key is the credential that must never leak.
    secret: ClassVar[str] = "MIIEv"

    @pytest.fixture
    def vendor(self, okta: FakeOkta) -> FakeOkta:
        # A line of the PEM body, long enough to be the key's and nobody else's.
        type(self).secret = okta.private_key_pem.splitlines()[5]
        return okta


# -- settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("org_url", "problem"),
    [
        ("http://acme.okta.com", "https"),
        ("https://acme.okta.com/admin", "without a path"),
        ("acme.okta.com", "https"),
    ],
)
def test_an_org_url_that_is_not_the_orgs_https_root_is_refused(
    okta: FakeOkta, org_url: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        OktaAdapter.from_config({**settings(okta), "org_url": org_url})


async def test_a_private_key_that_is_not_pem_is_refused_at_start_naming_where_it_came_from(
    okta: FakeOkta, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKTA_PRIVATE_KEY", "not a key")
    adapter = make_adapter(okta)
    with pytest.raises(ConfigurationError, match=r"env:OKTA_PRIVATE_KEY.*not an unencrypted PEM"):
        await adapter.start()


# -- users ------------------------------------------------------------------------------


async def test_a_user_is_created_staged_in_the_groups_named_and_the_result_fits_its_model(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    finance = okta.add_group("Department - Finance")
    okta.add_group("Employees")

    result = await call(
        adapter,
        "create_user",
        profile=profile(startDate="2026-12-01", department="Finance"),
        groups=["Department - Finance", "Employees"],
    )

    [user] = okta.users_with_login(LOGIN)
    assert result == {"id": user["id"], "login": LOGIN, "status": "STAGED", "created": True}
    assert user["profile"]["startDate"] == "2026-12-01"
    assert okta.groups_of(user["id"]) == {"Department - Finance", "Employees"}
    [post] = [r for r in okta.requests_to("/api/v1/users") if r.method == "POST"]
    assert post.query == "activate=false"
    assert post.json["groupIds"][0] == finance


async def test_a_user_whose_login_exists_is_not_created_again_but_is_put_in_the_groups(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    okta.add_group("Employees")
    existing = okta.add_user(status="STAGED", **profile())

    result = await call(adapter, "create_user", profile=profile(), groups=["Employees"])

    assert result == {"id": existing, "login": LOGIN, "status": "STAGED", "created": False}
    assert len(okta.users_with_login(LOGIN)) == 1
    assert okta.groups_of(existing) == {"Employees"}


async def test_a_user_created_between_the_lookup_and_the_create_is_found_not_duplicated(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    existing = okta.add_user(status="STAGED", **profile())
    # The lookup misses (another delivery creates the user right after it).
    okta.fail_next(
        f"/api/v1/users/{LOGIN}", Reply(404, okta_error("E0000007", "Not found: Resource"))
    )

    result = await call(adapter, "create_user", profile=profile())

    assert result["id"] == existing
    assert result["created"] is False
    assert len(okta.users_with_login(LOGIN)) == 1


async def test_a_login_taken_by_another_employee_is_refused_not_reused(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    okta.add_user(**{**profile(), "employeeNumber": "W-99999"})

    with pytest.raises(PermanentError, match="employeeNumber is another one") as caught:
        await call(adapter, "create_user", profile=profile())

    assert caught.value.vendor_code == "LOGIN_OF_ANOTHER_EMPLOYEE"


async def test_an_attribute_the_org_profile_lacks_is_a_permanent_error_without_personal_data(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    with pytest.raises(PermanentError) as caught:
        await call(adapter, "create_user", profile=profile(shoeSize="44"))

    error = caught.value
    assert error.vendor_code == "E0000001"
    assert "Property name 'shoeSize' is not defined in profile" in str(error)
    assert LOGIN not in str(error)
    assert okta.users_with_login(LOGIN) == []


async def test_an_unknown_group_name_is_a_permanent_error_before_the_user_is_created(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    with pytest.raises(PermanentError, match="no group named 'Department - Sales'") as caught:
        await call(adapter, "create_user", profile=profile(), groups=["Department - Sales"])

    assert caught.value.vendor_code == "GROUP_NOT_FOUND"
    assert okta.users_with_login(LOGIN) == []


async def test_activation_of_a_staged_user_sends_the_email_and_a_second_one_changes_nothing(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(status="STAGED", **profile())

    first = await call(adapter, "activate_user", user=LOGIN)
    second = await call(adapter, "activate_user", user=user_id)

    assert first == {"id": user_id, "status": "PROVISIONED", "activated": True}
    assert second == {"id": user_id, "status": "PROVISIONED", "activated": False}
    assert okta.activation_emails == [user_id]


async def test_the_activation_token_okta_returns_without_an_email_is_never_passed_on(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(status="STAGED", **profile())

    result = await call(adapter, "activate_user", user=user_id, send_email=False)

    [activation] = [r for r in okta.requests if r.path.endswith("/lifecycle/activate")]
    assert activation.query == "sendEmail=false"
    assert set(result) == {"id", "status", "activated"}


async def test_deactivation_is_done_once_and_reported_as_done_when_repeated(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(**profile())

    first = await call(adapter, "deactivate_user", user=LOGIN)
    second = await call(adapter, "deactivate_user", user=LOGIN)

    assert first == {"id": user_id, "status": "DEPROVISIONED", "deactivated": True}
    assert second == {"id": user_id, "status": "DEPROVISIONED", "deactivated": False}
    deactivations = [r for r in okta.requests if r.path.endswith("/lifecycle/deactivate")]
    assert [r.query for r in deactivations] == ["sendEmail=false"] * 2


async def test_suspend_and_unsuspend_follow_oktas_state_rules(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    active = okta.add_user(**profile())
    staged = okta.add_user(status="STAGED", **profile("cy@example.com"))

    assert (await call(adapter, "suspend_user", user=active))["suspended"] is True
    assert (await call(adapter, "suspend_user", user=active))["suspended"] is False
    assert (await call(adapter, "unsuspend_user", user=active))["status"] == "ACTIVE"
    with pytest.raises(PermanentError, match="Cannot suspend a user that is not active"):
        await call(adapter, "suspend_user", user=staged)


async def test_a_profile_update_changes_only_the_attributes_given(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(**profile(title="Analyst"))

    result = await call(adapter, "update_profile", user=user_id, profile={"title": "Lead"})

    assert result == {"id": user_id, "login": LOGIN, "status": "ACTIVE"}
    assert okta.users[user_id]["profile"]["title"] == "Lead"
    assert okta.users[user_id]["profile"]["firstName"] == "Ada"


async def test_groups_are_named_by_id_or_name_and_a_name_is_looked_up_once(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(**profile())
    sales = okta.add_group("Sales")
    okta.add_group("Employees")

    added = await call(adapter, "add_user_to_groups", user=user_id, groups=[sales, "Employees"])
    await call(adapter, "add_user_to_groups", user=user_id, groups=["Employees"])
    removed = await call(adapter, "remove_user_from_groups", user=user_id, groups=["Sales"])

    assert [g["name"] for g in added["groups"]] == ["Sales", "Employees"]
    assert removed["groups"] == [{"id": sales, "name": "Sales"}]
    assert okta.groups_of(user_id) == {"Employees"}
    searches = [r for r in okta.requests_to("/api/v1/groups") if "search" in r.query]
    assert len(searches) == 2  # "Employees" once, "Sales" once (it was named by id first)


async def test_clearing_sessions_revokes_the_oauth_tokens_too_by_default(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(**profile())

    result = await call(adapter, "clear_user_sessions", user=LOGIN)

    assert result == {"id": user_id, "oauth_tokens_revoked": True}
    assert okta.sessions_revoked == [(user_id, True)]


async def test_find_user_by_login_or_id_and_a_missing_one_is_not_an_error(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(**profile())

    assert await call(adapter, "find_user", user=LOGIN) == {
        "found": True,
        "id": user_id,
        "login": LOGIN,
        "status": "ACTIVE",
    }
    assert (await call(adapter, "find_user", user="nobody@example.com"))["found"] is False


async def test_list_users_pages_through_a_search_by_the_next_link(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    for n in range(5):
        okta.add_user(status="STAGED", **profile(f"u{n}@example.com"))
    okta.add_user(status="ACTIVE", **profile("active@example.com"))

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await call(adapter, "list_users", search='status eq "STAGED"', limit=2, after=after)
        pages += 1
        seen += [user["profile"]["login"] for user in page["users"]]
        after = page["after"]
        if after is None:
            break

    assert pages == 3
    assert sorted(seen) == [f"u{n}@example.com" for n in range(5)]


# -- rate limits -------------------------------------------------------------------------


def test_the_rate_limit_headers_give_the_wait_by_oktas_clock() -> None:
    now = 1_800_000_000.0
    headers = httpx.Headers(
        [
            ("X-Rate-Limit-Limit", "600"),
            ("X-Rate-Limit-Remaining", "0"),
            ("X-Rate-Limit-Reset", str(int(now) + 30)),
            # Okta's clock is 10 s ahead of ours: 20 s are left, plus the second it is in.
            ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 10))),
        ]
    )
    state = parse_rate_limit(headers, now=now)
    assert state is not None
    assert (state.limit, state.remaining) == (600, 0)
    assert state.wait(now) == pytest.approx(21.0)


def test_the_tightest_of_repeated_rate_limit_headers_counts() -> None:
    headers = httpx.Headers(
        [
            ("X-Rate-Limit-Limit", "600"),
            ("X-Rate-Limit-Limit", "100"),
            ("X-Rate-Limit-Remaining", "50"),
            ("X-Rate-Limit-Remaining", "0"),
            ("X-Rate-Limit-Reset", "1800000060"),
        ]
    )
    state = parse_rate_limit(headers, now=1_800_000_000.0)
    assert state is not None
    assert (state.limit, state.remaining) == (100, 0)


def test_buckets_are_per_endpoint_not_per_user() -> None:
    assert bucket_of("GET", "/api/v1/users/00u000001abcdefabcde") == "GET /api/v1/users/{id}"
    assert bucket_of("GET", "/api/v1/users/ada@example.com") == "GET /api/v1/users/{id}"
    assert bucket_of("POST", "/api/v1/users") == "POST /api/v1/users"
    assert (
        bucket_of("PUT", "/api/v1/groups/00g000001abcdefabcde/users/00u000001abcdefabcde")
        == "PUT /api/v1/groups/{id}/users/{id}"
    )


ACTIVATE = "POST /api/v1/users/{id}/lifecycle/activate"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_429_is_retried_after_the_reset_and_nothing_is_sent_before_it(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    user_id = okta.add_user(status="STAGED", **profile())
    clock = FakeClock(time.time())
    adapter.rate_limits.clock = clock
    reset = int(clock()) + 30
    limited = Reply(
        429,
        okta_error("E0000047", "API call exceeded rate limit due to too many requests."),
        {
            "X-Rate-Limit-Limit": "600",
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Reset": str(reset),
        },
    )
    okta.fail_next(f"/api/v1/users/{user_id}/lifecycle/activate", limited)

    with pytest.raises(RetryableError) as refused:
        await call(adapter, "activate_user", user=user_id)
    error = refused.value
    assert error.status_code == 429
    assert error.vendor_code == "E0000047"
    # Measured against the answer's Date (Okta's clock), plus the second it is in.
    assert error.retry_after == pytest.approx(reset - clock() + 1, abs=1.5)

    # Until the reset, the adapter does not even send the call.
    sent = len(okta.requests)
    with pytest.raises(RetryableError, match="was not sent") as held:
        await call(adapter, "activate_user", user=user_id)
    assert len(okta.requests) == sent
    assert held.value.retry_after == pytest.approx(error.retry_after, abs=1.5)

    # Once the window has reset, the same call goes through.
    clock.now += error.retry_after or 0
    assert (await call(adapter, "activate_user", user=user_id))["activated"] is True


async def test_a_bucket_used_up_by_earlier_calls_is_not_called_before_its_reset(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    first = okta.add_user(status="STAGED", **profile())
    second = okta.add_user(status="STAGED", **profile("cy@example.com"))
    okta.set_limit(ACTIVATE, 1)

    await call(adapter, "activate_user", user=first)  # answered with Remaining: 0
    sent = len(okta.requests)
    with pytest.raises(RetryableError, match=r"rate limit of POST /api/v1/users/\{id\}/lifecycle"):
        await call(adapter, "activate_user", user=second)

    assert len(okta.requests) == sent
    assert okta.users[second]["status"] == "STAGED"


def test_a_used_up_bucket_holds_calls_only_until_its_reset() -> None:
    limits = RateLimits(clock=lambda: 1_800_000_000.0)
    limits.update(
        "GET /api/v1/users",
        httpx.Headers(
            {
                "X-Rate-Limit-Limit": "10",
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Reset": "1800000005",
            }
        ),
    )
    assert limits.wait_before("GET /api/v1/users") == pytest.approx(6.0)
    assert limits.wait_before("POST /api/v1/users") == 0.0
    limits.clock = lambda: 1_800_000_007.0
    assert limits.wait_before("GET /api/v1/users") == 0.0


# -- credentials ------------------------------------------------------------------------------


async def test_the_client_assertion_names_the_app_and_the_token_endpoint_and_is_used_once(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    okta.add_user(**profile())
    for _ in range(3):
        await call(adapter, "find_user", user=LOGIN)
    okta.expire_tokens()
    await call(adapter, "find_user", user=LOGIN)

    token_requests = okta.requests_to("/oauth2/v1/token")
    assert len(token_requests) == 2  # one token for three calls, one more once it expired
    assertions = [
        dict(pair.split("=", 1) for pair in r.body.decode().split("&"))["client_assertion"]
        for r in token_requests
    ]
    claims = [jwt.decode(a, options={"verify_signature": False}) for a in assertions]
    assert {c["aud"] for c in claims} == {f"{okta.url}/oauth2/v1/token"}
    assert {(c["iss"], c["sub"]) for c in claims} == {(FakeOkta.client_id, FakeOkta.client_id)}
    assert claims[0]["jti"] != claims[1]["jti"]
    assert all(c["exp"] - c["iat"] <= 3600 for c in claims)
    assert jwt.get_unverified_header(assertions[0])["kid"] == "fake-kid-1"


async def test_an_api_token_okta_refuses_is_an_alert_worthy_permanent_error(
    okta: FakeOkta, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKTA_API_TOKEN", "00revoked-token")
    adapter = make_adapter(okta, "api_token")
    await adapter.start()
    try:
        with pytest.raises(CredentialsError) as caught:
            await call(adapter, "find_user", user=LOGIN)
    finally:
        await adapter.close()
    assert caught.value.alert is True
    assert caught.value.vendor_code == "E0000011"
    assert "00revoked-token" not in str(caught.value)


async def test_a_key_okta_does_not_know_is_an_alert_naming_what_to_check(okta: FakeOkta) -> None:
    okta.client.public_key = _other_public_key()
    adapter = make_adapter(okta)
    await adapter.start()
    try:
        with pytest.raises(CredentialsError, match=r"signature is invalid.*client_id") as caught:
            await call(adapter, "find_user", user=LOGIN)
    finally:
        await adapter.close()
    assert caught.value.alert is True
    assert caught.value.vendor_code == "invalid_client"


def _other_public_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


async def test_a_scope_not_granted_to_the_app_is_an_alert_naming_the_scopes(
    okta: FakeOkta,
) -> None:
    okta.client.scopes = {"okta.users.read"}
    adapter = make_adapter(okta)
    await adapter.start()
    try:
        with pytest.raises(CredentialsError, match=r"grant the scopes .*okta\.users\.manage"):
            await call(adapter, "find_user", user=LOGIN)
    finally:
        await adapter.close()


async def test_a_token_without_the_scope_of_the_call_is_an_alert_naming_the_scope(
    okta: FakeOkta,
) -> None:
    user_id = okta.add_user(**profile())
    adapter = make_adapter(okta, auth_extra={"scopes": ["okta.users.read"]})
    await adapter.start()
    try:
        assert (await call(adapter, "find_user", user=user_id))["found"] is True
        with pytest.raises(CredentialsError, match=r"grant the scope okta\.users\.manage"):
            await call(adapter, "deactivate_user", user=user_id)
    finally:
        await adapter.close()
    assert okta.users[user_id]["status"] == "ACTIVE"


async def test_an_app_that_requires_dpop_is_an_alert_saying_how_to_fix_it(okta: FakeOkta) -> None:
    okta.client.require_dpop = True
    adapter = make_adapter(okta)
    await adapter.start()
    try:
        with pytest.raises(CredentialsError, match="DPoP"):
            await call(adapter, "find_user", user=LOGIN)
    finally:
        await adapter.close()


async def test_a_refused_access_token_is_replaced_once_then_the_refusal_is_an_alert(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    refused = Reply(401, okta_error("E0000011", "Invalid token provided"))
    okta.fail_next(f"/api/v1/users/{LOGIN}", refused, refused)

    with pytest.raises(CredentialsError):
        await call(adapter, "find_user", user=LOGIN)

    assert len(okta.requests_to("/oauth2/v1/token")) == 2


def test_an_empty_ca_bundle_or_proxy_from_the_environment_means_unset(okta: FakeOkta) -> None:
    adapter = OktaAdapter.from_config({**settings(okta), "ca_bundle": "", "proxy": ""})
    assert adapter.settings.ca_bundle is None  # type: ignore[attr-defined]
    assert adapter.settings.proxy is None  # type: ignore[attr-defined]


def test_every_setting_is_described_and_unknown_ones_are_refused() -> None:
    for model in (OktaSettings, ApiTokenAuth, PrivateKeyJwtAuth):
        assert all(f.description for f in model.model_fields.values()), model.__name__
        assert model.model_config.get("extra") == "forbid"


async def test_a_login_okta_echoes_changed_is_masked_in_the_error(
    okta: FakeOkta, adapter: OktaAdapter
) -> None:
    # Okta's summaries quote what was sent; a gateway may change its case or escape it.
    okta.fail_next(
        "/api/v1/users",
        Reply(
            400,
            okta_error(
                "E0000001",
                f"Api validation failed: login {LOGIN.upper()}",
                f"see /api/v1/users?filter=profile.login+eq+%22{LOGIN.replace('@', '%40')}%22",
            ),
        ),
        method="POST",
    )

    with pytest.raises(PermanentError) as caught:
        await call(adapter, "create_user", profile=profile())

    text = str(caught.value).lower()
    assert "ada.quill" not in text.replace("%40", "@")
    assert "***" in text


async def test_the_proxy_tunnels_every_call_to_the_org_and_its_token_endpoint(
    okta: FakeOkta, tunnel_proxy: TunnelProxy
) -> None:
    adapter = make_adapter(okta, proxy=tunnel_proxy.url)
    await adapter.start()
    try:
        okta.add_user(**profile())
        assert (await call(adapter, "find_user", user=LOGIN))["found"] is True
    finally:
        await adapter.close()
    assert set(tunnel_proxy.tunnels) == {urlsplit(okta.url).netloc}
