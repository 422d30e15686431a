"""A running Platypus with every webhook source configured, for the fault-injection tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from platypus.config import SourceSpec
from platypus.runtime.embedded import Platypus
from tests.fakes.vendor import FakeVendor
from tests.sources.payloads import ENVIRONMENT, SOURCES
from tests.support import ORDER_FLOW, running


@pytest.fixture
async def app(
    tmp_path: Path, fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Platypus]:
    """The orders flow and every kind of webhook source, with the default body limits."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    sources = {name: SourceSpec.model_validate(spec) for name, spec in SOURCES.items()}
    async with running(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, http=True, sources=sources
    ) as started:
        yield started


@pytest.fixture
async def client(app: Platypus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
        yield http
