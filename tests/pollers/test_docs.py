"""The ``pollers:`` example of docs/sources.md is a valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from platypus.config import ProjectConfig
from platypus.sources.pollers import PollerKind, poller_specs
from platypus.sources.pollers.poller import default_preset
from platypus.sources.pollers.presets import POLLER_PRESETS
from platypus.sources.pollers.sources import source_class

DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def test_the_documented_pollers_section_is_valid() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Pollers") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    config = ProjectConfig.model_validate(yaml.safe_load(block.group(1)))
    specs = poller_specs(config)
    assert {spec.kind for spec in specs.values()} == set(PollerKind)


def test_every_kind_has_a_documented_preset() -> None:
    text = DOC.read_text(encoding="utf-8")
    presets = dict(POLLER_PRESETS)
    for kind in PollerKind:
        # Vendors whose poller lives in their adapter folder bring their own presets.
        presets.update(source_class(kind.value).presets)
        assert default_preset(kind.value) in presets
    for name in presets:
        assert f"`{name}`" in text
