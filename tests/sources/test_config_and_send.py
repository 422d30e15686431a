"""Sources in platypus.yaml, and the progress and summary of `platypus send`."""

# ruff: noqa: E501 -- YAML is the block of docs/sources.md, verbatim, one source a line

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from platypus.config import IngressSettings, load_config
from platypus.exceptions import ConfigurationError
from platypus.ingress import Ingress
from platypus.schema_registry import SchemaRegistry
from platypus.send import SendReport, count_lines, render_summary, send_lines
from platypus.sources import DecoderRegistry
from platypus.web import create_app
from tests.support import closed_won

YAML = """
sources:
  zuora:      {decoder: zuora_callout, auth: {type: basic, username: zuora, password: {env: ZUORA_CALLOUT_PASSWORD}}}
  salesforce: {decoder: salesforce_outbound, organization_id: 00D000000000001AAA}
  greenhouse: {decoder: hmac, secret: {env: GREENHOUSE_SECRET}, signature_header: Signature, algorithm: sha256, format: "sha256 {hex}"}
  bamboohr:   {decoder: hmac, secret: {env: BAMBOO_SECRET}, signature_header: X-BambooHR-Signature, timestamp_header: X-BambooHR-Timestamp, signed: "{body}{timestamp}", max_age: 5m}
"""


class _NullSink:
    async def append(self, topic: str, items: object) -> list[None]:
        return []

    async def reject(self, reason: str, errors: object, body: bytes) -> int:
        return 0


def _ingress() -> Ingress:
    return Ingress(_NullSink(), SchemaRegistry.default(), IngressSettings(), "events")


def test_the_documented_sources_block_loads_and_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ZUORA_CALLOUT_PASSWORD", "GREENHOUSE_SECRET", "BAMBOO_SECRET"):
        monkeypatch.setenv(name, "s3cret")
    (tmp_path / "platypus.yaml").write_text(YAML)
    config = load_config(root=tmp_path)

    assert config.sources["bamboohr"].settings["max_age"] == "5m"
    app = create_app(_ingress(), sources=config.sources, data_dir=tmp_path)
    assert {route.path for route in app.routes} >= {"/webhooks/{source}", "/openapi.json"}  # type: ignore[attr-defined]


def test_a_missing_secret_stops_start_up_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GREENHOUSE_SECRET", raising=False)
    (tmp_path / "platypus.yaml").write_text(YAML)
    config = load_config(root=tmp_path)

    with pytest.raises(ConfigurationError, match="GREENHOUSE_SECRET"):
        create_app(_ingress(), sources={"greenhouse": config.sources["greenhouse"]})


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("sources: {x: {decoder: zuora_calout, auth: []}}", "did you mean 'zuora_callout'"),
        ("sources: {x: {decoder: zuora_callout, auth: []}}", "sources.x: auth"),
        ("sources: {x: {decoder: hmac, secret: {env: K}, format: '{b64}'}}", "format must"),
        (
            "sources: {x: {decoder: hmac, secret: {env: K}, signed: '{body}{timestamp}'}}",
            "timestamp_header",
        ),
        ("sources: {x: {decoder: hmac, secret: {env: K}}}", "no mapping preset called 'x'"),
        ("sources: {x: {decoder: salesforce_outbound}}", "organization_id"),
    ],
)
def test_bad_source_settings_are_refused_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml: str, message: str
) -> None:
    monkeypatch.setenv("K", "key")
    (tmp_path / "platypus.yaml").write_text(yaml)
    config = load_config(root=tmp_path)

    with pytest.raises(ConfigurationError, match=message):
        create_app(_ingress(), sources=config.sources)


def test_a_source_name_must_fit_in_a_url(tmp_path: Path) -> None:
    (tmp_path / "platypus.yaml").write_text("sources: {'Bad Name': {decoder: hmac}}")

    with pytest.raises(ConfigurationError, match=r"sources\.Bad Name"):
        load_config(root=tmp_path)


def test_the_registry_lists_the_built_in_decoders() -> None:
    assert list(DecoderRegistry.default()) >= ["hmac", "salesforce_outbound", "zuora_callout"]


async def test_send_reports_progress_for_every_line(app: object, client: httpx.AsyncClient) -> None:
    lines = [
        *(f"{json.dumps(closed_won())}\n" for _ in range(3)),
        "{broken\n",
        "\n",
        f"{json.dumps(closed_won(amount='lots'))}\n",
    ]
    seen: list[int] = []

    report = await send_lines(
        f"{client.base_url}/events", lines, batch_size=2, client=client, on_progress=seen.append
    )

    assert sum(seen) == count_lines(lines) == 5
    assert report.headline == "3 accepted, 0 duplicate(s), 2 rejected"


def test_the_summary_groups_rejections_by_why_then_lists_each_line() -> None:
    report = SendReport(
        accepted=5,
        rejected=[
            (4, "422: the event was refused: data.amount: Input should be a valid decimal"),
            (5, "400: malformed JSON at line 1 column 2: Expecting property name"),
            (9, "422: the event was refused: subject: Field required"),
        ],
    )

    assert render_summary(report, "events.jsonl").splitlines() == [
        "Rejected (recorded by the ingress as rejected):",
        "      1  400 not JSON, or not an event",
        "      2  422 does not match its schema",
        "",
        "  events.jsonl:4: 422: the event was refused: data.amount: Input should be a valid decimal",
        "  events.jsonl:5: 400: malformed JSON at line 1 column 2: Expecting property name",
        "  events.jsonl:9: 422: the event was refused: subject: Field required",
    ]
    assert render_summary(SendReport(accepted=1), "x") == ""
