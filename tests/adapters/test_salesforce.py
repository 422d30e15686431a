"""The ``salesforce`` adapter against a fake Salesforce over real HTTPS on loopback."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from platypus.adapter import AdapterRegistry, Request
from platypus.exceptions import (
    ConfigurationError,
    MissingDependencyError,
    PermanentError,
    RetryableError,
)
from platypus.logging import configure_logging
from platypus_adapters.salesforce import (
    MISSING_RECORD_CODES,
    PERMANENT_CODES,
    RETRYABLE_CODES,
    ApiUsage,
    JwtAuth,
    LoginRefusedError,
    SalesforceAdapter,
    SalesforceSettings,
    bind,
    bind_names,
    jwt_audience,
    login_base_url,
    parse_limit_info,
)
from platypus_adapters.salesforce.settings import QueryResult
from tests.adapters.contract import AdapterContract, Failure
from tests.adapters.echoes import ECHOES, EMAIL, NAME, assert_masked
from tests.fakes.proxy import TunnelProxy
from tests.fakes.salesforce import FakeSalesforce

USERNAME = "integration@acme.test"
PASSWORD = "sf-contract-password-8c2d"
SECURITY_TOKEN = "sf-security-token-77aa"
CONSUMER_KEY = "3MVG9-fake-consumer-key"
CC_KEY = "3MVG9-client-credentials-app"
CC_SECRET = "sf-consumer-secret-0c5e1f"
WEB_KEY = "3MVG9-web-server-app"
WEB_SECRET = "sf-web-app-secret-93ab"
RUN_AS = "run-as@acme.test"


@pytest.fixture(scope="module")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A private key file for the adapter and the public key the fake app holds."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("jwt") / "sf-jwt.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public


@pytest.fixture(scope="module")
def _sf_server(jwt_keys: tuple[Path, bytes]) -> Iterator[FakeSalesforce]:
    # One server for the module: starting uvicorn with TLS costs ~0.2 s.
    with FakeSalesforce() as server:
        server.add_user(USERNAME, PASSWORD, SECURITY_TOKEN)
        server.add_jwt_app(CONSUMER_KEY, jwt_keys[1], USERNAME)
        server.add_client_credentials_app(CC_KEY, CC_SECRET, RUN_AS)
        yield server


@pytest.fixture
def fake_sf(
    _sf_server: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeSalesforce]:
    """The fake org, emptied, with the password and token in the environment."""
    monkeypatch.setenv("SF_PASSWORD", PASSWORD)
    monkeypatch.setenv("SF_TOKEN", SECURITY_TOKEN)
    monkeypatch.setenv("SF_CONSUMER_SECRET", CC_SECRET)
    monkeypatch.setenv("SF_WEB_SECRET", WEB_SECRET)
    _sf_server.reset()
    yield _sf_server
    _sf_server.reset()


def _text(path: Path) -> str:
    return path.read_text().strip()


def client_credentials_auth(domain: str = "acme.my") -> dict[str, Any]:
    return {
        "type": "client_credentials",
        "consumer_key": CC_KEY,
        "consumer_secret": {"env": "SF_CONSUMER_SECRET"},
        "domain": domain,
    }


def refresh_token_auth(token_file: Path, domain: str = "login") -> dict[str, Any]:
    return {
        "type": "refresh_token",
        "consumer_key": WEB_KEY,
        "consumer_secret": {"env": "SF_WEB_SECRET"},
        "refresh_token": {"file": str(token_file)},
        "domain": domain,
    }


@pytest.fixture
def refresh_token_file(fake_sf: FakeSalesforce, tmp_path: Path) -> Path:
    """A file holding a refresh token the web-server app issued for the user."""
    path = tmp_path / "sf-refresh-token"
    path.write_text(fake_sf.issue_refresh_token(WEB_KEY, WEB_SECRET, USERNAME) + "\n")
    return path


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    root.setLevel(logging.DEBUG)
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def password_auth(domain: str = "login") -> dict[str, Any]:
    return {
        "type": "password",
        "username": USERNAME,
        "password": {"env": "SF_PASSWORD"},
        "security_token": {"env": "SF_TOKEN"},
        "domain": domain,
    }


def jwt_auth(key_file: Path, domain: str = "login") -> dict[str, Any]:
    return {
        "type": "jwt",
        "consumer_key": CONSUMER_KEY,
        "username": USERNAME,
        "private_key": {"file": str(key_file)},
        "domain": domain,
    }


def make_adapter(fake: FakeSalesforce, auth: dict[str, Any] | None = None, **settings: Any) -> Any:
    config = {
        "auth": auth or password_auth(),
        "login_url": fake.url,
        "ca_bundle": str(fake.ca_path),
        # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
        # fake for longer than a tight timeout. Timeout cases set their own (1 s).
        "timeout": 5.0,
        **settings,
    }
    return SalesforceAdapter.from_config(config, connection="crm")


def upsert(event_id: str, **fields: Any) -> Request:
    return Request(
        action="upsert",
        payload={"External_Id__c": event_id, "Name": f"Acme {event_id}", **fields},
        params={"sobject": "Account", "external_id_field": "External_Id__c"},
        event_id=event_id,
        flow="accounts",
        step="upsert",
    )


def create(event_id: str) -> Request:
    return Request(
        action="create",
        payload={"External_Id__c": event_id, "Name": f"Acme {event_id}"},
        params={"sobject": "Account"},
        event_id=event_id,
        flow="accounts",
        step="create",
    )


def query(soql: str, **binds: Any) -> Request:
    return Request(action="query", payload=binds, params={"soql": soql}, event_id="evt-q")


class TestContract(AdapterContract):
    """The contract with upsert by external id: idempotent at Salesforce."""

    secret: ClassVar[str] = PASSWORD

    @pytest.fixture
    def vendor(self, fake_sf: FakeSalesforce) -> FakeSalesforce:
        return fake_sf

    def make_adapter(self, vendor: FakeSalesforce) -> Any:
        return make_adapter(vendor, timeout=1.0)  # the "timeout" failure answers after 2 s

    def write(self, event_id: str) -> Request:
        return upsert(event_id)

    def record_count(self, vendor: FakeSalesforce, request: Request) -> int:
        return vendor.count("Account", External_Id__c=request.payload["External_Id__c"])

    def fail_next(self, vendor: FakeSalesforce, failure: Failure) -> None:
        if failure == "permanent":
            # Salesforce does not echo passwords; the fake does, to prove scrubbing.
            vendor.fail_next("INVALID_FIELD", message=f"No such column 'Pw' {PASSWORD}")
        elif failure == "retryable":
            vendor.fail_next("SERVER_UNAVAILABLE")
        elif failure == "timeout":
            vendor.delay_next(2.0)  # past the contract adapters' 1 s timeout
        elif failure == "reset":
            vendor.reset_next()
        else:
            vendor.expire_sessions()


class TestCreateContract(TestContract):
    """The contract with create: not idempotent, so the runtime's ledger guards it."""

    def write(self, event_id: str) -> Request:
        return create(event_id)


