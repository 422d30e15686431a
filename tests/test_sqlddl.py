"""Tables created by several processes starting at once against one database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from platypus.sqlddl import create_tables


def _metadata() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        "outcomes",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(256), nullable=False, index=True),
    )
    return metadata, table


def _rival_creates_it_first(url: str, table: sa.Table, times: int = 1) -> list[int]:
    """Between SQLAlchemy's check and its CREATE, another process makes the table."""
    raced: list[int] = []

    @sa.event.listens_for(table, "before_create")
    def rival(*_: Any, **__: Any) -> None:
        if len(raced) < times:
            raced.append(1)
            other, _ = _metadata()
            engine = sa.create_engine(url)
            other.create_all(engine)
            engine.dispose()

    return raced


def test_a_sqlite_creator_that_loses_the_race_takes_the_table_the_other_made(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    metadata, table = _metadata()
    raced = _rival_creates_it_first(url, table)
    engine = sa.create_engine(url)

    create_tables(engine, metadata)

    assert raced == [1]
    with engine.begin() as conn:
        conn.execute(table.insert().values(event_id="evt-1"))
        assert conn.execute(sa.select(table.c.event_id)).scalars().all() == ["evt-1"]
    engine.dispose()


def test_a_sqlite_error_other_than_the_race_is_raised(tmp_path: Path) -> None:
    metadata = sa.MetaData()
    sa.Table("broken", metadata, sa.Column("id", sa.Integer, primary_key=True))
    (tmp_path / "store.db").write_bytes(b"not a database" * 100)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")

    with pytest.raises(sa.exc.DatabaseError):
        create_tables(engine, metadata)
    engine.dispose()
