"""Creating tables when several processes start at once against one database.

Workers, web replicas and the indexer each create the tables they use on
start. On PostgreSQL two ``CREATE TABLE`` of one name racing each other fail
with a unique violation on the catalog (``IF NOT EXISTS`` does not help), so
creators take turns under one transaction-scoped advisory lock. SQLite has no
such lock, and Python's driver runs DDL outside a transaction: between
SQLAlchemy's check and its ``CREATE`` another process may create the table,
so a creator that loses that race looks again and creates what is still missing.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["create_tables"]

_CREATE_LOCK = 0x706C6174  # "plat"


_SQLITE_ATTEMPTS = 5


def create_tables(engine: sa.Engine | sa.Connection, metadata: sa.MetaData) -> None:
    """Create the tables and indexes of ``metadata`` that do not exist yet."""
    for attempt in range(1, _SQLITE_ATTEMPTS + 1):
        try:
            if isinstance(engine, sa.Connection):
                _create(engine, metadata)
            else:
                with engine.begin() as conn:
                    _create(conn, metadata)
            return
        except sa.exc.OperationalError as exc:
            # Another process created it between the check and the CREATE.
            lost_race = engine.dialect.name == "sqlite" and "already exists" in str(exc.orig)
            if not lost_race or attempt == _SQLITE_ATTEMPTS:
                raise


def _create(conn: sa.Connection, metadata: sa.MetaData) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
    metadata.create_all(conn)