class TestClientCredentialsContract(TestContract):
    """The contract with the OAuth 2.0 client credentials flow (a My Domain, a Run As user)."""

    secret: ClassVar[str] = CC_SECRET

    def make_adapter(self, vendor: FakeSalesforce) -> Any:
        return make_adapter(vendor, client_credentials_auth(), timeout=1.0)


class TestJwtContract(TestContract):
    """The contract with the JWT bearer flow, its token request sent to a My Domain."""

    @pytest.fixture
    def vendor(self, fake_sf: FakeSalesforce, jwt_keys: tuple[Path, bytes]) -> FakeSalesforce:
        self.key_file = jwt_keys[0]
        self.secret = jwt_keys[0].read_text().splitlines()[1]  # a line of the private key
        return fake_sf

    def make_adapter(self, vendor: FakeSalesforce) -> Any:
        return make_adapter(vendor, jwt_auth(self.key_file, "acme.my"), timeout=1.0)


class TestRefreshTokenContract(TestContract):
    """The contract with the OAuth 2.0 refresh token flow."""

    @pytest.fixture
    def vendor(self, fake_sf: FakeSalesforce, refresh_token_file: Path) -> FakeSalesforce:
        self.token_file = refresh_token_file
        self.secret = _text(refresh_token_file)
        return fake_sf

    def make_adapter(self, vendor: FakeSalesforce) -> Any:
        return make_adapter(vendor, refresh_token_auth(self.token_file), timeout=1.0)


# -- settings and unit-level pieces -------------------------------------------------


def test_the_registry_finds_the_adapter() -> None:
    assert AdapterRegistry.default().get("salesforce") is SalesforceAdapter


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("login", "https://login.salesforce.com"),
        ("test", "https://test.salesforce.com"),
        ("acme.my", "https://acme.my.salesforce.com"),
    ],
)
def test_the_login_host_follows_the_domain_production_or_sandbox(
    domain: str, expected: str
) -> None:
    settings = SalesforceSettings.model_validate({"auth": password_auth(domain)})
    assert login_base_url(settings) == expected


def test_login_url_overrides_the_login_host() -> None:
    settings = SalesforceSettings.model_validate(
        {"auth": password_auth("test"), "login_url": "https://127.0.0.1:8443/"}
    )
    assert login_base_url(settings) == "https://127.0.0.1:8443"


def test_settings_defaults() -> None:
    settings = SalesforceSettings.model_validate({"auth": password_auth()})
    assert settings.api_version == "59.0"
    assert settings.max_workers == 8
    assert settings.max_api_usage_share == 0.9
    assert settings.timeout == 30.0


@pytest.mark.parametrize(
    "bad",
    [
        {"auth": password_auth(), "surprise": 1},
        {"auth": {**password_auth(), "type": "oauth"}},
        {"auth": password_auth(), "api_version": "v59.0"},
        {"auth": password_auth(), "login_url": "http://127.0.0.1:80"},
        {"auth": password_auth(), "max_api_usage_share": 1.5},
        {"auth": password_auth(), "max_workers": 0},
        {"auth": {**password_auth(), "domain": "login.salesforce.com/x"}},
        {
            "auth": {
                "type": "session",
                "instance_url": "https://x.my.salesforce.com/path",
                "session_id": {"env": "SID"},
            }
        },
    ],
)
def test_bad_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SalesforceSettings.model_validate(bad)


def test_every_settings_field_is_described() -> None:
    from platypus_adapters.salesforce import JwtAuth, PasswordAuth, SessionAuth

    for model in (SalesforceSettings, PasswordAuth, JwtAuth, SessionAuth):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"


