"""``platypus dlq`` against a real project folder, with the app stopped and running."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from platypus.ops import FailureStatus, FailureStore, Indexer, LogOwnerLock
from platypus.ops.store import default_store_url
from platypus.runtime.embedded import LogReplayTarget, Platypus
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, ingest, write_project

REJECT = (400, {"error": "INVALID_FIELD", "message": "account is closed"})


def make_project(root: Path, vendor_url: str) -> Path:
    write_project(root, {"orders": ORDER_FLOW})
    (root / "platypus.yaml").write_text(
        textwrap.dedent(
            f"""
            flows: flows
            data_dir: data
            partitions: 4
            retry: {{max_attempts: 2, initial_delay: 10ms, max_delay: 20ms}}
            connections:
              vendor:
                adapter: http
                settings: {{base_url: "{vendor_url}", timeout: 5}}
            """
        ),
        encoding="utf-8",
    )
    return root


def run_events(root: Path, *events: dict[str, Any]) -> None:
    """Start the app, ingest ``events``, wait for every outcome, stop."""

    async def go() -> None:
        app = Platypus.from_project(root)
        await app.start(http=False)
        try:
            await ingest(app, *events)
            await app.drain()
        finally:
            await app.stop()

    asyncio.run(go())


def dlq(root: Path, *args: str, actor: str = "ana") -> Result:
    from platypus.ops.cli import dlq as group

    result = CliRunner().invoke(
        group,
        [args[0], "--project", str(root), "--actor", actor, *args[1:]],
        catch_exceptions=False,
    )
    return result


def listed(root: Path, *filters: str) -> list[dict[str, Any]]:
    result = dlq(root, "list", "--format", "json", *filters)
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.output)["entries"]
    return entries


def _documented(command: str) -> list[set[str]]:
    """The brace groups of ``platypus dlq COMMAND``'s row in docs/cli.md's JSON table."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    row = re.search(rf"^\| `platypus dlq {command}[^`]*` \| (.+) \|$", docs, re.MULTILINE)
    assert row, command
    return [{f.strip() for f in inner.split(",")} for inner in re.findall(r"\{([^{}]+)\}", row[1])]


def test_dlq_json_output_has_the_fields_docs_cli_lists(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [REJECT])
    run_events(root, closed_won())

    listed_json = json.loads(dlq(root, "list", "--json").output)
    assert set(listed_json) == _documented("list")[0]
    [entry] = listed_json["entries"]
    assert set(entry) == _documented("list")[1]
    shown = json.loads(dlq(root, "show", str(entry["id"]), "--json").output)
    assert set(shown) == _documented("list")[1] | _documented("show")[0]
    audit = json.loads(dlq(root, "audit", "--json").output)
    assert audit == []  # nothing done to failed events yet
    dlq(root, "discard", str(entry["id"]), "--reason", "test")
    [row] = json.loads(dlq(root, "audit", "--json").output)
    assert set(row) == _documented("audit")[0]


def test_list_show_replay_and_audit_from_the_command_line(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [REJECT])
    event = closed_won(owner_email="grace.hopper@example.com")
    run_events(root, event)

    table = dlq(root, "list")
    assert table.exit_code == 0, table.output
    assert "orders/create_order" in table.output
    assert "1 of 1 shown" in table.output
    [entry] = listed(root, "--flow", "orders", "--status", "open", "--search", "CLOSED")
    assert entry["event_id"] == event["id"]
    assert listed(root, "--flow", "invoices") == []
    assert (tmp_path / "data" / "failures.db").exists()

    shown = dlq(root, "show", str(entry["id"]))
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"failure {entry['id']}  open  orders/create_order\n")
    assert "platypus.exceptions.PermanentError" in shown.output
    assert "__connect.errors.exception.stacktrace:" in shown.output
    assert "grace.hopper" not in shown.output
    assert "personal data masked" in shown.output
    as_json = dlq(root, "show", str(entry["id"]), "--json")
    assert "grace.hopper" not in as_json.output
    assert json.loads(as_json.output)["event"]["data"]["owner_email"] == "***"
    revealed = dlq(root, "show", str(entry["id"]), "--reveal")
    assert "grace.hopper@example.com" in revealed.output

    replayed = dlq(root, "replay", str(entry["id"]))
    assert replayed.exit_code == 0, replayed.output
    assert "1 replayed" in replayed.output
    assert listed(root)[0]["status"] == "replaying"

    run_events(root)  # the app runs the replay; the vendor now answers 201
    assert listed(root)[0]["status"] == "resolved"
    assert len(fake_vendor.requests_to("/orders")) == 2

    audit = dlq(root, "audit", "--format", "json")
    actions = [(row["actor"], row["action"], row["count"]) for row in json.loads(audit.output)]
    assert actions == [("platypus", "resolve", 1), ("ana", "replay", 1), ("ana", "reveal", 1)]


def test_bulk_replay_and_discard_by_filter(tmp_path: Path, fake_vendor: FakeVendor) -> None:
    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [REJECT] * 4)
    run_events(root, *(closed_won() for _ in range(4)))
    ids = sorted(e["id"] for e in listed(root))

    discarded = dlq(root, "discard", str(ids[0]), "--reason", "test data")
    assert discarded.exit_code == 0, discarded.output
    assert "1 discarded" in discarded.output

    refused = dlq(root, "replay", "--flow", "orders")
    assert refused.exit_code == 2
    assert "--all-matching" in refused.output

    bulk = dlq(root, "replay", "--all-matching", "--flow", "orders", "--yes")
    assert bulk.exit_code == 0, bulk.output
    assert "3 replayed" in bulk.output
    run_events(root)
    statuses = {e["id"]: e["status"] for e in listed(root)}
    assert statuses == {
        ids[0]: "discarded",
        ids[1]: "resolved",
        ids[2]: "resolved",
        ids[3]: "resolved",
    }

    missing_reason = dlq(root, "discard", str(ids[1]))
    assert missing_reason.exit_code == 2
    not_open = dlq(root, "discard", str(ids[1]), "--reason", "x")
    assert not_open.exit_code == 2
    assert "only open entries" in not_open.output


def test_an_invalid_edited_event_is_refused_with_its_errors(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [REJECT])
    event = closed_won()
    run_events(root, event)
    [entry] = listed(root)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**event, "data": {**event["data"], "currency": 12}}))

    result = dlq(root, "replay", str(entry["id"]), "--edit", str(edited))

    assert result.exit_code == 2
    assert "data.currency" in result.output
    assert listed(root)[0]["status"] == "open"


def test_while_the_app_owns_the_log_replays_are_queued_for_its_indexer(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [REJECT])
    run_events(root, closed_won())
    [entry] = listed(root)

    async def go() -> None:
        app = Platypus.from_project(root)
        await app.start(http=False)
        store = FailureStore(default_store_url(tmp_path / "data"))
        indexer = Indexer(app.log, store, target=LogReplayTarget(app.log), flows=app.flows)
        lock = LogOwnerLock(tmp_path / "data")
        assert lock.acquire()  # what run_forever does in the app
        try:
            # The CLI runs in a thread here, as another process would run.
            result = await asyncio.to_thread(dlq, root, "replay", str(entry["id"]), "--wait", "0")
            assert result.exit_code == 0, result.output
            assert "1 marked for replay" in result.output
            assert store.get(entry["id"]).status is FailureStatus.REPLAYING  # type: ignore[union-attr]
            report = await indexer.index_once()
            assert report.dispatched == 1
            await app.drain()
            await indexer.index_once()
            assert store.get(entry["id"]).status is FailureStatus.RESOLVED  # type: ignore[union-attr]
        finally:
            lock.release()
            indexer.close()
            store.close()
            await app.stop()

    asyncio.run(go())
