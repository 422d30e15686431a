"""Failure alerts to Slack: one message when a threshold is crossed, none within the cooldown."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from platypus.config import AlertRule, AlertSettings, ConnectionSpec
from tests.fakes.slack import CHANNELS, FakeSlack, Reply
from tests.fakes.vendor import FakeVendor
from tests.ops.web.support import REJECT, failed, ops_settings
from tests.support import ORDER_FLOW, closed_won, ingest, running


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", FakeSlack.bot_token)
    yield fake
    fake.stop()


def _alerting(slack: FakeSlack, vendor_url: str) -> dict[str, object]:
    """Overrides of the project: alert rules and a Slack connection beside the vendor."""
    alerts = AlertSettings(
        connection="team-slack",
        channel="#ops-alerts",
        rules=[AlertRule(flow="*", threshold=2, window=3600)],
        cooldown=900,
        interval=3600,  # checked by hand below
        dashboard_url="https://ops.example/ops",
    )
    return {
        "ops": ops_settings(alerts=alerts),
        "connections": {
            "vendor": ConnectionSpec(adapter="http", settings={"base_url": vendor_url}),
            "team-slack": ConnectionSpec(
                adapter="slack",
                settings={"token": {"env": "SLACK_BOT_TOKEN"}, "base_url": slack.url},
            ),
        },
    }


async def test_a_crossed_threshold_posts_one_alert_and_the_cooldown_holds_the_next(
    tmp_path: Path, fake_vendor: FakeVendor, slack: FakeSlack
) -> None:
    fake_vendor.script("/orders", [REJECT] * 5)
    overrides = _alerting(slack, fake_vendor.url)
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, **overrides) as app:
        assert app.alerter is not None
        start, later = datetime.now(UTC), [0.0]
        app.alerter.now = lambda: start + timedelta(seconds=later[0])

        await ingest(app, closed_won())
        await failed(app, 1)
        assert await app.alerter.check_once() == []  # 1 < threshold 2
        assert slack.messages[CHANNELS["ops-alerts"]] == []

        await ingest(app, closed_won())
        await failed(app, 2)
        [alert] = await app.alerter.check_once()
        assert (alert.flow, alert.count, alert.sent) == ("orders", 2, True)
        [message] = slack.messages[CHANNELS["ops-alerts"]]
        assert "2 failed events in flow `orders`" in message["text"]
        assert "account 001000000000000099 is closed" in message["text"]
        assert "https://ops.example/ops/failures?flow=orders" in message["text"]

        # More failures within the cooldown: no second message.
        await ingest(app, closed_won(), closed_won())
        await failed(app, 4)
        later[0] += 600
        assert await app.alerter.check_once() == []
        assert len(slack.messages[CHANNELS["ops-alerts"]]) == 1

        # After the cooldown, still over the threshold: one more.
        later[0] += 400
        [again] = await app.alerter.check_once()
        assert again.count == 4
        assert len(slack.messages[CHANNELS["ops-alerts"]]) == 2
        metrics = app.metrics.render().decode()
        assert 'platypus_alerts_sent_total{flow="orders"} 2.0' in metrics


async def test_a_failed_post_is_tried_again_at_the_next_check(
    tmp_path: Path, fake_vendor: FakeVendor, slack: FakeSlack
) -> None:
    fake_vendor.script("/orders", [REJECT] * 2)
    overrides = _alerting(slack, fake_vendor.url)
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, **overrides) as app:
        assert app.alerter is not None
        await ingest(app, closed_won(), closed_won())
        await failed(app, 2)
        slack.fail_next("chat.postMessage", Reply(200, {"ok": False, "error": "channel_not_found"}))
        [alert] = await app.alerter.check_once()
        assert alert.sent is False
        [alert] = await app.alerter.check_once()
        assert alert.sent is True
        assert len(slack.messages[CHANNELS["ops-alerts"]]) == 1