def test_the_actions_say_which_writes_salesforce_deduplicates() -> None:
    actions = SalesforceAdapter.actions
    assert actions["upsert"].idempotent
    assert actions["update"].idempotent
    assert not actions["create"].idempotent
    assert not actions["query"].writes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("api-usage=18/15000", ApiUsage(18, 15000)),
        ("api-usage=25/5000; per-app-api-usage=17/250(appName=sample)", ApiUsage(25, 5000)),
        ("per-app-api-usage=17/250(appName=sample)", None),
        ("", None),
        (None, None),
    ],
)
def test_sforce_limit_info_is_parsed(header: str | None, expected: ApiUsage | None) -> None:
    assert parse_limit_info(header) == expected


def test_soql_binds_are_escaped_literals() -> None:
    soql = "SELECT Id FROM Account WHERE Name = :name AND Rank__c = :rank AND Ok__c = :ok"
    assert bind(soql, {"name": "O'Brien \\ Co", "rank": 3, "ok": True}) == (
        "SELECT Id FROM Account WHERE Name = 'O\\'Brien \\\\ Co' AND Rank__c = 3 AND Ok__c = true"
    )
    assert bind("SELECT Id FROM A WHERE Id IN :ids", {"ids": ["a", "b"]}) == (
        "SELECT Id FROM A WHERE Id IN ('a', 'b')"
    )
    assert bind("SELECT Id FROM A WHERE X = null", {}) == "SELECT Id FROM A WHERE X = null"


def test_soql_bind_leaves_string_literals_and_date_literals_alone() -> None:
    soql = "SELECT Id FROM Case WHERE Subject = 'a :b' AND CreatedDate = LAST_N_DAYS:30"
    assert bind(soql, {}) == soql


def test_bind_names_are_the_binds_outside_string_literals_each_once() -> None:
    soql = (
        "SELECT Id FROM Case WHERE Subject = 'a :b' AND Owner = :owner "
        "AND CreatedDate = LAST_N_DAYS:30 AND (Owner = :owner OR Queue__c IN :queues)"
    )
    assert bind_names(soql) == ["owner", "queues"]


