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


async def test_prometheus_client_parser_reads_metrics_before_and_after_events(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    fake_vendor.script("/orders", [REJECT])
    async with serving(tmp_path, fake_vendor.url) as app, httpx.AsyncClient() as client:
        fresh = (await client.get(f"{app.url}/metrics")).text
        await ingest(app, closed_won(), closed_won(), closed_won(amount=10))
        await failed(app)
        busy = (await client.get(f"{app.url}/metrics")).text

    # Prometheus's own parser (the text format, 0.0.4) reads every family and sample.
    before = {family.name: family for family in text_string_to_metric_families(fresh)}
    after = {family.name: family for family in text_string_to_metric_families(busy)}
    assert set(before) <= set(after)
    assert {"platypus_events_consumed", "platypus_flow_outcomes", "platypus_dead_letters_open"} <= (
        set(after)
    )
    outcomes = {
        (s.labels["flow"], s.labels["outcome"]): s.value
        for s in after["platypus_flow_outcomes"].samples
        if s.name.endswith("_total")
    }
    assert outcomes == {
        ("orders", "delivered"): 1,
        ("orders", "dead_lettered"): 1,
        ("orders", "filtered"): 1,
    }
    histogram = after["platypus_event_processing_seconds"]
    assert histogram.type == "histogram"
    assert any(s.labels.get("le") == "+Inf" for s in histogram.samples)
