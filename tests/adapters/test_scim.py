"""The ``scim`` adapter: the adapter contract and RFC 7644 behaviour, on a loopback provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from platypus.adapter import Adapter, Request
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus_adapters.scim import RESULTS, CredentialsError, ScimAdapter
from platypus_adapters.scim.models import BasicAuth, BearerAuth, ScimSettings
from tests.adapters import echoes
from tests.adapters.contract import AdapterContract, Failure
from tests.fakes.proxy import TunnelProxy
from tests.fakes.scim import ENTERPRISE, PATCH_OP, RESET, FakeScim, Reply, Slow, scim_error

EMAIL = "ada.quill@example.com"


@pytest.fixture(scope="module")
def _scim_server() -> Iterator[FakeScim]:
    fake = FakeScim()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def scim(_scim_server: FakeScim, monkeypatch: pytest.MonkeyPatch) -> FakeScim:
    _scim_server.reset()
    monkeypatch.setenv("SCIM_TOKEN", FakeScim.token)
    return _scim_server


def make_adapter(fake: FakeScim, **extra: Any) -> ScimAdapter:
    adapter = ScimAdapter.from_config(
        {
            "base_url": fake.base_url,
            "auth": {"type": "bearer", "token": {"env": "SCIM_TOKEN"}},
            "ca_bundle": str(fake.ca_path),
            # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
            # fake for longer than a tight timeout. Timeout cases set their own (1 s).
            "timeout": 5.0,
            **extra,
        },
        connection="wiki",
    )
    assert isinstance(adapter, ScimAdapter)
    return adapter


@pytest.fixture
async def adapter(scim: FakeScim) -> AsyncIterator[ScimAdapter]:
    started = make_adapter(scim)
    await started.start()
    yield started
    await started.close()


def user(external_id: str = "W-10042", user_name: str = EMAIL, **extra: Any) -> dict[str, Any]:
    return {
        "userName": user_name,
        "externalId": external_id,
        "name": {"givenName": "Ada", "familyName": "Quill"},
        "displayName": "Ada Quill",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
        "enterprise": {"employeeNumber": external_id, "department": "Finance"},
        **extra,
    }


async def call(adapter: Adapter, action: str, params: Any = None, **payload: Any) -> Any:
    request = Request(action=action, payload=payload, params=params or {}, event_id="evt-x")
    result = await adapter.call(request)
    RESULTS[action].model_validate(result)
    return result


def writes(fake: FakeScim) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method != "GET"]


# -- the contract ------------------------------------------------------------------------


class TestContract(AdapterContract):
    secret: ClassVar[str] = FakeScim.token
    refreshes_credentials: ClassVar[bool] = False

    @pytest.fixture
    def vendor(self, scim: FakeScim) -> FakeScim:
        return scim

    def make_adapter(self, vendor: FakeScim) -> Adapter:
        return make_adapter(vendor, timeout=1.0)  # the "timeout" failure answers after 2 s

    def write(self, event_id: str) -> Request:
        return Request(
            action="upsert_user",
            payload=user(event_id, f"{event_id}@example.com"),
            event_id=event_id,
            flow="joiners",
            step="wiki",
        )

    def record_count(self, vendor: FakeScim, request: Request) -> int:
        return len(vendor.users_with("externalId", request.payload["externalId"]))

    def fail_next(self, vendor: FakeScim, failure: Failure) -> None:
        if failure == "permanent":
            vendor.fail_next(
                "/Users",
                Reply(400, scim_error(400, "emails is malformed", "invalidValue")),
                method="POST",
            )
        elif failure == "retryable":
            vendor.fail_next(
                "/Users", Reply(503, scim_error(503, "Try again later")), method="POST"
            )
        elif failure == "timeout":
            vendor.fail_next("/Users", Slow(2.0), method="POST")
        elif failure == "reset":
            vendor.fail_next("/Users", RESET, method="POST")
        else:
            raise AssertionError("a bearer token cannot expire and be refreshed")


# -- settings -------------------------------------------------------------------------------


def test_a_plain_http_base_url_is_refused_since_scim_requires_tls(scim: FakeScim) -> None:
    with pytest.raises(ConfigurationError, match="SCIM requires TLS"):
        ScimAdapter.from_config(
            {
                "base_url": "http://example.com/scim/v2",
                "auth": {"type": "bearer", "token": {"env": "X"}},
            }
        )


# -- users ------------------------------------------------------------------------------------


async def test_a_new_user_is_created_after_a_filter_finds_none(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    result = await call(adapter, "upsert_user", **user())

    [stored] = scim.users_with("externalId", "W-10042")
    assert result == {
        "id": stored["id"],
        "userName": EMAIL,
        "externalId": "W-10042",
        "active": True,
        "created": True,
        "version": 'W/"1"',
    }
    assert stored[ENTERPRISE] == {"employeeNumber": "W-10042", "department": "Finance"}
    lookup = next(r for r in scim.requests if r.path.endswith("/Users") and r.method == "GET")
    assert parse_qs(lookup.query)["filter"] == ['externalId eq "W-10042"']
    post = next(r for r in scim.requests if r.method == "POST")
    assert post.headers["content-type"] == "application/scim+json"
    assert post.json["schemas"] == [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        ENTERPRISE,
    ]


async def test_an_existing_user_gets_only_what_differs_with_if_match(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    await call(adapter, "upsert_user", **user())
    [stored] = scim.users_with("externalId", "W-10042")

    result = await call(
        adapter, "upsert_user", **user(title="Lead", enterprise={"department": "Risk"})
    )

    patch = [r for r in scim.requests if r.method == "PATCH"][-1]
    assert patch.headers["if-match"] == 'W/"1"'
    assert patch.json["schemas"] == [PATCH_OP]
    assert {(op["op"], op["path"]) for op in patch.json["Operations"]} == {
        ("replace", "title"),
        ("replace", f"{ENTERPRISE}:department"),
    }
    assert result["created"] is False
    assert result["version"] == 'W/"2"'
    assert scim.users[stored["id"]][ENTERPRISE]["department"] == "Risk"


async def test_an_unchanged_user_is_not_written_again(scim: FakeScim, adapter: ScimAdapter) -> None:
    await call(adapter, "upsert_user", **user())
    await call(adapter, "upsert_user", **user())

    assert writes(scim) == ["POST /scim/v2/Users"]


async def test_a_user_created_between_the_lookup_and_the_create_is_found_and_updated(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    existing = scim.add_user(userName=EMAIL, externalId="W-10042", active=False)
    empty = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
             "totalResults": 0, "Resources": []}  # fmt: skip
    scim.fail_next("/Users", Reply(200, empty), method="GET")

    result = await call(adapter, "upsert_user", **user())

    assert result["id"] == existing
    assert result["created"] is False
    assert len(scim.users_with("externalId", "W-10042")) == 1
    assert scim.users[existing]["active"] is True


async def test_a_user_changed_by_someone_else_since_the_read_is_retried_not_overwritten(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    await call(adapter, "upsert_user", **user())
    [stored] = scim.users_with("externalId", "W-10042")
    version_read = stored["meta"]["version"]
    # Someone edits the user between this delivery's lookup and its PATCH.
    listed = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
              "totalResults": 1, "Resources": [json.loads(json.dumps(stored))]}  # fmt: skip
    scim.touch("Users", stored["id"])
    scim.fail_next("/Users", Reply(200, listed), method="GET")

    with pytest.raises(RetryableError) as stale:
        await call(adapter, "upsert_user", **user(title="Lead"))
    assert stale.value.status_code == 412
    assert version_read == 'W/"1"'

    result = await call(adapter, "upsert_user", **user(title="Lead"))
    assert result["version"] == 'W/"3"'


async def test_duplicates_at_the_provider_make_a_lookup_fail_rather_than_guess(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    scim.add_user(userName="a@example.com", externalId="W-1")
    scim.add_user(userName="b@example.com", externalId="W-1")

    with pytest.raises(PermanentError, match="2 users at the provider have the externalId"):
        await call(adapter, "upsert_user", **user("W-1"))


async def test_a_user_can_be_matched_on_username_instead(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    existing = scim.add_user(userName=EMAIL.upper())

    result = await call(adapter, "upsert_user", {"match_on": "userName"}, **user())

    assert result["id"] == existing  # userName is compared case-insensitively (RFC 7643)
    assert scim.users[existing]["externalId"] == "W-10042"


async def test_deactivation_patches_active_and_is_reported_unchanged_when_repeated(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    user_id = scim.add_user(userName=EMAIL, externalId="W-10042", active=True)

    first = await call(adapter, "deactivate_user", externalId="W-10042")
    second = await call(adapter, "deactivate_user", id=user_id)

    assert first == {"id": user_id, "active": False, "changed": True}
    assert second == {"id": user_id, "active": False, "changed": False}
    assert scim.users[user_id]["active"] is False
    [patch] = [r for r in scim.requests if r.method == "PATCH"]
    assert patch.json["Operations"] == [{"op": "replace", "path": "active", "value": False}]


async def test_a_user_the_provider_does_not_have_is_a_permanent_error_without_personal_data(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    with pytest.raises(PermanentError, match="no user at the provider") as caught:
        await call(adapter, "deactivate_user", userName=EMAIL)

    assert EMAIL not in str(caught.value)


async def test_patch_operations_are_sent_in_order_and_errors_carry_the_scim_type(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    user_id = scim.add_user(userName=EMAIL, title="Analyst")

    result = await call(
        adapter,
        "patch_user",
        id=user_id,
        operations=[
            {"op": "replace", "path": "title", "value": "Lead"},
            {"op": "add", "path": "emails", "value": [{"value": "ada@home.example"}]},
        ],
    )
    assert result == {"id": user_id, "version": 'W/"2"'}
    assert scim.users[user_id]["title"] == "Lead"

    with pytest.raises(PermanentError, match="mutability") as caught:
        await call(
            adapter,
            "patch_user",
            id=user_id,
            operations=[{"op": "replace", "path": "id", "value": "x"}],
        )
    assert caught.value.vendor_code == "mutability"


async def test_delete_is_done_once_and_a_user_already_gone_is_not_an_error(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    user_id = scim.add_user(userName=EMAIL, externalId="W-10042")

    assert await call(adapter, "delete_user", externalId="W-10042") == {
        "id": user_id,
        "deleted": True,
    }
    assert (await call(adapter, "delete_user", id=user_id))["deleted"] is False


# -- groups -----------------------------------------------------------------------------------


async def test_a_group_is_created_once_and_members_are_added_and_removed_by_patch(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    ada = scim.add_user(userName=EMAIL, externalId="W-1")
    cy = scim.add_user(userName="cy@example.com", externalId="W-2")

    group = await call(adapter, "upsert_group", displayName="Finance", externalId="dept-fin")
    again = await call(adapter, "upsert_group", displayName="Finance", externalId="dept-fin")
    added = await call(
        adapter,
        "add_group_members",
        group={"displayName": "Finance"},
        members=[{"externalId": "W-1"}, {"id": cy}],
    )
    await call(adapter, "add_group_members", group={"id": group["id"]}, members=[{"id": ada}])
    removed = await call(
        adapter, "remove_group_members", group={"externalId": "dept-fin"}, members=[{"id": cy}]
    )

    assert group["created"] is True
    assert again == {"id": group["id"], "displayName": "Finance", "created": False}
    assert added == {"id": group["id"], "members": [ada, cy]}
    assert removed == {"id": group["id"], "members": [cy]}
    assert scim.member_ids(group["id"]) == {ada}
    patches = [r.json for r in scim.requests if r.method == "PATCH"]
    assert len(patches) == 2  # adding a member already there writes nothing
    assert patches[1]["Operations"] == [{"op": "remove", "path": f'members[value eq "{cy}"]'}]


async def test_a_renamed_group_is_found_by_its_external_id_and_renamed(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    group_id = scim.add_group("Fin", externalId="dept-fin")

    result = await call(adapter, "upsert_group", displayName="Finance", externalId="dept-fin")

    assert result == {"id": group_id, "displayName": "Finance", "created": False}
    assert scim.groups[group_id]["displayName"] == "Finance"


# -- what the provider supports ---------------------------------------------------------------


async def test_without_patch_support_changes_replace_the_user_with_put(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCIM_TOKEN", FakeScim.token)
    fake = FakeScim(patch=False)
    fake.start()
    adapter = make_adapter(fake)
    await adapter.start()
    try:
        user_id = fake.add_user(userName=EMAIL, externalId="W-10042", nickName="Ada")
        await call(adapter, "upsert_user", **user(title="Lead"))
    finally:
        await adapter.close()
        fake.stop()
    [put] = [r for r in fake.requests if r.method == "PUT"]
    assert put.path.endswith(f"/Users/{user_id}")
    assert fake.users[user_id]["title"] == "Lead"
    assert fake.users[user_id]["nickName"] == "Ada"  # kept: PUT carries what it had
    assert not [r for r in fake.requests if r.method == "PATCH"]


async def test_without_etag_support_no_if_match_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", FakeScim.token)
    fake = FakeScim(etag=False)
    fake.start()
    adapter = make_adapter(fake)
    await adapter.start()
    try:
        fake.add_user(userName=EMAIL, externalId="W-10042", active=True)
        await call(adapter, "deactivate_user", externalId="W-10042")
    finally:
        await adapter.close()
        fake.stop()
    [patch] = [r for r in fake.requests if r.method == "PATCH"]
    assert "if-match" not in patch.headers


async def test_the_service_provider_config_is_read_once_per_connection(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    await call(adapter, "find_user", userName=EMAIL)
    await call(adapter, "find_user", userName=EMAIL)

    configs = [r for r in scim.requests if r.path.endswith("/ServiceProviderConfig")]
    assert len(configs) == 1
    assert adapter.capabilities is not None
    assert (adapter.capabilities.patch, adapter.capabilities.etag) == (True, True)


# -- errors -----------------------------------------------------------------------------------


async def test_a_refused_token_is_an_alert_worthy_permanent_error(
    scim: FakeScim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "revoked-token-0000")
    adapter = make_adapter(scim)
    await adapter.start()
    try:
        with pytest.raises(CredentialsError) as caught:
            await call(adapter, "find_user", userName=EMAIL)
    finally:
        await adapter.close()
    assert caught.value.alert is True
    assert "revoked-token-0000" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "scim_type", "error"),
    [
        (400, "invalidFilter", PermanentError),
        (400, "invalidValue", PermanentError),
        (409, "uniqueness", PermanentError),
        (413, None, PermanentError),
        (429, None, RetryableError),
        (500, None, RetryableError),
        (503, None, RetryableError),
    ],
)
async def test_scim_errors_are_classified_by_status_and_scim_type(
    scim: FakeScim, adapter: ScimAdapter, status: int, scim_type: str | None, error: type
) -> None:
    scim.fail_next(
        "/Users",
        Reply(status, scim_error(status, "refused", scim_type), {"Retry-After": "7"}),
        method="GET",
    )

    with pytest.raises(error) as caught:
        await call(adapter, "find_user", userName=EMAIL)

    assert not isinstance(caught.value, CredentialsError)
    if error is RetryableError:
        assert caught.value.retry_after == 7.0
    else:
        assert caught.value.vendor_code == (scim_type or str(status))


def test_an_empty_ca_bundle_from_the_environment_means_unset(scim: FakeScim) -> None:
    adapter = make_adapter(scim, ca_bundle="", proxy="")
    assert adapter.settings.ca_bundle is None  # type: ignore[attr-defined]
    assert adapter.settings.proxy is None  # type: ignore[attr-defined]


def test_every_setting_is_described_and_unknown_ones_are_refused() -> None:
    for model in (ScimSettings, BearerAuth, BasicAuth):
        assert all(f.description for f in model.model_fields.values()), model.__name__
        assert model.model_config.get("extra") == "forbid"


async def test_the_proxy_tunnels_every_call_to_the_provider(
    scim: FakeScim, tunnel_proxy: TunnelProxy
) -> None:
    adapter = make_adapter(scim, proxy=tunnel_proxy.url)
    await adapter.start()
    try:
        assert (await call(adapter, "upsert_user", **user()))["created"] is True
    finally:
        await adapter.close()
    assert set(tunnel_proxy.tunnels) == {urlsplit(scim.base_url).netloc}
    assert scim.users_with("externalId", "W-10042")


@pytest.mark.parametrize("how", sorted(echoes.ECHOES))
@pytest.mark.parametrize(("status", "scim_type"), [(400, "invalidValue"), (409, "uniqueness")])
async def test_personal_data_the_service_echoes_changed_is_masked_everywhere(
    scim: FakeScim, adapter: ScimAdapter, how: str, status: int, scim_type: str
) -> None:
    # A SCIM error's detail quotes the attribute refused: the person's login, their name.
    detail = echoes.ECHOES[how]
    scim.fail_next("/Users", Reply(status, scim_error(status, detail, scim_type)), method="POST")
    person = user("W-echo", echoes.EMAIL, displayName=echoes.NAME)

    await echoes.assert_masked(
        lambda: adapter.call(Request(action="upsert_user", payload=person, event_id="evt-echo"))
    )


async def test_personal_data_in_a_503_page_is_masked_everywhere(
    scim: FakeScim, adapter: ScimAdapter
) -> None:
    scim.fail_next("/Users", Reply(503, echoes.ECHOES["url-escaped"]), method="POST")
    person = user("W-echo", echoes.EMAIL, displayName=echoes.NAME)

    await echoes.assert_masked(
        lambda: adapter.call(Request(action="upsert_user", payload=person, event_id="evt-echo"))
    )
