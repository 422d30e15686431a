"""The ``platypus`` command, run as users run it: a subprocess from the installed script."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, free_port, start_platypus, wait_healthy

REPO = Path(__file__).resolve().parent.parent
PLATYPUS = str(Path(sys.executable).parent / "platypus")


def platypus(*args: str, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLATYPUS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_version() -> None:
    result = platypus("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("platypus, version ")


def test_schemas_list_names_each_type_and_its_personal_fields() -> None:
    result = platypus("schemas", "list")

    assert result.returncode == 0
    rows = {line.split("\t")[0]: line for line in result.stdout.splitlines()}
    assert set(rows) >= {
        "sales.opportunity.closed_won.v1",
        "finance.invoice.posted.v1",
        "people.worker.hired.v1",
    }
    assert "owner_email" in rows["sales.opportunity.closed_won.v1"]
    assert "work_email" in rows["people.worker.hired.v1"]


def test_schemas_export_writes_one_json_schema_per_type(tmp_path: Path) -> None:
    result = platypus("schemas", "export", str(tmp_path / "out"))

    assert result.returncode == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "sales.opportunity.closed_won.v1.json" in written
    schema = json.loads((tmp_path / "out" / "people.worker.hired.v1.json").read_text())
    assert schema["x-event-type"] == "people.worker.hired.v1"
    assert schema["properties"]["work_email"]["x-personal-data"] is True


def test_flows_lint_passes_on_the_shipped_flows() -> None:
    result = platypus("flows", "lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems found" in result.stdout


def test_flows_lint_reports_a_typo_with_file_line_and_column_and_fails(tmp_path: Path) -> None:
    flow = tmp_path / "flows" / "orders.yaml"
    flow.parent.mkdir()
    flow.write_text(ORDER_FLOW.replace("data.opportunity_id", "data.oportunity_id"))
    result = platypus("flows", "lint", str(flow), "--project", str(REPO))

    assert result.returncode == 1
    line = next(
        n for n, text in enumerate(flow.read_text().splitlines(), 1) if "oportunity" in text
    )
    assert f"{flow}:{line}:" in result.stdout
    assert "did you mean 'data.opportunity_id'" in result.stdout


def test_flows_lint_json_format_is_machine_readable(tmp_path: Path) -> None:
    flow = tmp_path / "broken.yaml"
    flow.write_text("name: broken\nconsumes: sales.opportunity.closed_won.v1\nstesp: []\n")
    result = platypus("flows", "lint", str(flow), "--format", "json", "--project", str(REPO))

    assert result.returncode == 1
    findings = json.loads(result.stdout)
    assert {f["line"] for f in findings} >= {3}
    assert all(f["file"] == str(flow) for f in findings)


def test_run_refuses_a_flow_with_a_typo_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "orders.yaml").write_text(ORDER_FLOW.replace("payload:", "payloda:"))
    result = platypus("run", "--project", str(tmp_path), "--once", cwd=tmp_path)

    assert result.returncode == 2
    assert "orders.yaml:" in result.stderr
    assert "did you mean 'payload'" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_an_unknown_connection_before_starting(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "orders.yaml").write_text(ORDER_FLOW.replace("vendor.post", "vendr.post"))
    result = platypus("run", "--project", str(tmp_path), "--once", cwd=tmp_path)

    assert result.returncode == 2
    assert "unknown adapter 'vendr'" in result.stderr
    assert "step 'create_order'" in result.stderr


def test_demo_runs_the_sample_events_end_to_end_and_summarises(tmp_path: Path) -> None:
    result = platypus("run", "--demo", "--once", "--data-dir", str(tmp_path / "demo"))

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Sent 8 sample events: 5 accepted, 3 refused at the door" in out
    summary = {
        words[0]: int(words[-1])
        for words in (line.split() for line in out.splitlines())
        if len(words) == 2 and words[-1].isdigit()
    }
    assert summary == {"delivered": 2, "filtered": 2, "dead-lettered": 1}
    assert "retried          2" in out
    assert "worker-hired-to-it" in out  # the dead letter is shown with its flow
    # The refused line with personal data shows no personal value.
    assert "ada.quill@example.com" not in out + result.stderr


async def test_send_posts_a_jsonl_file_in_order_and_reports_rejections(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "orders.yaml").write_text(textwrap.dedent(ORDER_FLOW))
    (tmp_path / "platypus.yaml").write_text(
        f"data_dir: data\nconnections:\n  vendor:\n    adapter: http\n"
        f"    settings: {{base_url: '{fake_vendor.url}'}}\n"
    )
    good = [closed_won(amount=1000 + i) for i in range(5)]
    lines = [json.dumps(e) for e in good[:3]]
    lines.append(json.dumps(closed_won(amount="lots")))
    lines.append("{broken")
    lines += [json.dumps(e) for e in good[3:]]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n")
    port = free_port()
    process = start_platypus(tmp_path, port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process)
        result = platypus(
            "send", str(events_file), "--url", f"http://127.0.0.1:{port}", "--batch-size", "2"
        )
        await fake_vendor.wait_for(5, path="/orders", within=15)
        again = platypus("send", str(events_file), "--url", f"http://127.0.0.1:{port}", "--json")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    assert result.returncode == 1  # some lines were rejected
    assert result.stdout.strip() == "5 accepted, 0 duplicate(s), 2 rejected"
    assert f"{events_file}:4: 422" in result.stderr
    assert f"{events_file}:5: 400: malformed JSON" in result.stderr
    amounts = [r.json["amount"] for r in fake_vendor.requests_to("/orders")]
    assert sorted(amounts) == [1000, 1001, 1002, 1003, 1004]
    # --json: the report alone on stdout, the fields docs/cli.md lists.
    assert again.returncode == 1
    report = json.loads(again.stdout)
    assert set(report) == {"accepted", "duplicates", "rejected", "total"}
    assert (report["accepted"], report["duplicates"], report["total"]) == (0, 5, 7)
    assert [(r["line"], r["reason"][:3]) for r in report["rejected"]] == [(4, "422"), (5, "400")]


def test_send_to_nothing_listening_says_so(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(json.dumps(closed_won()) + "\n")
    result = platypus("send", str(events_file), "--url", f"http://127.0.0.1:{free_port()}")

    assert result.returncode == 2
    assert "Is `platypus run` up?" in result.stderr


@pytest.mark.parametrize("args", [["run", "--help"], ["flows", "lint", "--help"]])
def test_help_describes_the_commands(args: list[str]) -> None:
    result = platypus(*args)
    assert result.returncode == 0
    assert "Usage: platypus" in result.stdout


def test_demo_in_a_project_of_its_own_runs_that_project(tmp_path: Path) -> None:
    demo = REPO / "samples" / "demo"
    shutil.copy(demo / "platypus.yaml", tmp_path / "platypus.yaml")
    (tmp_path / "flows").mkdir()
    shutil.copy(demo / "flows" / "closed-won-to-orders.yaml", tmp_path / "flows")
    (tmp_path / "samples").mkdir()
    first = (demo / "events.jsonl").read_text().splitlines()[0]
    (tmp_path / "samples" / "deal.event.json").write_text(first + "\n")

    result = platypus("run", "--demo", "--once", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    # One event and one flow: this project's, not the eight of samples/demo.
    assert "Sent 1 sample event: 1 accepted, 0 refused at the door" in result.stdout
    assert "delivered        1" in result.stdout
    assert "flows in flows)" in result.stdout
