"""The delivery ledger shared by Kafka workers, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from platypus.records import Delivery
from platypus.runtime.kafka.ledger import SqlLedger


async def test_the_shared_sql_ledger_remembers_results_on_each_database(store_url: str) -> None:
    first = SqlLedger(store_url)
    create = Delivery("evt-1", "orders", "create", "v1", {"id": "A-1"}, 1)
    await first.record([create])
    await first.record([create, create])  # recording again is fine, in one call or another
    first.close()
    second = SqlLedger(store_url)  # another worker, same database
    found = await second.delivered(["evt-1", "evt-2"])
    assert found == {("evt-1", "orders", "create"): {"id": "A-1"}}
    second.close()
