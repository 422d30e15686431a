"""The ``zuora`` adapter: the adapter contract and Zuora's own behaviour, on a loopback fake."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
import structlog
from pydantic import SecretStr

from platypus.adapter import Adapter, Request
from platypus.exceptions import (
    ConfigurationError,
    MissingDependencyError,
    PermanentError,
    RetryableError,
)
from platypus.logging import configure_logging
from platypus.oauth import TokenCache
from platypus_adapters.zuora import ZuoraAdapter, ZuoraSettings
from platypus_adapters.zuora._errors import Verdict, classify
from platypus_adapters.zuora._idempotency import IdempotencyKeys, answered_failure
from platypus_adapters.zuora.models import CreateSubscriptionResult, FindAccountResult
from tests.adapters.contract import AdapterContract, Failure
from tests.adapters.echoes import ECHOES, assert_masked
from tests.fakes.proxy import TunnelProxy
from tests.fakes.tls import TestCA
from tests.fakes.zuora import AUTH_ERROR, RESET, FakeZuora, Reply, Slow

SECRET = FakeZuora.client_secret


@pytest.fixture(scope="module")
def _zuora_server() -> Iterator[FakeZuora]:
    fake = FakeZuora()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def zuora(_zuora_server: FakeZuora, monkeypatch: pytest.MonkeyPatch) -> FakeZuora:
    """The fake tenant, emptied, with the OAuth client's secrets in the environment."""
    _zuora_server.reset()
    monkeypatch.setenv("ZUORA_CLIENT_ID", FakeZuora.client_id)
    monkeypatch.setenv("ZUORA_CLIENT_SECRET", FakeZuora.client_secret)
    return _zuora_server


def make_adapter(fake: FakeZuora, **settings: Any) -> ZuoraAdapter:
    adapter = ZuoraAdapter.from_config(
        {
            "base_url": fake.url,
            "client_id": {"env": "ZUORA_CLIENT_ID"},
            "client_secret": {"env": "ZUORA_CLIENT_SECRET"},
            # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
            # fake for longer than a tight timeout. Timeout cases set their own (1 s).
            "timeout": 5.0,
            **settings,
        },
        connection="billing",
    )
    assert isinstance(adapter, ZuoraAdapter)
    return adapter


def account_request(event_id: str, crm_id: str | None = None, **extra: Any) -> Request:
    return Request(
        action="create_account",
        payload={
            "name": "Acme Ltd",
            "currency": "EUR",
            "billCycleDay": 1,
            "crmId": crm_id or event_id,
            "billToContact": {
                "firstName": "Ada",
                "lastName": "Lovelace",
                "workEmail": "ada@example.com",
                "country": "GB",
            },
            **extra,
        },
        event_id=event_id,
        flow="onboard",
        step="account",
    )


def subscription_request(event_id: str, account_number: str) -> Request:
    return Request(
        action="create_subscription",
        payload={
            "accountNumber": account_number,
            "orderDate": "2024-05-01",
            "terms": {
                "initialTerm": {"termType": "TERMED", "period": 12, "periodType": "Month"},
                "renewalSetting": "RENEW_WITH_SPECIFIC_TERM",
                "renewalTerms": [{"period": 12, "periodType": "Month"}],
                "autoRenew": True,
            },
            "ratePlans": [{"productRatePlanId": "8a8aa0a0plan"}],
            "contractEffectiveDate": "2024-05-01",
        },
        event_id=event_id,
        flow="onboard",
        step="subscription",
    )


def find_request(crm_id: str) -> Request:
    return Request(action="find_account", payload={"crmId": crm_id}, event_id="evt-find")


@pytest.fixture
async def adapter(zuora: FakeZuora) -> Any:
    adapter = make_adapter(zuora)
    await adapter.start()
    yield adapter
    await adapter.close()


