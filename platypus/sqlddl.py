"""Creating tables when several processes start at once against one database.

Workers, web replicas and the indexer each create the tables they use on
start. On PostgreSQL two ``CREATE TABLE`` of one name racing each other fail
with a unique violation on the catalog (``IF NOT EXISTS`` does not help), so
creators take turns under one transaction-scoped advisory lock.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["create_tables"]

_CREATE_LOCK = 0x706C6174  # "plat"


def create_tables(engine: sa.Engine | sa.Connection, metadata: sa.MetaData) -> None:
    """Create the tables and indexes of ``metadata`` that do not exist yet."""
    if isinstance(engine, sa.Connection):
        _create(engine, metadata)
        return
    with engine.begin() as conn:
        _create(conn, metadata)


def _create(conn: sa.Connection, metadata: sa.MetaData) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
    metadata.create_all(conn)
