"""A running Platypus with every kind of webhook source configured, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from platypus.config import IngressSettings, SourceSpec
from platypus.runtime.embedded import Platypus
from tests.fakes.vendor import FakeVendor
from tests.sources.payloads import ENVIRONMENT, SOURCES
from tests.support import running


@pytest.fixture
async def app(
    tmp_path: Path, fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Platypus]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    sources = {name: SourceSpec.model_validate(spec) for name, spec in SOURCES.items()}
    settings = IngressSettings(port=0, max_body_bytes=4096, max_batch=5)
    async with running(
        tmp_path, fake_vendor.url, {}, http=True, ingress=settings, sources=sources
    ) as started:
        yield started


@pytest.fixture
async def client(app: Platypus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url) as http:
        yield http