class TestContract(AdapterContract):
    secret: ClassVar[str] = SECRET

    @pytest.fixture
    def vendor(self, zuora: FakeZuora) -> FakeZuora:
        return zuora

    def make_adapter(self, vendor: FakeZuora) -> Adapter:
        return make_adapter(vendor, timeout=1.0)  # the "timeout" failure answers after 2 s

    def write(self, event_id: str) -> Request:
        return account_request(event_id)

    def record_count(self, vendor: FakeZuora, request: Request) -> int:
        return len(vendor.accounts_with_crm_id(request.payload["crmId"]))

    def fail_next(self, vendor: FakeZuora, failure: Failure) -> None:
        if failure == "expired_credential":
            # The adapter may hold no token yet: make the next answer Zuora's 401 for
            # an expired token as well as expiring every token already issued.
            vendor.expire_tokens()
            vendor.fail_next("/v1/accounts", Reply(401, AUTH_ERROR))
            return
        answers: dict[str, Any] = {
            "permanent": Reply(
                200,
                {
                    "success": False,
                    "reasons": [{"code": "53000020", "message": f"invalid value {SECRET}"}],
                },
            ),
            "retryable": Reply(503, {"message": "Service Unavailable"}),
            "timeout": Slow(2.0),
            "reset": RESET,
        }
        vendor.fail_next("/v1/accounts", answers[failure])


# -- OAuth tokens --------------------------------------------------------------


async def test_one_token_serves_many_calls(zuora: FakeZuora, adapter: ZuoraAdapter) -> None:
    for n in range(5):
        await adapter.call(account_request(f"evt-many-{n}"))
    assert len(zuora.requests_to("/oauth/token")) == 1
    token_request = zuora.requests_to("/oauth/token")[0]
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"grant_type=client_credentials" in token_request.body
    assert all(
        r.headers["authorization"].startswith("Bearer ") for r in zuora.requests_to("/v1/accounts")
    )


async def test_a_token_is_refreshed_before_it_expires(zuora: FakeZuora) -> None:
    zuora.token_lifetime = 120
    adapter = make_adapter(zuora, token_refresh_margin="60s")
    now = [1000.0]
    adapter.tokens.clock = lambda: now[0]
    await adapter.start()
    try:
        await adapter.call(account_request("evt-early-1"))
        # 100 s on, the token has 20 s left: Zuora would still take it, but it is
        # within the margin, so the adapter fetches a new one before sending.
        now[0] += 100
        zuora.advance(100)
        await adapter.call(account_request("evt-early-2"))
    finally:
        await adapter.close()
    assert len(zuora.requests_to("/oauth/token")) == 2
    assert [r.status for r in zuora.requests_to("/v1/accounts")] == [200, 200]


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    await adapter.call(account_request("evt-expiry-1"))
    zuora.expire_tokens()
    result = await adapter.call(account_request("evt-expiry-2"))
    assert result["accountNumber"]
    assert [r.status for r in zuora.requests_to("/v1/accounts")] == [200, 401, 200]
    assert len(zuora.requests_to("/oauth/token")) == 2


async def test_a_token_refused_twice_is_a_permanent_error(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    zuora.fail_next("/v1/accounts", Reply(401, AUTH_ERROR), Reply(401, AUTH_ERROR))
    with pytest.raises(PermanentError) as caught:
        await adapter.call(account_request("evt-refused"))
    assert caught.value.status_code == 401
    assert caught.value.vendor_code == "90000011"
    assert "freshly fetched token" in str(caught.value)
    assert len(zuora.requests_to("/oauth/token")) == 2
    assert zuora.accounts == {}


async def test_concurrent_calls_share_one_token_fetch() -> None:
    fetched = 0

    async def fetch() -> tuple[SecretStr, float]:
        nonlocal fetched
        fetched += 1
        await asyncio.sleep(0.01)
        return SecretStr(f"tok-{fetched}"), 3600.0

    cache = TokenCache(fetch, margin=60)
    tokens = await asyncio.gather(*(cache.get() for _ in range(10)))
    assert fetched == 1
    assert {t.value.get_secret_value() for t in tokens} == {"tok-1"}
    cache.invalidate(tokens[0])
    assert (await cache.get()).value.get_secret_value() == "tok-2"
    cache.invalidate(tokens[0])  # a stale 401: the newer token stays
    assert (await cache.get()).value.get_secret_value() == "tok-2"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(401, {"error": "invalid_client"}), PermanentError),
        (Reply(400, {"error": "invalid_request"}), PermanentError),
        (Reply(429, {"message": "Too many requests"}, {"Retry-After": "3"}), RetryableError),
        (Reply(503), RetryableError),
        (RESET, RetryableError),
    ],
)
async def test_token_endpoint_failures_are_classified(
    zuora: FakeZuora, adapter: ZuoraAdapter, reply: Reply, error: type[Exception]
) -> None:
    zuora.fail_next("/oauth/token", reply)
    with pytest.raises(error):
        await adapter.call(account_request("evt-token-fail"))
    assert zuora.requests_to("/v1/accounts") == []


