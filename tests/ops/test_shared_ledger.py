"""The delivery ledger shared by Kafka workers, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from platypus.ledger import SqlLedger


async def test_the_shared_sql_ledger_remembers_results_on_each_database(store_url: str) -> None:
    first = SqlLedger(store_url)
    await first.put(("evt-1", "orders", "create"), {"id": "A-1"})
    await first.put(("evt-1", "orders", "create"), {"id": "A-1"})  # a second put is fine
    first.close()
    second = SqlLedger(store_url)  # another worker, same database
    assert await second.get(("evt-1", "orders", "create")) == (True, {"id": "A-1"})
    assert await second.get(("evt-1", "orders", "notify")) == (False, None)
    second.close()
