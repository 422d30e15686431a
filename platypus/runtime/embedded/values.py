"""How the embedded log stores event values: zstd with a dictionary trained on the log's own.

A 750-byte event shares most of its bytes with the events before it (field
names, types, sources), but not with itself: zstd alone gets it to ~430 bytes,
while zstd with a 16 KiB dictionary trained on a few thousand earlier events
gets it to ~140, in ~3-5 us of CPU to compress and ~2 us to read back.

* A dictionary is trained from a sample of the most recent values once
  `TRAIN_AFTER` have been appended with none (`EventLog` does it off the writer
  thread) and kept in the log's ``dictionaries`` table under an id; each record
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
import threading
from collections.abc import Sequence

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
    "ValueReader",
    "ValueWriter",
    "train",
]

LEVEL = 3
"""zstd's level: 3 is its default; higher levels gained a few bytes for twice the CPU."""
DICTIONARY_SIZE = 16 * 1024
"""Bytes of dictionary; 16 KiB holds what a few event types share (100x under the samples)."""
SAMPLES = 2000
"""The most recent values a dictionary is trained on (~1.5 MB of 750-byte events)."""
SAMPLE_BYTES = 4 * 1024 * 1024
"""At most this many bytes of them are kept (fewer values when events are large)."""
TRAIN_AFTER = 2000
"""Values appended without a dictionary before one is trained."""
RETRAIN_WINDOW = 10_000
"""Values per window over which the stored size is compared with the first window's."""
RETRAIN_RATIO = 1.5
"""A window stored this many times larger (relative to its raw size) than the first
window after the dictionary was made has another dictionary trained."""


def train(samples: Sequence[bytes]) -> bytes | None:
    """A dictionary trained on ``samples``, or None when they are too few or too alike."""
    total = sum(len(s) for s in samples)
    # zstd's trainer wants some 100 times the dictionary's size in samples.
    size = min(DICTIONARY_SIZE, total // 100)
    if len(samples) < 8 or size < 256:  # below this nothing is learnt
        return None
    try:
        # f=14: the trainer's frequency table at 2^14 entries, not 2^20: the same
        # dictionary for these samples (137 B an event either way), ~7 MiB less
        # memory touched (and kept by the allocator) while training.
        trained = zstandard.train_dictionary(size, list(samples), level=LEVEL, f=14)
        return trained.as_bytes()
    except zstandard.ZstdError:
        return None  # e.g. samples all the same: raw values are fine


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
