"""The real PostgreSQL the tests use, and fresh databases on it.

The server is ``PLATYPUS_TEST_POSTGRES`` (a SQLAlchemy URL of a database the
user may create databases from; default the local ``postgres`` database as
user ``postgres``). When it cannot be reached, the cases that need it are
skipped, saying so, once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

__all__ = ["ADMIN_URL", "admin_engine", "fresh_database"]

ADMIN_URL = os.environ.get(
    "PLATYPUS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

_unreachable: list[str] = []


def admin_engine() -> sa.Engine:
    """An engine on the admin database; skips the test when the server is unreachable."""
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


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database named ``prefix_<random>``, dropped afterwards."""
    admin = admin_engine()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
