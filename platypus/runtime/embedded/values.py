"""How the embedded log stores event values: zstd with a dictionary trained on the log's own.

A 750-byte event shares most of its bytes with the events before it (field
names, types, sources), but not with itself: zstd alone gets it to ~430 bytes,
while zstd with a 16 KiB dictionary trained on a few thousand earlier events
gets it to ~140, in ~3-5 us of CPU to compress and ~2 us to read back.

* A dictionary is trained from the most recent values in the log, read back
  from the file when a training is due (not kept in memory), once
  `TRAIN_AFTER` have been appended with none (`EventLog` does it off the writer
  thread; `train` runs zstd's trainer in a short-lived child process, so the
  memory it touches goes back to the system with it) and kept in the log's
  ``dictionaries`` table under an id; each record
  says in ``records.dictionary`` which one its value was compressed with, or
  NULL for a value stored as it came (records from before the first dictionary,
  and any value the dictionary does not make smaller).
* The dictionary row is written by the writer in the same transaction as, or one
  before, the first record that uses it, so a crash never leaves a record
  without its dictionary.
* When the values stop fitting the dictionary (a new event type dominates),
  the stored size of a window of `RETRAIN_WINDOW` values rises against the first
  window's; past `RETRAIN_RATIO` times it a new dictionary is trained from the
  recent values. Records keep the dictionary they were written with: one is
  deleted only once no record refers to it (`EventLog.compact`).

Every read of a stored value goes through `ValueReader.decode`, which gives back
exactly the bytes that were appended: what was validated is what flows and dead
letters see.
"""

from __future__ import annotations

import sqlite3
import struct
import subprocess
import sys
import threading
from array import array
from collections.abc import Sequence

import structlog
import zstandard

from platypus.exceptions import StoredDataError

__all__ = [
    "DICTIONARY_SIZE",
    "LEVEL",
    "RETRAIN_RATIO",
    "RETRAIN_WINDOW",
    "SAMPLES",
    "SAMPLE_BYTES",
    "TRAIN_AFTER",
    "TRAIN_TIMEOUT",
    "ValueReader",
    "ValueWriter",
    "train",
]

LEVEL = 3
"""zstd's level: 3 is its default; higher levels gained a few bytes for twice the CPU."""
DICTIONARY_SIZE = 16 * 1024
"""Bytes of dictionary; 16 KiB holds what a few event types share (100x under the samples)."""
SAMPLES = 2000
"""The most recent values a dictionary is trained on (~1.5 MB of 750-byte events),
read back from the log when a training is due."""
SAMPLE_BYTES = 4 * 1024 * 1024
"""At most this many bytes of them are read (fewer values when events are large)."""
TRAIN_AFTER = 2000
"""Values appended without a dictionary before one is trained."""
RETRAIN_WINDOW = 10_000
"""Values per window over which the stored size is compared with the first window's."""
RETRAIN_RATIO = 1.5
"""A window stored this many times larger (relative to its raw size) than the first
window after the dictionary was made has another dictionary trained."""


TRAIN_TIMEOUT = 60.0
"""Seconds the trainer's process may take (it takes ~0.2 s for 2,000 values)."""

_log = structlog.get_logger("platypus.runtime")

# The trainer's process: the samples on stdin (their count, their lengths, then
# their bytes), the dictionary on stdout; exit status 3 when nothing was learnt.
# It imports only zstandard (not Platypus), in ~50 ms. f=14: the trainer's
# frequency table at 2^14 entries, not 2^20: the same dictionary for these
# samples (137 B an event either way) for ~7 MiB less memory touched.
_TRAINER = """
import struct, sys
from array import array
import zstandard
size, level = int(sys.argv[1]), int(sys.argv[2])
stream = sys.stdin.buffer
(count,) = struct.unpack("<I", stream.read(4))
lengths = array("I")
lengths.frombytes(stream.read(lengths.itemsize * count))
data = memoryview(stream.read())
samples, at = [], 0
for length in lengths:
    samples.append(bytes(data[at : at + length]))
    at += length
try:
    trained = zstandard.train_dictionary(size, samples, level=level, f=14)
except zstandard.ZstdError:
    sys.exit(3)
sys.stdout.buffer.write(trained.as_bytes())
"""
_NOTHING_LEARNT = 3


