"""Fixtures of the dashboard tests: the secrets of the configured users and tokens."""

from __future__ import annotations

import pytest

from tests.ops.web.support import secrets_env


@pytest.fixture(autouse=True)
def _ops_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets_env(monkeypatch)
