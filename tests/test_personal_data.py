"""Personal data a vendor echoes back, in the places the runtime keeps it: deliveries, outcomes.

The whole picture (logs, dead letters, both stores, the dashboard, the CLI) is
scanned in tests/faults/test_leaks.py; these pin down each place on its own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from platypus.core import Failed
from platypus.deadletter import dead_letter
from platypus.records import Record
from tests.fakes.vendor import FakeVendor
from tests.support import ingest, running, worker_hired

EMAIL = "Ada.Quillfeather@Example.com"

ONE_STEP = """
name: onboard
consumes: people.worker.hired.v1
steps:
  - name: create_worker
    to: vendor.post
    params: {path: /workers}
    payload: {worker_id: data.worker_id, email: data.work_email}
"""

TWO_STEPS = """
name: onboard
consumes: people.worker.hired.v1
steps:
  - name: create_account
    to: vendor.post
    params: {path: /accounts}
    payload: {email: data.work_email}
  - name: welcome
    to: vendor.post
    params: {path: /welcome}
    payload: {login: steps.create_account.login}
"""


def _deliveries(app: Any) -> dict[str, Any]:
    return {row["step"]: json.loads(row["result"]) for row in app.log.delivery_rows()}


async def test_a_final_steps_answer_is_stored_with_the_events_personal_values_masked(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    answer = {"id": "w-1", "email": EMAIL.lower(), "echo": {"name": "ADA QUILLFEATHER"}}
    fake_vendor.script("/workers", [(201, answer)])
    async with running(tmp_path, fake_vendor.url, {"onboard": ONE_STEP}) as app:
        await ingest(app, worker_hired(work_email=EMAIL, first_name="Ada"))
        await app.drain()
        stored = _deliveries(app)

    assert stored == {"create_worker": {"id": "w-1", "email": "***", "echo": {"name": "*** ***"}}}


async def test_an_earlier_steps_answer_is_kept_whole_for_the_steps_after_it(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    # The second step sends what the first one answered: after a restart between the
    # two it reads it back from the store, so that answer cannot be masked.
    login = EMAIL.lower()
    fake_vendor.script("/accounts", [(201, {"login": login})])
    fake_vendor.script("/welcome", [(201, {"sent_to": login})])
    async with running(tmp_path, fake_vendor.url, {"onboard": TWO_STEPS}) as app:
        await ingest(app, worker_hired(work_email=EMAIL))
        await app.drain()
        stored = _deliveries(app)

    assert fake_vendor.requests_to("/welcome")[0].json == {"login": login}
    assert stored == {"create_account": {"login": login}, "welcome": {"sent_to": "***"}}


async def test_an_echoed_value_is_masked_in_the_outcome_and_the_dead_letter(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    body = '{"message": "user \\"' + EMAIL.lower().replace("@", "\\u0040") + '\\" exists"}'
    fake_vendor.script("/workers", [(409, body, {"content-type": "application/json"})])
    async with running(tmp_path, fake_vendor.url, {"onboard": ONE_STEP}) as app:
        await ingest(app, worker_hired(work_email=EMAIL))
        await app.drain()
        [outcome] = app.log.outcomes()
        [letter] = app.log.read("platypus.dead-letter")

    assert outcome["status"] == "dead_lettered"
    assert "***" in outcome["detail"]
    headers = {k: v.decode() for k, v in letter.headers}
    for text in (outcome["detail"], *headers.values()):
        assert "quillfeather" not in text.lower()
        assert "\\u0040example" not in text.lower()


def test_a_source_header_named_like_a_credential_is_masked_in_the_dead_letter() -> None:
    source = Record(
        topic="platypus.events",
        partition=0,
        offset=7,
        key="k",
        value=b"{}",
        headers=(("ce_id", b"evt-1"), ("Authorization", b"Bearer abc.def"), ("x-token", b"t")),
    )
    failure = Failed(error_class="E", message="no", retryable=False)
    now = datetime.now(UTC)
    letter = dead_letter(
        source,
        failure,
        flow="f",
        flow_version="v",
        step="s",
        event_id="evt-1",
        event_type="t",
        attempts=1,
        first_failure=now,
        last_failure=now,
    )
    assert letter.header("ce_id") == "evt-1"
    assert letter.header("Authorization") == "***"
    assert letter.header("x-token") == "***"
    assert letter.value == b"{}"
