"""``/metrics`` after a flow run, the metrics token, and ``/readyz``."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from platypus.secrets import SecretRef
from tests.fakes.vendor import FakeVendor
from tests.ops.web.support import REJECT, failed, ops_settings, serving
from tests.support import closed_won, ingest


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} not in /metrics"
    return float(match.group(1))


async def test_metrics_count_events_outcomes_retries_and_open_failures(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT, (503, {"error": "busy"})])
    async with serving(tmp_path, fake_vendor.url) as app:
        await ingest(app, closed_won(), closed_won(), closed_won(amount=10))
        await failed(app)
        async with httpx.AsyncClient(base_url=app.url) as client:
            answer = await client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        kind = 'event_type="sales.opportunity.closed_won.v1"'
        assert _value(text, f"platypus_events_consumed_total{{{kind}}}") == 3
        assert _value(text, 'platypus_flow_outcomes_total{flow="orders",outcome="delivered"}') == 1
        assert (
            _value(text, 'platypus_flow_outcomes_total{flow="orders",outcome="dead_lettered"}') == 1
        )
        assert _value(text, 'platypus_flow_outcomes_total{flow="orders",outcome="filtered"}') == 1
        assert _value(text, 'platypus_retried_total{flow="orders"}') == 1
        assert _value(text, "platypus_event_processing_seconds_count") == 3
        assert _value(text, "platypus_dead_letters_open") == 1
        assert _value(text, 'platypus_failures{status="open"}') == 1
        assert _value(text, 'platypus_consumer_lag{partition="0"}') == 0
        assert _value(text, "platypus_consumer_running") == 1


async def test_metrics_can_require_a_token(
    tmp_path: Path, fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRICS_TOKEN", "scrape-me-9d1")
    ops = ops_settings(metrics_token=SecretRef(env="METRICS_TOKEN"))
    async with serving(tmp_path, fake_vendor.url, ops=ops) as app:
        client = httpx.AsyncClient(base_url=app.url)
        async with client:
            assert (await client.get("/metrics")).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.get("/metrics", headers=wrong)).status_code == 401
            right = {"Authorization": "Bearer scrape-me-9d1"}
            assert (await client.get("/metrics", headers=right)).status_code == 200


async def test_readyz_checks_log_consumer_indexer_and_store(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with serving(tmp_path, fake_vendor.url) as app:
        client = httpx.AsyncClient(base_url=app.url)
        async with client:
            answer = await client.get("/readyz")
            assert answer.status_code == 200
            assert answer.json() == {
                "status": "ready",
                "checks": {"log": True, "consumer": True, "indexer": True, "store": True},
            }
            app.failures.engine.dispose()
            app.failures.engine = __import__("sqlalchemy").create_engine(
                f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}"
            )
            answer = await client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["checks"]["store"] is False
