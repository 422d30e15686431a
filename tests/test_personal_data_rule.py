"""Personal data to free text: the same rule in ``platypus flows lint`` and at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from platypus.adapter import AdapterRegistry
from platypus.config import ConnectionSpec, ProjectConfig
from platypus.exceptions import ConfigurationError
from platypus.flow.lint import lint_paths
from platypus.flow.loader import load_flow
from platypus.runtime.connections import Connections
from platypus.schema_registry import SchemaRegistry

CONFIG = ProjectConfig(
    connections={"slack": ConnectionSpec(adapter="slack", settings={"token": {"env": "NONE"}})}
)
ADAPTERS = AdapterRegistry({"slack": "platypus_adapters.slack:SlackAdapter"})

FLOW = """\
name: leaver
consumes: people.worker.terminated.v1
steps:
  - name: notify
    to: slack.post_message
{allow}    payload:
      channel: "'#it'"
      text: "join(' ', [data.worker_id, data.first_name, data.reason || '-'])"
      blocks:
        - type: "'context'"
          elements: [{{type: "'mrkdwn'", text: "data.termination_type == 'voluntary'"}}]
"""


def flow_file(tmp_path: Path, allow: str) -> Path:
    path = tmp_path / "leaver.yaml"
    path.write_text(FLOW.format(allow=allow), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.default()


@pytest.mark.parametrize(
    ("allow", "refused"),
    [
        ("", ["data.first_name", "data.reason"]),
        ("    allow_personal_data: [data.first_name]\n", ["data.reason"]),
        ("    allow_personal_data: [first_name, data.reason]\n", []),
    ],
    ids=["nothing allowed", "one allowed", "all allowed"],
)
def test_lint_and_start_up_refuse_the_same_fields(
    schemas: SchemaRegistry, tmp_path: Path, allow: str, refused: list[str]
) -> None:
    path = flow_file(tmp_path, allow)

    findings = lint_paths([path], schemas=schemas, adapters=ADAPTERS, config=CONFIG)
    connections = Connections(CONFIG, ADAPTERS)
    if refused:
        with pytest.raises(ConfigurationError) as raised:
            connections.prepare([load_flow(path)], schemas)
        (finding,) = findings
        assert finding.code == "personal-data"
        assert f"({', '.join(refused)})" in finding.message
        assert f"({', '.join(refused)})" in str(raised.value)
        assert "flow 'leaver', step 'notify'" in str(raised.value)
    else:
        assert findings == []
        connections.prepare([load_flow(path)], schemas)  # starts: the step says so


def test_a_field_only_compared_is_not_sent(schemas: SchemaRegistry, tmp_path: Path) -> None:
    # termination_type is compared in the blocks, never posted; and it is not personal.
    path = flow_file(tmp_path, "    allow_personal_data: [data.first_name, data.reason]\n")

    assert lint_paths([path], schemas=schemas, adapters=ADAPTERS, config=CONFIG) == []
