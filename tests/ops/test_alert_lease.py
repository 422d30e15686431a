"""Failure alerts run once per deployment: two alerters on one store, one lease, one post.

Each alerter stands for a replica of the deployment (its own lease holder) on the
shared store, on SQLite and on PostgreSQL (see conftest.py); the posts go to a
fake Slack over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from platypus.config import AlertRule, AlertSettings
from platypus.ops.alerts import ALERTS_LEASE, Alerter
from platypus.ops.lease import StoreLease
from platypus.ops.store import FailureStore
from platypus_adapters.slack import SlackAdapter
from tests.fakes.slack import CHANNELS, FakeSlack
from tests.ops.test_store import T0, new_failure, record

SETTINGS = AlertSettings(
    connection="team-slack",
    channel="#ops-alerts",
    rules=[AlertRule(flow="*", threshold=2, window=3600)],
    cooldown=900,
    interval=3600,
)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", FakeSlack.bot_token)
    yield fake
    fake.stop()


@pytest.fixture
async def adapter(slack: FakeSlack) -> AsyncIterator[SlackAdapter]:
    found = SlackAdapter.from_config(
        {"token": {"env": "SLACK_BOT_TOKEN"}, "base_url": slack.url}, connection="team-slack"
    )
    assert isinstance(found, SlackAdapter)
    await found.start()
    yield found
    await found.close()


def _replica(store: FailureStore, adapter: SlackAdapter, ttl: float = 30.0) -> Alerter:
    return Alerter(
        store,
        adapter,
        SETTINGS,
        now=lambda: T0 + timedelta(minutes=30),
        lease=StoreLease(store, ALERTS_LEASE, ttl=ttl),
    )


async def test_two_replicas_post_one_alert_and_the_other_takes_over_when_it_stops(
    store: FailureStore, adapter: SlackAdapter, slack: FakeSlack
) -> None:
    record(store, new_failure(1), new_failure(2), new_failure(3))
    first, second = _replica(store, adapter), _replica(store, adapter)

    [alert] = await first.check_once()
    assert alert.sent
    assert await second.check_once() == []  # the first holds the lease
    assert await first.check_once() == []  # its own cooldown
    assert len(slack.messages[CHANNELS["ops-alerts"]]) == 1
    holder = store.lease_holder(ALERTS_LEASE)
    assert holder is not None
    assert holder["holder"] == first.lease.holder

    # The first replica stops (and gives the lease up): the second checks from now
    # on, and keeps the first one's cooldown, which is in the store.
    first.lease.release()
    assert await second.check_once() == []
    assert second.lease.current is not None  # it holds the lease, and is cooling
    assert await first.check_once() == []
    assert len(slack.messages[CHANNELS["ops-alerts"]]) == 1


async def test_the_replica_taking_the_lease_over_keeps_the_cooldown_and_alerts_after_it(
    store: FailureStore, adapter: SlackAdapter, slack: FakeSlack
) -> None:
    record(store, new_failure(1), new_failure(2), new_failure(3))
    later = [0.0]

    def replica() -> Alerter:
        return Alerter(
            store,
            adapter,
            SETTINGS,
            now=lambda: T0 + timedelta(minutes=30, seconds=later[0]),
            lease=StoreLease(store, ALERTS_LEASE, ttl=30.0),
        )

    first = replica()
    assert [a.sent for a in await first.check_once()] == [True]
    first.lease.release()  # the replica stops; a fresh one (a restart) takes over
    second = replica()
    later[0] = SETTINGS.cooldown - 1
    assert await second.check_once() == []  # still within the stored cooldown
    assert second.lease.current is not None
    later[0] = SETTINGS.cooldown + 1
    [again] = await second.check_once()  # the cooldown is over: the failures still count
    assert again.sent
    assert len(slack.messages[CHANNELS["ops-alerts"]]) == 2
    assert store.last_alerts() == {"orders": T0 + timedelta(minutes=30, seconds=later[0])}


async def test_a_holder_that_stops_renewing_loses_the_lease_when_it_expires(
    store: FailureStore, adapter: SlackAdapter, slack: FakeSlack
) -> None:
    record(store, new_failure(1), new_failure(2))
    first = _replica(store, adapter, ttl=0.2)
    second = Alerter(
        store,
        adapter,
        SETTINGS,
        # Past the first one's cooldown, so that the takeover shows as a post.
        now=lambda: T0 + timedelta(minutes=30, seconds=SETTINGS.cooldown + 1),
        lease=StoreLease(store, ALERTS_LEASE, ttl=0.2),
    )
    assert [a.sent for a in await first.check_once()] == [True]
    # ``first`` hangs and renews nothing; after the ttl the lease is free again.
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while not (alerts := await second.check_once()):
        assert datetime.now(UTC) < deadline, "the lease never expired"
    assert [a.sent for a in alerts] == [True]
    assert await first.check_once() == []
    assert len(slack.messages[CHANNELS["ops-alerts"]]) == 2
