"""The dashboard in a real headless Chromium (Playwright), against a real flow run.

Chromium is Debian's ``/usr/bin/chromium`` (``make test`` installs it); the tests
skip, saying why, where it is missing. Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from platypus.ops.store import FailureStatus
from platypus.runtime.embedded import Platypus
from tests.fakes.vendor import FakeVendor
from tests.ops.web.support import PASSWORDS, REJECT, failed, serving
from tests.support import closed_won, ingest

CHROMIUM = os.environ.get("PLATYPUS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

async_playwright: Any
try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None


def _missing() -> str | None:
    if async_playwright is None:
        return "playwright is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return (
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium "
            "(apt-get install chromium), or set PLATYPUS_CHROMIUM"
        )
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium; skipped when missing, unless PLATYPUS_REQUIRE_BROWSER is set (CI)."""
    missing = _missing()
    if missing is not None:
        if os.environ.get("PLATYPUS_REQUIRE_BROWSER"):
            pytest.fail(f"PLATYPUS_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(missing)
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def _login(browser: Any, app: Platypus, user: str, start: str = "/ops/") -> Any:
    context = await browser.new_context(base_url=app.url)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto(start)
    assert "/ops/login" in page.url  # not logged in yet: sent to the login page
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORDS[user])
    await page.click("button[type=submit]")
    await page.wait_for_selector("#whoami")
    return page


async def _status_becomes(page: Any, status: str, tries: int = 60) -> None:
    for _ in range(tries):
        if (await page.text_content("#status") or "").strip() == status:
            return
        await page.wait_for_timeout(250)
        await page.reload()
    raise AssertionError(f"the entry did not become {status}")


async def test_an_operator_finds_a_failed_event_and_replays_it_after_the_fix(
    tmp_path: Path, fake_vendor: FakeVendor, browser: Any
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with serving(tmp_path, fake_vendor.url) as app:
        event = closed_won(amount=2500)
        await ingest(app, event)  # the vendor refuses it
        # Different keys run concurrently: the second goes in only once the first
        # has had the scripted refusal, so it is the one delivered.
        await app.drain()
        await ingest(app, closed_won(amount=3000))  # delivered: not in the list
        [entry] = await failed(app)

        page = await _login(browser, app, "olga", start="/ops/failures")
        assert page.url.endswith("/ops/failures")
        await page.goto("/ops/")
        assert "orders" in (await page.text_content("#by-flow") or "")
        assert await page.locator("svg.chart rect").count() == 24

        # Filter to it: flow and a word of the error.
        await page.goto("/ops/failures")
        await page.fill("#filters input[name=flow]", "orders")
        await page.fill("#filters input[name=q]", "is closed")
        await page.check("#filters input[name=status][value=open]")
        await page.click("#filters button[type=submit]")
        await page.wait_for_url("**/ops/failures?*")
        assert (await page.text_content("#count") or "").startswith("1 entry")
        row = page.locator(f"#failures tr[data-id='{entry.id}']")
        assert event["subject"] in (await row.text_content() or "")

        await row.locator("a").first.click()
        await page.wait_for_selector("#status")
        assert (await page.text_content("#status") or "").strip() == "open"
        assert "is closed" in (await page.text_content("#error-message") or "")
        assert "***" in (await page.text_content("#event") or "")  # owner_email masked

        # The vendor is fixed (its script is used up: it answers 201 now). Replay.
        await page.click("#replay")
        await page.wait_for_selector(".notice")
        await _status_becomes(page, "resolved")
        assert "replay" in (await page.text_content("#timeline") or "")
        stored = app.failures.get(entry.id)
        assert stored is not None
        assert stored.status is FailureStatus.RESOLVED
        assert fake_vendor.requests_to("/orders")[-1].json["external_id"] == event["subject"]

        await page.goto("/ops/audit")
        assert "olga" in (await page.text_content("#audit") or "")


async def test_a_bulk_replay_shows_its_progress_until_done(
    tmp_path: Path, fake_vendor: FakeVendor, browser: Any
) -> None:
    fake_vendor.script("/orders", [REJECT] * 3)
    async with serving(tmp_path, fake_vendor.url) as app:
        await ingest(app, closed_won(), closed_won(), closed_won())
        entries = await failed(app, 3)
        fingerprint = entries[0].fingerprint

        page = await _login(browser, app, "olga")
        await page.goto(f"/ops/failures?fingerprint={fingerprint}")
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("#bulk-replay")
        await page.wait_for_url("**/ops/jobs/*")
        assert (await page.text_content("#total") or "").strip() == "3"
        # The page polls the job's JSON (its own script: the CSP forbids inline ones).
        await page.locator("#state", has_text="Done.").wait_for(timeout=20_000)
        assert (await page.text_content("#n-resolved") or "").strip() == "3"
        assert (await page.text_content("#dispatched") or "").strip() == "3"


async def test_a_viewer_sees_failed_events_but_cannot_replay(
    tmp_path: Path, fake_vendor: FakeVendor, browser: Any
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with serving(tmp_path, fake_vendor.url) as app:
        await ingest(app, closed_won())
        [entry] = await failed(app)

        page = await _login(browser, app, "vera")
        await page.goto(f"/ops/failures/{entry.id}")
        assert (await page.text_content("#status") or "").strip() == "open"
        assert await page.locator("#replay").count() == 0
        assert await page.locator("#discard").count() == 0
        assert await page.locator("#reveal").count() == 0
        await page.goto("/ops/failures")
        assert await page.locator("#bulk-replay").count() == 0

        # Posting the form anyway (with the session's CSRF token) is refused.
        csrf = await page.get_attribute("input[name=csrf]", "value")
        answer = await page.request.post(
            f"/ops/failures/{entry.id}/replay", form={"csrf": csrf or ""}
        )
        assert answer.status == 403
        stored = app.failures.get(entry.id)
        assert stored is not None
        assert stored.status is FailureStatus.OPEN


async def test_after_logging_out_a_copy_of_the_cookie_no_longer_opens_the_dashboard(
    tmp_path: Path, fake_vendor: FakeVendor, browser: Any
) -> None:
    async with serving(tmp_path, fake_vendor.url) as app:
        page = await _login(browser, app, "olga", start="/ops/failures")
        copied = await page.context.cookies()
        assert copied, "no session cookie"

        await page.click("header form.who button[type=submit]")
        await page.wait_for_url("**/ops/login")

        # Someone who copied the cookie before the logout (another browser).
        other = await browser.new_context(base_url=app.url)
        await other.add_cookies(copied)
        stolen = await other.new_page()
        await stolen.goto("/ops/failures")
        assert "/ops/login" in stolen.url
        assert await stolen.locator("#whoami").count() == 0
        await other.close()


async def test_a_discarded_entry_shows_the_discard_last_and_is_not_called_resolved(
    tmp_path: Path, fake_vendor: FakeVendor, browser: Any
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with serving(tmp_path, fake_vendor.url) as app:
        await ingest(app, closed_won())
        [entry] = await failed(app)

        page = await _login(browser, app, "olga", start=f"/ops/failures/{entry.id}")
        await page.fill("input[name=reason]", "a duplicate of another order")
        await page.click("#discard")
        await page.wait_for_selector(".notice")
        assert (await page.text_content("#status") or "").strip() == "discarded"
        moments = await page.locator("#timeline li").all_text_contents()
        assert "discard: a duplicate of another order" in moments[-1]
        assert not any("resolved" in moment for moment in moments)
