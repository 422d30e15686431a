"""Fixtures of the failed-event store tests: a store on SQLite and on PostgreSQL.

PostgreSQL is the server at ``PLATYPUS_TEST_POSTGRES`` (a SQLAlchemy URL of a
database the user may create databases from; default the local ``postgres``
database as user ``postgres``). Each test gets a fresh database, dropped after.
When the server cannot be reached, the PostgreSQL cases are skipped, saying so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from platypus.ops.store import FailureStore

ADMIN_URL = os.environ.get(
    "PLATYPUS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

_unreachable: list[str] = []


def _admin() -> sa.Engine:
    if _unreachable:
        pytest.skip(_unreachable[0])
    engine = sa.create_engine(
        ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = f"PostgreSQL at {ADMIN_URL} is unreachable ({type(exc.orig).__name__}); "
        reason += "set PLATYPUS_TEST_POSTGRES to a server to run these cases"
        _unreachable.append(reason)
        pytest.skip(reason)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store database, on each back end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'failures.db'}"
        return
    admin = _admin()
    name = f"platypus_ops_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[FailureStore]:
    """A created, empty `FailureStore` on each back end."""
    found = FailureStore(store_url)
    found.create()
    try:
        yield found
    finally:
        found.close()
