"""The dashboard's "what happened to event X?": every outcome kept, successes included."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fakes.vendor import FakeVendor
from tests.ops.web.support import eventually, failed, login, serving
from tests.support import closed_won, ingest


async def test_the_events_page_and_api_show_an_events_outcomes_and_its_failed_entries(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [201, (400, {"error": "closed"})])
    async with serving(tmp_path, fake_vendor.url) as app:
        good = closed_won(amount=2000)
        bad = closed_won(good["subject"], amount=3000)
        await ingest(app, good, bad)
        [entry] = await failed(app)
        await eventually(
            lambda: app.failures.outcome_history(event_id=good["id"]), what="good's history"
        )
        async with httpx.AsyncClient(base_url=app.url) as client:
            await login(client, "vera")
            page = await client.get("/ops/events", params={"id": good["id"]})
            assert page.status_code == 200
            assert "delivered" in page.text
            api = (await client.get("/ops/api/events", params={"key": good["subject"]})).json()
            assert [(o["event_id"], o["status"]) for o in api["outcomes"]] == [
                (good["id"], "delivered"),
                (bad["id"], "dead_lettered"),
            ]
            assert all(o["detail"] is None for o in api["outcomes"])
            failed_page = await client.get("/ops/events", params={"id": bad["id"]})
            assert f"/ops/failures/{entry.id}" in failed_page.text
            detail = await client.get(f"/ops/failures/{entry.id}")
            assert "dead-lettered in orders/create_order" in detail.text
            missing = await client.get("/ops/api/events")
            assert missing.status_code == 400