def train(samples: Sequence[bytes]) -> bytes | None:
    """A dictionary trained on ``samples``, or None when they are too few or too alike,
    or the trainer failed (then logged; values stay raw and the log tries again later).

    zstd's trainer touches several MiB for 2,000 values that the allocator would
    keep (holes in the C heap that ``malloc_trim`` cannot hand back), so it runs in
    a child process of its own; where there is no interpreter to start, here.
    """
    total = sum(len(s) for s in samples)
    # zstd's trainer wants some 100 times the dictionary's size in samples.
    size = min(DICTIONARY_SIZE, total // 100)
    if len(samples) < 8 or size < 256:  # below this nothing is learnt
        return None
    if not sys.executable:  # embedded in another program: no interpreter to start
        return _train_here(size, samples)
    try:
        data = _train_in_child(size, samples)
        if data is not None:
            _check(data, samples[-1])
    except (OSError, subprocess.SubprocessError, _TrainerError) as exc:
        _log.warning(
            "log_dictionary_training_failed",
            error=str(exc) or type(exc).__name__,
            samples=len(samples),
            next="values are stored uncompressed; training is tried again later",
        )
        return None
    return data


class _TrainerError(Exception):
    """The trainer's process failed or gave back something that is not a dictionary."""


def _train_here(size: int, samples: Sequence[bytes]) -> bytes | None:
    try:
        trained = zstandard.train_dictionary(size, list(samples), level=LEVEL, f=14)
        return trained.as_bytes()
    except zstandard.ZstdError:
        return None  # e.g. samples all the same: raw values are fine


def _train_in_child(size: int, samples: Sequence[bytes]) -> bytes | None:
    lengths = array("I", [len(s) for s in samples])
    # -P: not the working directory on sys.path (a zstandard.py there is not imported).
    with subprocess.Popen(
        [sys.executable, "-P", "-c", _TRAINER, str(size), str(LEVEL)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        assert child.stdin is not None  # for mypy: PIPE was asked for
        try:
            # Written one by one: no joined copy of the samples in this process.
            child.stdin.write(struct.pack("<I", len(lengths)))
            child.stdin.write(lengths.tobytes())
            for sample in samples:
                child.stdin.write(sample)
        except BrokenPipeError:
            pass  # it died early: its exit status says how
        try:  # flushes and closes stdin, then reads both pipes
            out, err = child.communicate(timeout=TRAIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
    if child.returncode == _NOTHING_LEARNT:
        return None
    if child.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise _TrainerError(f"the trainer exited with status {child.returncode}: {last[0]}")
    return out


def _check(data: bytes, sample: bytes) -> None:
    """Raise `_TrainerError` unless ``data`` is a dictionary that gives ``sample`` back."""
    try:
        made = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
        packed = zstandard.ZstdCompressor(level=LEVEL, dict_data=made).compress(sample)
        if zstandard.ZstdDecompressor(dict_data=made).decompress(packed) == sample:
            return
    except zstandard.ZstdError:
        pass
    raise _TrainerError("the trainer gave back something that is not a zstd dictionary")


class ValueWriter:
    """Compresses values with one dictionary (on the log's writer thread only)."""

    def __init__(self, dictionary_id: int, data: bytes) -> None:
        self.dictionary_id = dictionary_id
        compression = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
        # The record says which dictionary it used: no dictionary id in the frame.
        # The frame keeps the content size, so a read allocates once.
        self._compressor = zstandard.ZstdCompressor(
            level=LEVEL, dict_data=compression, write_dict_id=False, write_checksum=False
        )

    def encode(self, value: bytes) -> tuple[bytes, int | None]:
        """(what to store, its dictionary id), or (``value``, None) when it does not shrink."""
        stored = self._compressor.compress(value)
        if len(stored) < len(value):
            return stored, self.dictionary_id
        return value, None


class ValueReader:
    """Gives back the values as appended, loading each dictionary once from ``conn``.

    Safe to use from several threads: a decompressor is not, so they take turns.
    """

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        self._conn = conn
        self._where = where
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}
        self._lock = threading.Lock()

    def decode(self, value: bytes, dictionary: int | None, record: str) -> bytes:
        """The value of ``record`` (named in errors) as it was appended."""
        if dictionary is None:
            return value
        with self._lock:
            found = self._decompressors.get(dictionary)
            if found is None:
                found = self._decompressors[dictionary] = self._load(dictionary, record)
            try:
                return found.decompress(value)
            except zstandard.ZstdError as exc:  # a damaged value or dictionary
                raise StoredDataError(
                    f"the value of record {record} in {self._where} cannot be read with "
                    f"dictionary {dictionary} ({exc}): the file is damaged or was changed "
                    "outside Platypus. Restore the data directory from a backup, or move "
                    "it away and start again."
                ) from None

    def _load(self, dictionary: int, record: str) -> zstandard.ZstdDecompressor:
        row = self._conn.execute(
            "SELECT data FROM dictionaries WHERE id = ?", (dictionary,)
        ).fetchone()
        if row is None:
            raise StoredDataError(
                f"record {record} in {self._where} was compressed with dictionary "
                f"{dictionary}, which is not in the file: it was changed outside Platypus. "
                "Restore the data directory from a backup, or move it away and start again."
            )
        data = zstandard.ZstdCompressionDict(bytes(row[0]), dict_type=zstandard.DICT_TYPE_FULLDICT)
        try:
            return zstandard.ZstdDecompressor(dict_data=data)
        except zstandard.ZstdError as exc:
            raise StoredDataError(
                f"dictionary {dictionary} in {self._where}, which record {record} was "
                f"compressed with, is damaged ({exc}): the file was changed or broken outside "
                "Platypus. Restore the data directory from a backup, or move it away and "
                "start again."
            ) from None
