"""The Kafka worker's own work per event, in one process, without a broker.

::

    python bench/kafka_inprocess.py --events 5000
    python bench/kafka_inprocess.py --smoke    # 300 events: completes and checks (CI)
    valgrind --tool=cachegrind --cache-sim=no python bench/kafka_inprocess.py --events 1000
    valgrind --tool=cachegrind --cache-sim=no python bench/kafka_inprocess.py --events 5000

A `KafkaRuntime` for the bench flow (`bench._opportunity.FLOW`, to the ``sink``
adapter) runs with its real `batches`, `Consumer`, `Processor`, `SqliteLedger`,
`settle` and metrics; only faust is left out: the records are put where the
worker's fetch loop puts them (its buffer and its per-partition queue of
messages to acknowledge), the producer answers every send at once, and an
acknowledgement is counted. So what is measured is what Platypus does per
event, not faust, aiokafka or the broker: the figure to compare two versions
of the worker by, where ``bench/kafka_peers.py`` measures the whole process.

It prints the CPU time per event of the measured part. On shared cores that
varies by ±20% run to run; cachegrind's instruction counts do not: run it
under cachegrind with two event counts, and (instructions of the larger run -
those of the smaller) / (the difference in events) is the instructions an
event, start-up left out. The run fails unless every event was delivered,
acknowledged and counted in the metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._opportunity import FLOW, Events, timestamp
from platypus.config import load_config
from platypus.flow.loader import load_flows
from platypus.logging import configure_logging
from platypus.partitioning import partition_for
from platypus.records import Record
from platypus.runtime.kafka import worker
from platypus.runtime.kafka.worker import KafkaRuntime

PARTITIONS = 4
FETCH = 500  # records per fetch, about what aiokafka hands over from Tansu


class _Producer:
    """faust's producer as `KafkaRuntime.settle` uses it, answering at once."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, *_args: Any) -> asyncio.Future[None]:
        self.sent += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Consumer:
    """faust's consumer as `KafkaRuntime.settle` uses it: acknowledgements counted."""

    def __init__(self) -> None:
        self.acked = 0

    def ack(self, _message: Any) -> None:
        self.acked += 1


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "bench.yaml").write_text(yaml.safe_dump(FLOW, sort_keys=False))
    config = {
        "data_dir": str(root / "data"),
        "kafka": {"broker": "kafka://127.0.0.1:9", "partitions": PARTITIONS, "web_port": 1},
    }
    (project / "platypus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return project


def _records(count: int, keys: int) -> list[Record]:
    """The bench's events as the worker's fetch loop makes them, keyed and partitioned."""
    events = Events(count, keys, seed=7, run="m")
    stamp = timestamp(time.time())
    offsets = [0] * PARTITIONS
    records = []
    for i in range(count):
        key = events.subject(i)
        partition = partition_for(key, PARTITIONS)
        records.append(
            Record(
                topic="platypus.events",
                partition=partition,
                offset=offsets[partition],
                key=key,
                value=events.raw(i, stamp),
                timestamp=time.time(),
            )
        )
        offsets[partition] += 1
    return records


async def _run(runtime: KafkaRuntime, records: list[Record]) -> float:
    """Feed ``records`` through the runtime; the CPU seconds until all are settled."""
    consumer = runtime.consumer
    await runtime.connections.start()
    # As `platypus worker` does once everything is loaded (worker.run_worker).
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)
    task = asyncio.create_task(consumer.run(runtime))
    started = time.process_time()
    for start in range(0, len(records), FETCH):
        for record in records[start : start + FETCH]:
            pending = runtime._pending.setdefault(record.partition, deque())
            pending.append((record.offset, record))
            runtime._buffer.append(record)
        runtime._buffered.set()
        await asyncio.sleep(0)
        while len(runtime._buffer) >= worker._BATCH:
            runtime._taken.clear()
            await runtime._taken.wait()
    deadline = time.monotonic() + 600
    while sum(consumer.counts.values()) < len(records):
        if consumer.failure is not None or time.monotonic() > deadline:
            break  # `main` says what is missing
        await asyncio.sleep(0.001)
    cpu = time.process_time() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await consumer.stop(grace=1.0)
    await runtime.connections.close()
    runtime.ledger.close()
    return cpu


def main(argv: list[str] | None = None) -> int:
    """Run the events through the worker in process and print the CPU per event."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="300 events: completes and checks")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.keys = 300, 40
    # As the bench runs `platypus worker`: info level, JSON lines (none are written).
    configure_logging(json=True, level="info")
    root = Path(tempfile.mkdtemp(prefix="bench-kafka-inprocess-"))
    config = load_config(root=_project(root))
    flows = load_flows(config.resolve(config.flows))
    records = _records(args.events, args.keys)
    runtime = KafkaRuntime(config, flows, broker="kafka://127.0.0.1:9")  # never connected
    producer, acks = _Producer(), _Consumer()
    runtime.app.producer = producer  # type: ignore[assignment]
    runtime.app.consumer = acks  # type: ignore[assignment]
    cpu = asyncio.run(_run(runtime, records))
    consumed = f'platypus_events_consumed_total{{event_type="{FLOW["consumes"][0]}"}}'
    counted = [
        float(line.rpartition(" ")[2])
        for line in runtime.health.metrics.render().decode().splitlines()
        if line.startswith(consumed + " ")
    ]
    problems = []
    if runtime.consumer.counts != {"delivered": args.events}:
        problems.append(f"outcomes {runtime.consumer.counts}")
    if acks.acked != args.events or producer.sent != args.events:
        problems.append(f"{acks.acked} acknowledged, {producer.sent} outcomes produced")
    if counted != [args.events]:
        problems.append(f"the metrics counted {counted}")
    if problems:
        print(f"FAILED: {args.events} events, but {'; '.join(problems)}", file=sys.stderr)
        return 1
    print(f"{args.events} events: {cpu / args.events * 1e6:.1f} µs of CPU an event in process")
    print("every event delivered, acknowledged and counted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
