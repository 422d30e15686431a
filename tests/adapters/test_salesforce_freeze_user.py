"""``salesforce.freeze_user``: a leaver's login frozen (UserLogin.IsFrozen), on the fake org."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from platypus.adapter import Request
from platypus.exceptions import PermanentError
from platypus_adapters.salesforce import FreezeUserResult, SalesforceAdapter
from tests.fakes.salesforce import FakeSalesforce

USERNAME = "integration@acme.test"
PASSWORD = "sf-freeze-password-1d"
TOKEN = "sf-freeze-token-2e"
LEAVER = "cy.departed@example.com"


@pytest.fixture(scope="module")
def _sf_server() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as server:
        server.add_user(USERNAME, PASSWORD, TOKEN)
        yield server


@pytest.fixture
def fake_sf(_sf_server: FakeSalesforce, monkeypatch: pytest.MonkeyPatch) -> FakeSalesforce:
    monkeypatch.setenv("SF_FREEZE_PASSWORD", PASSWORD)
    monkeypatch.setenv("SF_FREEZE_TOKEN", TOKEN)
    _sf_server.reset()
    return _sf_server


@pytest.fixture
async def adapter(fake_sf: FakeSalesforce) -> AsyncIterator[Any]:
    started = SalesforceAdapter.from_config(
        {
            "auth": {
                "type": "password",
                "username": USERNAME,
                "password": {"env": "SF_FREEZE_PASSWORD"},
                "security_token": {"env": "SF_FREEZE_TOKEN"},
            },
            "login_url": fake_sf.url,
            "ca_bundle": str(fake_sf.ca_path),
            "timeout": 5,
        },
        connection="crm",
    )
    await started.start()
    yield started
    await started.close()


def user(
    fake: FakeSalesforce, federation_id: str = LEAVER, frozen: bool = False
) -> tuple[str, str]:
    user_id = fake.insert(
        "User", Username=f"{federation_id}.acme", FederationIdentifier=federation_id
    )
    login_id = fake.insert("UserLogin", UserId=user_id, IsFrozen=frozen)
    return user_id, login_id


def freeze(value: str = LEAVER, **payload: Any) -> Request:
    return Request(
        action="freeze_user",
        payload={"FederationIdentifier": value, **payload},
        params={"match_field": "FederationIdentifier"},
        event_id="evt-leaver",
    )


async def test_the_users_login_is_frozen_once_and_a_repeat_changes_nothing(
    fake_sf: FakeSalesforce, adapter: Any
) -> None:
    user_id, login_id = user(fake_sf)

    first = await adapter.call(freeze())
    second = await adapter.call(freeze())

    assert first == {
        "found": True,
        "user_id": user_id,
        "user_login_id": login_id,
        "frozen": True,
        "changed": True,
    }
    assert second == {**first, "changed": False}
    FreezeUserResult.model_validate(first)
    assert fake_sf.count("UserLogin", Id=login_id, IsFrozen=True) == 1
    updates = [r for r in fake_sf.requests if r.method == "PATCH"]
    assert len(updates) == 1
    assert updates[0].path.endswith(f"/sobjects/UserLogin/{login_id}")


async def test_a_login_can_be_unfrozen(fake_sf: FakeSalesforce, adapter: Any) -> None:
    _, login_id = user(fake_sf, frozen=True)

    result = await adapter.call(freeze(IsFrozen=False))

    assert (result["frozen"], result["changed"]) == (False, True)
    assert fake_sf.count("UserLogin", Id=login_id, IsFrozen=False) == 1


async def test_a_leaver_without_a_salesforce_user_is_not_an_error(
    fake_sf: FakeSalesforce, adapter: Any
) -> None:
    result = await adapter.call(freeze("nobody@example.com"))

    assert result == FreezeUserResult(found=False).model_dump()
    assert not [r for r in fake_sf.requests if r.method == "PATCH"]


async def test_two_users_with_the_value_are_refused_rather_than_guessed_between(
    fake_sf: FakeSalesforce, adapter: Any
) -> None:
    user(fake_sf)
    user(fake_sf)

    with pytest.raises(PermanentError, match="more than one User") as caught:
        await adapter.call(freeze())

    assert LEAVER not in str(caught.value)


async def test_a_payload_without_the_match_fields_value_is_a_mapping_error(adapter: Any) -> None:
    with pytest.raises(PermanentError, match="must hold FederationIdentifier"):
        await adapter.call(
            Request(
                action="freeze_user",
                payload={"Username": LEAVER},
                params={"match_field": "FederationIdentifier"},
            )
        )
