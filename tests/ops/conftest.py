"""Fixtures of the failed-event store tests: a store on SQLite and on PostgreSQL.

PostgreSQL is the server at ``PLATYPUS_TEST_POSTGRES`` (a SQLAlchemy URL of a
database the user may create databases from; default the local ``postgres``
database as user ``postgres``). Each test gets a fresh database, dropped after.
When the server cannot be reached, the PostgreSQL cases are skipped, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from platypus.ops.store import FailureStore
from tests.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store database, on each back end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'failures.db'}"
        return
    with fresh_database("platypus_ops") as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[FailureStore]:
    """A created, empty `FailureStore` on each back end."""
    found = FailureStore(store_url)
    found.create()
    try:
        yield found
    finally:
        found.close()