@pytest.mark.parametrize(
    ("binds", "message"),
    [({}, "bind :name has no value"), ({"name": {"a": 1}}, "has no SOQL literal")],
)
def test_soql_bind_errors_name_the_bind(binds: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bind("SELECT Id FROM A WHERE Name = :name", binds)


# -- error classification ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("REQUEST_LIMIT_EXCEEDED", 403, True),
        ("UNABLE_TO_LOCK_ROW", 400, True),
        ("SERVER_UNAVAILABLE", 503, True),
        ("UNKNOWN_EXCEPTION", 500, True),
        ("UNKNOWN_EXCEPTION", 502, True),
        ("INVALID_FIELD", 400, False),
        ("REQUIRED_FIELD_MISSING", 400, False),
        ("DUPLICATE_VALUE", 400, False),
        ("MALFORMED_ID", 400, False),
        ("ENTITY_IS_DELETED", 404, False),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", 400, False),
        ("INSUFFICIENT_ACCESS_OR_READONLY", 403, False),
        ("INVALID_CROSS_REFERENCE_KEY", 400, True),
    ],
)
async def test_salesforce_error_codes_are_classified(
    fake_sf: FakeSalesforce, code: str, status: int, retryable: bool
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        fake_sf.fail_next(code, status=status, message=f"scripted {code}")
        with pytest.raises(RetryableError if retryable else PermanentError) as caught:
            await adapter.call(upsert("evt-classify"))
    finally:
        await adapter.close()
    assert caught.value.vendor_code == code
    assert caught.value.status_code == status
    assert code in str(caught.value)


def test_the_code_tables_cover_the_issue() -> None:
    assert set(MISSING_RECORD_CODES) == {"INVALID_CROSS_REFERENCE_KEY"}
    assert set(RETRYABLE_CODES) == {
        "REQUEST_LIMIT_EXCEEDED",
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
    }
    assert set(PERMANENT_CODES) == {
        "INVALID_FIELD",
        "REQUIRED_FIELD_MISSING",
        "DUPLICATE_VALUE",
        "MALFORMED_ID",
        "ENTITY_IS_DELETED",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    }


async def test_a_real_validation_error_from_the_org_is_permanent(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        request = Request(
            action="create", payload={"Phone": "1"}, params={"sobject": "Account"}, event_id="e"
        )
        with pytest.raises(PermanentError, match=r"REQUIRED_FIELD_MISSING.*fields: Name"):
            await adapter.call(request)
    finally:
        await adapter.close()


# -- sessions ---------------------------------------------------------------------


async def test_an_expired_session_logs_in_once_more_and_the_call_succeeds(
    fake_sf: FakeSalesforce,
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        fake_sf.expire_sessions()
        result = await adapter.call(upsert("evt-expired"))
    finally:
        await adapter.close()
    assert result["created"] is True
    assert [login["kind"] for login in fake_sf.logins] == ["soap", "soap"]
    assert adapter.logins == 2


async def test_invalid_session_twice_in_a_row_is_permanent_after_one_new_login(
    fake_sf: FakeSalesforce,
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        fake_sf.fail_next("INVALID_SESSION_ID", times=2)
        with pytest.raises(PermanentError, match="again right after a new login") as caught:
            await adapter.call(upsert("evt-expired-twice"))
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "INVALID_SESSION_ID"
    assert len(fake_sf.logins) == 2  # the first login and exactly one more
    assert fake_sf.count("Account") == 0


async def test_session_auth_uses_the_given_session_and_cannot_renew_it(
    fake_sf: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = fake_sf.issue_session()
    monkeypatch.setenv("SF_SESSION", session_id)
    auth = {"type": "session", "instance_url": fake_sf.url, "session_id": {"env": "SF_SESSION"}}
    adapter = make_adapter(fake_sf, auth)
    await adapter.start()
    try:
        result = await adapter.call(upsert("evt-session"))
        fake_sf.expire_sessions()
        with pytest.raises(PermanentError, match="cannot be renewed") as caught:
            await adapter.call(upsert("evt-session-2"))
    finally:
        await adapter.close()
    assert result["created"] is True
    assert fake_sf.logins == []
    assert session_id not in str(caught.value)
    assert fake_sf.requests[0].headers["authorization"] == f"Bearer {session_id}"


async def test_password_login_goes_through_soap_with_password_and_token(
    fake_sf: FakeSalesforce,
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    await adapter.close()
    login = fake_sf.requests[0]
    assert login.path == "/services/Soap/u/59.0"
    assert login.headers["soapaction"] == "login"
    assert f"{PASSWORD}{SECURITY_TOKEN}".encode() in login.body
    assert fake_sf.logins == [{"kind": "soap", "username": USERNAME, "version": "59.0"}]


async def test_refused_credentials_fail_start_without_showing_them(
    fake_sf: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_PASSWORD", "wrong-password-31f")
    adapter = make_adapter(fake_sf)
    with pytest.raises(ConfigurationError, match="INVALID_LOGIN") as caught:
        await adapter.start()
    assert "wrong-password-31f" not in str(caught.value)
    assert SECURITY_TOKEN not in str(caught.value)


async def test_a_missing_secret_fails_start_naming_the_variable(
    fake_sf: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SF_TOKEN")
    with pytest.raises(ConfigurationError, match=r"auth.security_token.*SF_TOKEN"):
        await make_adapter(fake_sf).start()


@pytest.mark.parametrize("domain", ["login", "test"])
async def test_jwt_bearer_login_signs_an_assertion_the_org_verifies(
    fake_sf: FakeSalesforce, jwt_keys: tuple[Path, bytes], domain: str
) -> None:
    fake_sf.sandbox = domain == "test"
    adapter = make_adapter(fake_sf, jwt_auth(jwt_keys[0], domain))
    await adapter.start()
    try:
        result = await adapter.call(upsert("evt-jwt"))
        fake_sf.expire_sessions()
        await adapter.call(upsert("evt-jwt-2"))
    finally:
        await adapter.close()
    assert result["created"] is True
    assert fake_sf.logins[0] == {
        "kind": "jwt",
        "username": USERNAME,
        "aud": f"https://{domain}.salesforce.com",
    }
    assert len(fake_sf.logins) == 2  # renewed after the session expired
    assert fake_sf.requests[0].path == "/services/oauth2/token"


@pytest.mark.parametrize(
    ("domain", "sandbox", "audience"),
    [
        ("acme.my", False, "https://login.salesforce.com"),
        ("acme--uat.sandbox.my", True, "https://test.salesforce.com"),
    ],
)
async def test_jwt_with_a_my_domain_sends_the_login_server_as_audience(
    fake_sf: FakeSalesforce,
    jwt_keys: tuple[Path, bytes],
    domain: str,
    sandbox: bool,
    audience: str,
) -> None:
    # simple-salesforce #672: the My Domain is where the request goes, not the audience.
    fake_sf.sandbox = sandbox
    adapter = make_adapter(fake_sf, jwt_auth(jwt_keys[0], domain))
    await adapter.start()
    try:
        await adapter.call(upsert("evt-my-domain"))
    finally:
        await adapter.close()
    assert fake_sf.logins == [{"kind": "jwt", "username": USERNAME, "aud": audience}]
    assert fake_sf.requests[0].path == "/services/oauth2/token"


@pytest.mark.parametrize(
    ("domain", "audience"),
    [
        ("login", "https://login.salesforce.com"),
        ("test", "https://test.salesforce.com"),
        ("acme.my", "https://login.salesforce.com"),
        ("acme.my.salesforce.com", "https://login.salesforce.com"),
        ("acme--uat.sandbox.my", "https://test.salesforce.com"),
    ],
)
def test_the_jwt_audience_is_the_login_server_of_production_or_sandboxes(
    domain: str, audience: str
) -> None:
    auth = JwtAuth.model_validate(jwt_auth(Path("k.pem"), domain))
    assert jwt_audience(auth) == audience
    custom = auth.model_copy(update={"audience": "https://acme.my.site.com/customers"})
    assert jwt_audience(custom) == "https://acme.my.site.com/customers"


async def test_a_jwt_whose_audience_the_org_does_not_accept_says_which_audience(
    fake_sf: FakeSalesforce, jwt_keys: tuple[Path, bytes]
) -> None:
    fake_sf.sandbox = True  # a sandbox, but the connection says production
    with pytest.raises(ConfigurationError, match=r"audience is invalid.*auth\.audience"):
        await make_adapter(fake_sf, jwt_auth(jwt_keys[0], "acme.my")).start()


async def test_an_expired_assertion_is_refused_and_the_message_points_at_the_clock(
    fake_sf: FakeSalesforce, jwt_keys: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from platypus_adapters.salesforce import adapter as module

    late = time.time() - 600  # this machine's clock is ten minutes behind
    monkeypatch.setattr(module.time, "time", lambda: late)
    with pytest.raises(ConfigurationError, match=r"expired authorization code.*clock"):
        await make_adapter(fake_sf, jwt_auth(jwt_keys[0])).start()


async def test_a_jwt_for_a_user_the_app_does_not_pre_authorize_is_refused(
    fake_sf: FakeSalesforce, jwt_keys: tuple[Path, bytes]
) -> None:
    auth = {**jwt_auth(jwt_keys[0]), "username": "someone.else@acme.test"}
    with pytest.raises(ConfigurationError, match="user hasn't approved this consumer"):
        await make_adapter(fake_sf, auth).start()


async def test_client_credentials_log_in_as_the_run_as_user_through_the_my_domain(
    fake_sf: FakeSalesforce,
) -> None:
    adapter = make_adapter(fake_sf, client_credentials_auth())
    await adapter.start()
    try:
        result = await adapter.call(upsert("evt-cc"))
    finally:
        await adapter.close()
    assert result["created"] is True
    assert fake_sf.logins == [{"kind": "client_credentials", "username": RUN_AS}]
    token_request = fake_sf.requests[0]
    assert token_request.path == "/services/oauth2/token"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(token_request.body.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": CC_KEY,
        "client_secret": CC_SECRET,
    }


@pytest.mark.parametrize(
    ("change", "code", "hint"),
    [
        ({"consumer_key": "3MVG9-nobody"}, "invalid_client_id", "auth.consumer_key"),
        ({"consumer_secret": {"env": "SF_WEB_SECRET"}}, "invalid_client", "auth.consumer_secret"),
    ],
)
async def test_refused_client_credentials_fail_start_naming_what_to_fix(
    fake_sf: FakeSalesforce, change: dict[str, Any], code: str, hint: str
) -> None:
    adapter = make_adapter(fake_sf, {**client_credentials_auth(), **change})
    with pytest.raises(ConfigurationError, match=f"{code}.*{hint}") as caught:
        await adapter.start()
    assert CC_SECRET not in str(caught.value)
    assert WEB_SECRET not in str(caught.value)


async def test_client_credentials_without_a_run_as_user_are_refused(
    fake_sf: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_sf.add_client_credentials_app("3MVG9-no-run-as", "s3cret-no-run-as", None)
    monkeypatch.setenv("SF_CONSUMER_SECRET", "s3cret-no-run-as")
    auth = {**client_credentials_auth(), "consumer_key": "3MVG9-no-run-as"}
    with pytest.raises(ConfigurationError, match=r"no client credentials user enabled.*Run As"):
        await make_adapter(fake_sf, auth).start()


@pytest.mark.parametrize("domain", ["login", "test", "TEST", ""])
def test_client_credentials_need_a_my_domain(domain: str) -> None:
    with pytest.raises(ValidationError, match="My Domain"):
        SalesforceSettings.model_validate({"auth": client_credentials_auth(domain)})


async def test_refresh_token_auth_gets_a_session_for_the_user_and_renews_it(
    fake_sf: FakeSalesforce, refresh_token_file: Path
) -> None:
    adapter = make_adapter(fake_sf, refresh_token_auth(refresh_token_file))
    await adapter.start()
    try:
        await adapter.call(upsert("evt-refresh-1"))
        fake_sf.expire_sessions()
        await adapter.call(upsert("evt-refresh-2"))
    finally:
        await adapter.close()
    assert [login["kind"] for login in fake_sf.logins] == ["refresh_token"] * 2
    form = dict(parse_qsl(fake_sf.requests[0].body.decode()))
    assert form["grant_type"] == "refresh_token"
    assert form["client_secret"] == WEB_SECRET


async def test_a_rotated_refresh_token_is_used_next_and_written_back_to_its_file(
    fake_sf: FakeSalesforce, refresh_token_file: Path
) -> None:
    fake_sf.rotate_refresh_tokens = True
    first = _text(refresh_token_file)
    adapter = make_adapter(fake_sf, refresh_token_auth(refresh_token_file))
    await adapter.start()
    try:
        fake_sf.expire_sessions()
        await adapter.call(upsert("evt-rotated"))  # a second refresh, with the new token
    finally:
        await adapter.close()
    second = _text(refresh_token_file)
    assert second != first
    assert len(fake_sf.logins) == 2
    # A restart reads the file: the token there is the one Salesforce still honours.
    again = make_adapter(fake_sf, refresh_token_auth(refresh_token_file))
    await again.start()
    await again.close()
    assert len(fake_sf.logins) == 3


async def test_a_revoked_refresh_token_is_an_alert_worthy_permanent_error(
    fake_sf: FakeSalesforce, refresh_token_file: Path
) -> None:
    adapter = make_adapter(fake_sf, refresh_token_auth(refresh_token_file))
    await adapter.start()
    try:
        fake_sf.revoke_refresh_tokens()
        fake_sf.expire_sessions()
        with pytest.raises(PermanentError, match="expired access/refresh token") as caught:
            await adapter.call(upsert("evt-revoked"))
    finally:
        await adapter.close()
    assert isinstance(caught.value, LoginRefusedError)
    assert caught.value.alert is True
    assert _text(refresh_token_file) not in str(caught.value)


@pytest.mark.parametrize("kind", ["password", "jwt", "client_credentials", "refresh_token"])
async def test_invalid_session_id_logs_in_again_with_every_auth_kind(
    fake_sf: FakeSalesforce, jwt_keys: tuple[Path, bytes], refresh_token_file: Path, kind: str
) -> None:
    auth = {
        "password": password_auth(),
        "jwt": jwt_auth(jwt_keys[0], "acme.my"),
        "client_credentials": client_credentials_auth(),
        "refresh_token": refresh_token_auth(refresh_token_file),
    }[kind]
    adapter = make_adapter(fake_sf, auth)
    await adapter.start()
    try:
        await adapter.call(upsert("evt-before"))
        fake_sf.fail_next("INVALID_SESSION_ID")
        result = await adapter.call(upsert("evt-after"))
    finally:
        await adapter.close()
    assert result["created"] is True
    assert adapter.logins == 2
    assert len(fake_sf.logins) == 2


@pytest.mark.parametrize("version", ["65.0", "66.0"])
def test_password_auth_is_refused_from_api_65_saying_what_to_use(version: str) -> None:
    with pytest.raises(ValidationError, match="SOAP login") as caught:
        SalesforceSettings.model_validate({"auth": password_auth(), "api_version": version})
    message = str(caught.value)
    assert "client_credentials" in message
    assert "jwt" in message


async def test_an_org_without_soap_login_refuses_password_auth_at_start(
    fake_sf: FakeSalesforce,
) -> None:
    fake_sf.soap_login = False  # new orgs: SOAP API login() off by default
    with pytest.raises(ConfigurationError, match="INVALID_OPERATION"):
        await make_adapter(fake_sf, password_auth()).start()


async def test_password_auth_warns_that_it_is_retiring(
    fake_sf: FakeSalesforce, captured: io.StringIO
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    await adapter.close()
    assert "salesforce.password_auth_retiring" in captured.getvalue()


async def test_a_jwt_signed_with_another_key_is_refused(
    fake_sf: FakeSalesforce, tmp_path: Path
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "other.key"
    key_file.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigurationError, match="invalid_grant"):
        await make_adapter(fake_sf, jwt_auth(key_file)).start()


async def test_a_private_key_that_is_no_key_is_a_configuration_error(
    fake_sf: FakeSalesforce, tmp_path: Path
) -> None:
    key_file = tmp_path / "bad.key"
    key_file.write_text("not a key")
    with pytest.raises(ConfigurationError, match="cannot sign the JWT"):
        await make_adapter(fake_sf, jwt_auth(key_file)).start()


async def test_an_unreachable_org_at_start_defers_the_login_to_the_first_call(
    fake_sf: FakeSalesforce,
) -> None:
    adapter = make_adapter(fake_sf, login_url="https://127.0.0.1:9")
    await adapter.start()  # no exception: a retryable failure
    try:
        with pytest.raises(RetryableError, match="login"):
            await adapter.call(upsert("evt-unreachable"))
    finally:
        await adapter.close()


# -- API version, usage and the worker pool ----------------------------------------


async def test_the_api_version_is_in_every_url(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf, api_version="58.0")
    await adapter.start()
    try:
        await adapter.call(upsert("evt-version"))
        await adapter.call(query("SELECT Id FROM Account"))
    finally:
        await adapter.close()
    paths = [r.path for r in fake_sf.requests]
    assert paths[0] == "/services/Soap/u/58.0"
    assert paths[1:] == [
        "/services/data/v58.0/sobjects/Account/External_Id__c/evt-version",
        "/services/data/v58.0/query/",
    ]


async def test_api_usage_is_read_from_sforce_limit_info(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf)
    fake_sf.set_api_usage(100, 15000)
    assert adapter.api_usage is None
    await adapter.start()
    try:
        await adapter.call(upsert("evt-usage"))
    finally:
        await adapter.close()
    assert adapter.api_usage == ApiUsage(101, 15000)
    metrics = adapter.metrics()
    assert metrics["api_usage_used"] == 101
    assert metrics["api_usage_limit"] == 15000
    assert metrics["api_usage_share"] == pytest.approx(101 / 15000)


async def test_calls_back_off_once_the_usage_share_is_reached(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf, max_api_usage_share=0.9, api_usage_recheck=0.3)
    fake_sf.set_api_usage(94, 100)
    await adapter.start()
    try:
        await adapter.call(upsert("evt-share-1"))  # answered with api-usage=95/100
        sent = len(fake_sf.requests)
        with pytest.raises(RetryableError, match="95/100") as caught:
            await adapter.call(upsert("evt-share-2"))
        assert len(fake_sf.requests) == sent  # backed off without calling
        assert caught.value.retry_after is not None
        assert 0 < caught.value.retry_after <= 0.3
        await asyncio.sleep(0.35)
        await adapter.call(upsert("evt-share-3"))  # the next check lets one call through
    finally:
        await adapter.close()
    assert fake_sf.count("Account", External_Id__c="evt-share-3") == 1


async def test_the_worker_pool_bounds_requests_in_flight(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf, max_workers=2, timeout=5)
    await adapter.start()
    fake_sf.set_delay(0.2)
    started = time.monotonic()
    try:
        results = await asyncio.gather(
            *(adapter.call(upsert(f"evt-pool-{i}")) for i in range(6)),
            # The event loop stays free while the workers wait on Salesforce.
            asyncio.sleep(0.05),
        )
    finally:
        await adapter.close()
    # Never more than the pool (how many overlap below that is up to the scheduler).
    assert 1 <= fake_sf.max_in_flight <= 2
    assert time.monotonic() - started >= 0.6  # 6 calls, 2 at a time, 0.2 s each
    assert all(r["created"] for r in results[:6])


# -- actions ----------------------------------------------------------------------


async def test_upsert_twice_leaves_one_record_and_says_whether_it_created(
    fake_sf: FakeSalesforce,
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        first = await adapter.call(upsert("evt-twice"))
        second = await adapter.call(upsert("evt-twice", Phone="555"))
    finally:
        await adapter.close()
    assert first == {"id": second["id"], "created": True}
    assert second["created"] is False
    assert fake_sf.count("Account", External_Id__c="evt-twice") == 1
    assert fake_sf.records("Account")[0]["Phone"] == "555"


async def test_upsert_before_api_46_returns_no_id_on_update(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf, api_version="45.0")
    await adapter.start()
    try:
        await adapter.call(upsert("evt-old"))
        second = await adapter.call(upsert("evt-old"))
    finally:
        await adapter.close()
    assert second == {"id": None, "created": False}


async def test_upsert_escapes_the_external_id_in_the_url(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        await adapter.call(upsert("a/b c"))
    finally:
        await adapter.close()
    assert fake_sf.requests[-1].path.endswith("/External_Id__c/a/b c")  # decoded by uvicorn
    assert fake_sf.count("Account", External_Id__c="a/b c") == 1


async def test_upsert_without_the_external_id_value_is_permanent(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        request = Request(
            action="upsert",
            payload={"Name": "x"},
            params={"sobject": "Account", "external_id_field": "External_Id__c"},
        )
        with pytest.raises(PermanentError, match="External_Id__c"):
            await adapter.call(request)
    finally:
        await adapter.close()
    assert len(fake_sf.requests) == 1  # the login only


async def test_create_then_update_by_id(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        created = await adapter.call(create("evt-create"))
        update = Request(
            action="update",
            payload={"Id": created["id"], "Phone": "555"},
            params={"sobject": "Account"},
        )
        updated = await adapter.call(update)
        again = await adapter.call(update)
    finally:
        await adapter.close()
    assert created["created"] is True
    assert created["id"].startswith("001")
    assert updated == again == {"id": created["id"], "created": False}
    assert fake_sf.records("Account") == [
        {
            "External_Id__c": "evt-create",
            "Name": "Acme evt-create",
            "Id": created["id"],
            "Phone": "555",
        }
    ]


async def test_update_of_a_record_not_there_yet_waits_for_it(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        request = Request(
            action="update",
            payload={"Id": "001000000000999", "Phone": "1"},
            params={"sobject": "Account"},
        )
        with pytest.raises(MissingDependencyError, match="NOT_FOUND") as caught:
            await adapter.call(request)
    finally:
        await adapter.close()
    assert caught.value.status_code == 404
    assert caught.value.vendor_code == "NOT_FOUND"


async def test_not_found_on_a_write_by_url_is_a_wrong_url_not_a_wait(
    fake_sf: FakeSalesforce,
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        fake_sf.fail_next("NOT_FOUND", message="The requested resource does not exist")
        with pytest.raises(PermanentError) as caught:
            await adapter.call(upsert("evt-wrong-url"))
    finally:
        await adapter.close()
    assert not isinstance(caught.value, MissingDependencyError)


async def test_a_child_whose_parent_id_does_not_exist_yet_waits_then_goes_through(
    fake_sf: FakeSalesforce,
) -> None:
    fake_sf.add_lookup("Contact", "AccountId", "Account")
    adapter = make_adapter(fake_sf)
    contact = Request(
        action="create",
        payload={"LastName": "Quill", "AccountId": "001000000000042"},
        params={"sobject": "Contact"},
    )
    await adapter.start()
    try:
        with pytest.raises(MissingDependencyError) as caught:
            await adapter.call(contact)
        fake_sf.insert("Account", Name="Acme")  # 001000000000001: not that one
        with pytest.raises(MissingDependencyError):
            await adapter.call(contact)
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "INVALID_CROSS_REFERENCE_KEY"
    assert "dependency_wait" in caught.value.message
    assert fake_sf.count("Contact") == 0


async def test_a_parent_named_by_external_id_is_waited_for_until_it_exists(
    fake_sf: FakeSalesforce,
) -> None:
    fake_sf.add_lookup("Zuora_Payment__c", "Account__c", "Account")
    adapter = make_adapter(fake_sf)
    payment = Request(
        action="upsert",
        payload={
            "Zuora_Payment_Id__c": "P-1",
            "Account__r": {"External_Id__c": "cust-later"},
        },
        params={"sobject": "Zuora_Payment__c", "external_id_field": "Zuora_Payment_Id__c"},
    )
    await adapter.start()
    try:
        with pytest.raises(MissingDependencyError, match="Foreign key external ID") as caught:
            await adapter.call(payment)
        account_id = fake_sf.insert("Account", Name="Acme", External_Id__c="cust-later")
        placed = await adapter.call(payment)
    finally:
        await adapter.close()
    assert caught.value.vendor_code == "INVALID_FIELD"
    assert placed["created"] is True
    [record] = fake_sf.records("Zuora_Payment__c")
    assert record["Account__c"] == account_id


async def test_a_lookup_query_returns_the_records(fake_sf: FakeSalesforce) -> None:
    account_id = fake_sf.insert("Account", Name="Acme", External_Id__c="cust-1")
    fake_sf.insert("Account", Name="Other", External_Id__c="cust-2")
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        found = await adapter.call(
            query(
                "SELECT Id, Name FROM Account WHERE External_Id__c = :customer LIMIT 1",
                customer="cust-1",
            )
        )
        injected = await adapter.call(
            query(
                "SELECT Id FROM Account WHERE External_Id__c = :customer",
                customer="x' OR Name != '",
            )
        )
    finally:
        await adapter.close()
    assert found == {
        "total_size": 1,
        "done": True,
        "records": [{"Id": account_id, "Name": "Acme"}],
    }
    assert injected["records"] == []
    QueryResult.model_validate(found)  # the result model lint reads steps.X.total_size from


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (Request(action="create", payload=[1, 2], params={"sobject": "Account"}), "JSON object"),
        (Request(action="create", payload={}, params={"sobject": "Acc/ount"}), "sobject"),
        (Request(action="query", payload={}, params={"soql": "DELETE x"}), "SELECT"),
        (
            Request(action="query", payload={}, params={"soql": "SELECT Id FROM A WHERE X = :x"}),
            "bind :x",
        ),
        (Request(action="delete", payload={}), "no action 'delete'"),
    ],
)
async def test_bad_requests_are_permanent_before_reaching_salesforce(
    fake_sf: FakeSalesforce, request_: Request, message: str
) -> None:
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        with pytest.raises(PermanentError, match=message):
            await adapter.call(request_)
    finally:
        await adapter.close()
    assert [r.path for r in fake_sf.requests] == ["/services/Soap/u/59.0"]


async def test_a_timed_out_create_says_it_may_have_been_applied(fake_sf: FakeSalesforce) -> None:
    adapter = make_adapter(fake_sf, timeout=1.0)
    await adapter.start()
    try:
        fake_sf.delay_next(2.0)
        with pytest.raises(RetryableError, match=r"timed out.*may have been applied"):
            await adapter.call(create("evt-slow"))
    finally:
        await adapter.close()


def test_the_repr_shows_no_secret() -> None:
    settings = SalesforceSettings.model_validate({"auth": password_auth()})
    adapter = SalesforceAdapter(settings, connection="crm")
    assert (
        repr(adapter) == "SalesforceAdapter(connection='crm', auth='password', api_version='59.0')"
    )


async def test_no_token_or_session_id_reaches_the_logs(fake_sf: FakeSalesforce) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    root.setLevel(logging.DEBUG)
    adapter = make_adapter(fake_sf)
    try:
        await adapter.start()
        fake_sf.expire_sessions()
        await adapter.call(upsert("evt-logs"))
        fake_sf.fail_next("INVALID_FIELD", message="bad field")
        with pytest.raises(PermanentError):
            await adapter.call(upsert("evt-logs-2"))
    finally:
        await adapter.close()
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level
    sessions = {
        r.headers["authorization"].removeprefix("Bearer ")
        for r in fake_sf.requests
        if "authorization" in r.headers
    }
    logs = stream.getvalue()
    assert "salesforce.login" in logs
    assert "salesforce.api_usage" in logs
    assert len(sessions) == 2
    for secret in (PASSWORD, SECURITY_TOKEN, *sessions):
        assert secret not in logs


async def test_every_call_goes_through_the_proxy_with_the_ca_bundle(
    fake_sf: FakeSalesforce, tunnel_proxy: TunnelProxy
) -> None:
    adapter = make_adapter(fake_sf, client_credentials_auth(), proxy=tunnel_proxy.url)
    await adapter.start()
    try:
        await adapter.call(upsert("evt-proxy"))
    finally:
        await adapter.close()
    assert set(tunnel_proxy.tunnels) == {urlsplit(fake_sf.url).netloc}
    assert fake_sf.requests[0].path == "/services/oauth2/token"


def test_settings_left_empty_by_the_environment_are_unset() -> None:
    settings = SalesforceSettings.model_validate(
        {"auth": client_credentials_auth(), "login_url": "", "ca_bundle": "", "proxy": ""}
    )
    assert (settings.login_url, settings.ca_bundle, settings.proxy) == (None, None, None)
    assert login_base_url(settings) == "https://acme.my.salesforce.com"


@pytest.mark.parametrize("how", sorted(ECHOES))
@pytest.mark.parametrize(
    ("code", "status"), [("DUPLICATE_VALUE", 400), ("SERVER_UNAVAILABLE", 503)]
)
async def test_personal_data_salesforce_echoes_changed_is_masked_everywhere(
    fake_sf: FakeSalesforce, how: str, code: str, status: int
) -> None:
    # Salesforce's messages quote the field value: "duplicate value found: Email__c ...".
    fake_sf.fail_next(code, status=status, message=ECHOES[how])
    adapter = make_adapter(fake_sf)
    await adapter.start()
    try:
        await assert_masked(lambda: adapter.call(upsert("evt-echo", Email__c=EMAIL, Name=NAME)))
    finally:
        await adapter.close()