async def test_wrong_client_credentials_are_a_permanent_error(
    zuora: FakeZuora, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZUORA_CLIENT_SECRET", "not-the-secret")
    adapter = make_adapter(zuora)
    await adapter.start()
    try:
        with pytest.raises(PermanentError, match="client_id and client_secret") as caught:
            await adapter.call(account_request("evt-bad-client"))
    finally:
        await adapter.close()
    assert caught.value.status_code == 401
    assert "not-the-secret" not in str(caught.value)


# -- rate limits ---------------------------------------------------------------


async def test_429_retry_after_is_the_errors_retry_after(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    zuora.fail_next(
        "/v1/accounts",
        Reply(429, {"message": "Too many requests"}, {"Retry-After": "7", "RateLimit-Reset": "40"}),
    )
    with pytest.raises(RetryableError) as caught:
        await adapter.call(account_request("evt-429"))
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 7.0


async def test_429_without_retry_after_waits_for_the_ratelimit_reset(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    zuora.fail_next(
        "/v1/accounts",
        Reply(429, {"message": "Too many requests"}, {"RateLimit-Reset": "12"}),
    )
    with pytest.raises(RetryableError) as caught:
        await adapter.call(account_request("evt-429-reset"))
    assert caught.value.retry_after == 12.0


async def test_a_503_ignores_the_ratelimit_reset_every_answer_carries(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    zuora.fail_next("/v1/accounts", Reply(503))
    with pytest.raises(RetryableError) as caught:
        await adapter.call(account_request("evt-503"))
    assert caught.value.retry_after is None


# -- idempotency ---------------------------------------------------------------


async def test_the_same_event_twice_creates_one_account(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    request = account_request("evt-twice")
    first = await adapter.call(request)
    second = await adapter.call(request)
    assert first == second
    assert len(zuora.accounts) == 1
    keys = [r.headers["idempotency-key"] for r in zuora.requests_to("/v1/accounts")]
    assert keys == ["evt-twice:onboard:account"] * 2


async def test_the_same_key_with_another_body_is_a_permanent_error(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    await adapter.call(account_request("evt-reuse"))
    with pytest.raises(PermanentError, match="another body") as caught:
        await adapter.call(account_request("evt-reuse", name="Other Ltd"))
    assert caught.value.status_code == 422
    assert len(zuora.accounts) == 1


async def test_a_request_still_in_flight_with_the_same_key_is_retryable(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    zuora.fail_next("/v1/accounts", Reply(409, {"success": False, "reasons": []}))
    with pytest.raises(RetryableError) as caught:
        await adapter.call(account_request("evt-409"))
    assert caught.value.status_code == 409


async def test_a_long_idempotency_key_is_sent_as_a_stable_digest(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    request = account_request("e" * 300, crm_id="crm-long-key")
    await adapter.call(request)
    await adapter.call(request)
    keys = {r.headers["idempotency-key"] for r in zuora.requests_to("/v1/accounts")}
    assert len(keys) == 1
    assert len(keys.pop()) < 255
    assert len(zuora.accounts) == 1


# -- actions -------------------------------------------------------------------


async def test_create_account_sends_zuoras_body_and_returns_the_ids(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    result = await adapter.call(
        account_request("evt-body", customFields={"Segment__c": "SMB"}, autoPay=False)
    )
    body = zuora.requests_to("/v1/accounts")[0].json
    assert body == {
        "name": "Acme Ltd",
        "currency": "EUR",
        "billCycleDay": 1,
        "crmId": "evt-body",
        "autoPay": False,
        "Segment__c": "SMB",
        "billToContact": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "workEmail": "ada@example.com",
            "country": "GB",
        },
    }
    assert set(result) == {"accountId", "accountNumber", "billToContactId", "soldToContactId"}
    assert zuora.accounts[result["accountNumber"]]["id"] == result["accountId"]


async def test_create_subscription_places_a_create_subscription_order(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    account = await adapter.call(account_request("evt-sub"))
    request = subscription_request("evt-sub", account["accountNumber"])
    result = await adapter.call(request)

    sent = zuora.requests_to("/v1/orders")[0]
    assert sent.headers["idempotency-key"] == request.idempotency_key
    assert sent.json == {
        "existingAccountNumber": account["accountNumber"],
        "orderDate": "2024-05-01",
        "subscriptions": [
            {
                "orderActions": [
                    {
                        "type": "CreateSubscription",
                        "triggerDates": [
                            {"name": "ContractEffective", "triggerDate": "2024-05-01"}
                        ],
                        "createSubscription": {
                            "terms": {
                                "initialTerm": {
                                    "termType": "TERMED",
                                    "period": 12,
                                    "periodType": "Month",
                                },
                                "renewalSetting": "RENEW_WITH_SPECIFIC_TERM",
                                "renewalTerms": [{"period": 12, "periodType": "Month"}],
                                "autoRenew": True,
                            },
                            "subscribeToRatePlans": [{"productRatePlanId": "8a8aa0a0plan"}],
                        },
                    }
                ]
            }
        ],
        "processingOptions": {"runBilling": False, "collectPayment": False},
    }
    assert result["accountNumber"] == account["accountNumber"]
    assert result["orderNumber"] in zuora.orders
    CreateSubscriptionResult.model_validate(result)  # the result model lint reads
    assert (
        result["subscriptionNumbers"] == zuora.orders[result["orderNumber"]]["subscriptionNumbers"]
    )
    assert result["status"] == "Completed"


async def test_a_subscription_for_an_account_not_there_yet_waits_and_then_goes_through(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    request = subscription_request("evt-no-account-yet", "A00000001")
    with pytest.raises(MissingDependencyError) as caught:
        await adapter.call(request)
    assert caught.value.vendor_code == "50000040"
    assert caught.value.status_code == 200
    assert zuora.orders == {}
    account = await adapter.call(account_request("evt-the-account"))
    assert account["accountNumber"] == "A00000001"

    # The retry: Zuora stored the failure under the first key, so it needs the next.
    result = await adapter.call(request)

    assert result["accountNumber"] == "A00000001"
    assert len(zuora.orders) == 1
    keys = [r.headers["idempotency-key"] for r in zuora.requests_to("/v1/orders")]
    assert keys == [
        "evt-no-account-yet:onboard:subscription",
        "evt-no-account-yet:onboard:subscription#2",
    ]


async def test_a_stored_retryable_failure_is_retried_with_the_next_key(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    # Lock contention answered by the application: Zuora stores it under the key.
    zuora.answer_next("/v1/accounts", Reply(200, _reasons("50000050", "locked")))
    request = account_request("evt-locked")
    with pytest.raises(RetryableError):
        await adapter.call(request)
    created = await adapter.call(request)
    again = await adapter.call(request)  # a replay now reads the stored success
    assert created == again
    assert len(zuora.accounts) == 1


async def test_after_a_timeout_the_retry_keeps_the_key_and_reads_the_stored_answer(
    zuora: FakeZuora,
) -> None:
    adapter = make_adapter(zuora, timeout=1.0)
    await adapter.start()
    try:
        zuora.fail_next("/v1/accounts", Slow(2.0))
        request = account_request("evt-slow-key")
        with pytest.raises(RetryableError, match="timed out"):
            await adapter.call(request)  # Zuora applied it; only its answer was late
        await adapter.call(request)
    finally:
        await adapter.close()
    keys = {r.headers["idempotency-key"] for r in zuora.requests_to("/v1/accounts")}
    assert keys == {"evt-slow-key:onboard:account"}
    assert len(zuora.accounts) == 1


async def test_a_new_process_walks_the_key_chain_back_to_the_stored_success(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    request = subscription_request("evt-walk", "A00000001")
    with pytest.raises(MissingDependencyError):
        await adapter.call(request)
    await adapter.call(account_request("evt-walk-account"))
    first = await adapter.call(request)
    fresh = make_adapter(zuora)  # a restarted worker: no memory of the failure
    await fresh.start()
    try:
        with pytest.raises(MissingDependencyError):
            await fresh.call(request)  # the stored failure, read back at once
        again = await fresh.call(request)
    finally:
        await fresh.close()
    assert again == first
    assert len(zuora.orders) == 1


def test_the_key_chain_moves_on_only_from_the_key_that_failed() -> None:
    keys = IdempotencyKeys(remember=2)
    assert keys.current("e:f:s") == "e:f:s"
    keys.failed("e:f:s", "e:f:s")
    assert keys.current("e:f:s") == "e:f:s#2"
    keys.failed("e:f:s", "e:f:s")  # a late answer to the old key: already past it
    assert keys.current("e:f:s") == "e:f:s#2"
    keys.failed("a", "a")
    keys.failed("b", "b")  # remembers two chains: the oldest is forgotten
    assert keys.current("e:f:s") == "e:f:s"
    long = "x" * 300
    assert len(keys.current(long)) < 255
    keys.failed(long, keys.current(long))
    assert keys.current(long) != IdempotencyKeys().current(long)
    assert len(keys.current(long)) < 255


@pytest.mark.parametrize(
    ("status", "code", "answered"),
    [
        (200, "50000040", True),
        (400, "53000020", True),
        (404, "50000040", True),
        (401, "90000011", False),
        (409, "50000050", False),
        (422, "50000090", False),
        (429, None, False),
        (503, None, False),
        (500, "50000060", False),
        (400, None, False),
    ],
)
def test_only_a_failure_zuora_answered_spends_the_key(
    status: int, code: str | None, answered: bool
) -> None:
    assert answered_failure(status, code) is answered


async def test_find_account_by_crm_id(zuora: FakeZuora, adapter: ZuoraAdapter) -> None:
    created = await adapter.call(account_request("evt-find", crm_id="0061x00000O'Hara"))
    found = await adapter.call(find_request("0061x00000O'Hara"))
    missing = await adapter.call(find_request("0061x00000nobody"))

    assert found == {
        "found": True,
        "accountId": created["accountId"],
        "accountNumber": created["accountNumber"],
    }
    assert missing == {"found": False, "accountId": None, "accountNumber": None}
    for answer in (found, missing):
        FindAccountResult.model_validate(answer)  # the result model lint reads
    query = zuora.requests_to("/v1/action/query")[0]
    assert query.json == {
        "queryString": "select Id, AccountNumber from Account where CrmId = '0061x00000O\\'Hara'"
    }
    assert "idempotency-key" not in query.headers  # a lookup is no write


async def test_two_accounts_with_one_crm_id_are_a_permanent_error(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    await adapter.call(account_request("evt-dup-1", crm_id="crm-dup"))
    await adapter.call(account_request("evt-dup-2", crm_id="crm-dup"))
    with pytest.raises(PermanentError, match="2 accounts with crmId 'crm-dup'"):
        await adapter.call(find_request("crm-dup"))


async def test_a_payload_that_does_not_fit_is_refused_before_sending(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    request = account_request("evt-bad")
    del request.payload["billToContact"]
    with pytest.raises(PermanentError, match="billToContact"):
        await adapter.call(request)
    with pytest.raises(PermanentError, match="__c"):
        await adapter.call(account_request("evt-bad-2", customFields={"Segment": "SMB"}))
    assert zuora.requests == []


# -- error classification --------------------------------------------------------


def _reasons(code: str, message: str = "refused") -> dict[str, Any]:
    return {"success": False, "reasons": [{"code": code, "message": message}]}


@pytest.mark.parametrize(
    ("reply", "error", "vendor_code"),
    [
        (Reply(400, _reasons("53000020")), PermanentError, "53000020"),
        (Reply(404, _reasons("50000040")), PermanentError, "50000040"),
        (Reply(422, _reasons("50000090")), PermanentError, "50000090"),
        (Reply(200, _reasons("53100320")), PermanentError, "53100320"),  # invalid value
        (Reply(200, _reasons("53000030")), PermanentError, "53000030"),  # business rule
        (Reply(200, _reasons("53000010")), PermanentError, "53000010"),  # permission
        (Reply(200, _reasons("53000050")), RetryableError, "53000050"),  # lock contention
        (Reply(200, _reasons("53000060")), RetryableError, "53000060"),  # internal error
        (Reply(200, _reasons("53000061")), RetryableError, "53000061"),  # temporary error
        (Reply(200, _reasons("53000070")), RetryableError, "53000070"),  # exceeded limit
        (Reply(500, _reasons("50000060")), RetryableError, "50000060"),
        (Reply(502, "<html>Bad Gateway</html>"), RetryableError, None),
        (Reply(503), RetryableError, None),
        (Reply(429, {"message": "Too many requests"}), RetryableError, None),
        (Reply(409), RetryableError, None),
        (Reply(403, _reasons("50000010")), PermanentError, "50000010"),
    ],
)
async def test_answers_are_classified(
    zuora: FakeZuora,
    adapter: ZuoraAdapter,
    reply: Reply,
    error: type[Exception],
    vendor_code: str | None,
) -> None:
    zuora.fail_next("/v1/accounts", reply)
    with pytest.raises(error) as caught:
        await adapter.call(account_request("evt-classify"))
    assert getattr(caught.value, "vendor_code", None) == vendor_code
    assert getattr(caught.value, "status_code", None) == reply.status


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (200, {"success": True, "accountId": "x"}, Verdict.OK),
        (200, {"records": [], "size": 0, "done": True}, Verdict.OK),
        (200, _reasons("90000011"), Verdict.REFRESH),
        (200, {"FaultCode": "INVALID_SESSION", "FaultMessage": "expired"}, Verdict.REFRESH),
        (200, {"FaultCode": "LOCK_COMPETITION", "FaultMessage": "busy"}, Verdict.RETRYABLE),
        (400, {"FaultCode": "MALFORMED_QUERY", "FaultMessage": "bad"}, Verdict.PERMANENT),
        (
            200,
            {"Success": False, "Errors": [{"Code": "INVALID_VALUE", "Message": "bad"}]},
            Verdict.PERMANENT,
        ),
        (
            200,
            {
                "success": False,
                "reasons": [{"code": "53000050", "message": "lock"}, {"code": "53000020"}],
            },
            Verdict.PERMANENT,  # one permanent reason: a retry meets it again
        ),
        (200, {"success": False}, Verdict.PERMANENT),
        (200, _reasons("50000040", "Account A1 does not exist"), Verdict.MISSING),
        (200, _reasons("50000040", "Cannot find entity by key: 'PRP-1'."), Verdict.PERMANENT),
        (401, None, Verdict.REFRESH),
        (408, None, Verdict.RETRYABLE),
        (400, _reasons("53000050"), Verdict.RETRYABLE),
        (301, None, Verdict.PERMANENT),
    ],
)
def test_classify(status: int, body: Any, verdict: Verdict) -> None:
    assert classify(status, body).verdict is verdict


async def test_a_malformed_query_is_a_permanent_error(
    zuora: FakeZuora, adapter: ZuoraAdapter
) -> None:
    zuora.fail_next(
        "/v1/action/query",
        Reply(400, {"FaultCode": "MALFORMED_QUERY", "FaultMessage": "You have an error"}),
    )
    with pytest.raises(PermanentError) as caught:
        await adapter.call(find_request("crm-x"))
    assert caught.value.vendor_code == "MALFORMED_QUERY"


# -- settings and secrecy ----------------------------------------------------------


def test_settings_need_the_oauth_client_and_refuse_unknown_keys() -> None:
    with pytest.raises(ConfigurationError, match="client_secret"):
        ZuoraAdapter.from_config({"client_id": {"env": "X"}})
    with pytest.raises(ConfigurationError, match="tenant"):
        ZuoraAdapter.from_config(
            {"client_id": {"env": "X"}, "client_secret": {"env": "Y"}, "tenant": "t"}
        )
    adapter = ZuoraAdapter.from_config({"client_id": {"env": "X"}, "client_secret": {"env": "Y"}})
    assert isinstance(adapter.settings, ZuoraSettings)
    assert adapter.settings.base_url == "https://rest.zuora.com"


async def test_optional_headers_are_sent(zuora: FakeZuora) -> None:
    adapter = make_adapter(zuora, zuora_version="2023-09-06", entity_ids="ent-1")
    await adapter.start()
    try:
        await adapter.call(account_request("evt-headers"))
    finally:
        await adapter.close()
    sent = zuora.requests_to("/v1/accounts")[0]
    assert sent.headers["zuora-version"] == "2023-09-06"
    assert sent.headers["zuora-entity-ids"] == "ent-1"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    root.setLevel(logging.DEBUG)
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


async def test_neither_the_client_secret_nor_a_token_leaks(
    zuora: FakeZuora, captured_logs: io.StringIO
) -> None:
    adapter = make_adapter(zuora)
    await adapter.start()
    errors: list[str] = []
    try:
        await adapter.call(account_request("evt-leak-1"))
        first_token = next(iter(zuora.tokens))
        zuora.expire_tokens()
        await adapter.call(account_request("evt-leak-2"))  # refreshed after a 401
        tokens = list(zuora.tokens)
        echo = f"echo {first_token} {tokens[-1]} {SECRET}"
        for path, reply in [
            ("/v1/accounts", Reply(400, _reasons("53000020", echo))),
            ("/v1/accounts", Reply(503, echo)),
            ("/oauth/token", Reply(401, {"error": "invalid_client", "echo": echo})),
        ]:
            zuora.fail_next(path, reply)
            if path == "/oauth/token":
                adapter.tokens.clear()
            try:
                await adapter.call(account_request(f"evt-leak-{path}"))
            except (PermanentError, RetryableError) as exc:
                errors.append(f"{exc!s} {exc!r}")
        texts = [captured_logs.getvalue(), *errors, repr(adapter), repr(adapter.tokens)]
        texts.append(repr(adapter.settings))
    finally:
        await adapter.close()
    assert len(errors) == 3
    for secret in [SECRET, *tokens]:
        assert all(secret not in text for text in texts), secret


# -- TLS and proxies -----------------------------------------------------------------


@pytest.fixture(scope="module")
def _https_zuora(test_ca: TestCA) -> Iterator[FakeZuora]:
    fake = FakeZuora(tls=test_ca)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def https_zuora(_https_zuora: FakeZuora, zuora: FakeZuora) -> FakeZuora:
    """The fake over HTTPS, with a certificate of a CA no system trusts."""
    _https_zuora.reset()
    return _https_zuora


async def test_the_ca_bundle_verifies_zuora_and_the_proxy_tunnels_every_call(
    https_zuora: FakeZuora, test_ca: TestCA, tunnel_proxy: TunnelProxy
) -> None:
    assert https_zuora.url.startswith("https://")
    adapter = make_adapter(https_zuora, ca_bundle=str(test_ca.path), proxy=tunnel_proxy.url)
    await adapter.start()
    try:
        result = await adapter.call(account_request("evt-tls"))
    finally:
        await adapter.close()
    assert result
    assert set(tunnel_proxy.tunnels) == {urlsplit(https_zuora.url).netloc}
    assert len(https_zuora.requests) >= 1


async def test_an_untrusted_certificate_is_a_permanent_error_naming_ca_bundle(
    https_zuora: FakeZuora,
) -> None:
    adapter = make_adapter(https_zuora)  # the system's CAs do not know the fake's
    await adapter.start()
    try:
        with pytest.raises(PermanentError, match="ca_bundle"):
            await adapter.call(account_request("evt-tls"))
    finally:
        await adapter.close()
    assert https_zuora.requests == []


async def test_a_ca_bundle_that_cannot_be_read_stops_start(
    zuora: FakeZuora, tmp_path: Path
) -> None:
    adapter = make_adapter(zuora, ca_bundle=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="ca_bundle"):
        await adapter.start()


def test_ca_bundle_and_proxy_left_empty_by_the_environment_are_unset() -> None:
    settings = ZuoraSettings.model_validate(
        {
            "client_id": {"env": "ZUORA_CLIENT_ID"},
            "client_secret": {"env": "ZUORA_CLIENT_SECRET"},
            "ca_bundle": "",
            "proxy": "",
        }
    )
    assert settings.ca_bundle is None
    assert settings.proxy is None
    with pytest.raises(ValueError, match="proxy URL"):
        ZuoraSettings.model_validate(
            {
                "client_id": {"env": "ZUORA_CLIENT_ID"},
                "client_secret": {"env": "ZUORA_CLIENT_SECRET"},
                "proxy": "socks5://proxy:1080",
            }
        )


@pytest.mark.parametrize("how", sorted(ECHOES))
@pytest.mark.parametrize("status", [200, 400, 503])
async def test_personal_data_zuora_echoes_changed_is_masked_everywhere(
    zuora: FakeZuora, adapter: Adapter, how: str, status: int
) -> None:
    # Zuora's reasons quote the value refused; a gateway's 503 page may quote the request.
    body: Any = ECHOES[how] if status == 503 else _reasons("53100020", ECHOES[how])
    zuora.fail_next("/v1/accounts", Reply(status, body))

    await assert_masked(lambda: adapter.call(account_request("evt-echo")))
