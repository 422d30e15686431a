"""Every error Platypus raises on purpose.

The tree::

    PlatypusError
    ├── ConfigurationError (ValueError)     bad settings, unknown connection or adapter
    ├── FlowError (ValueError)              a flow file that cannot be used
    │   └── FlowLoadError                   YAML or model errors, with file:line:column
    ├── SchemaError (LookupError)           unknown event type or version
    ├── EventError (ValueError)             an event that cannot be accepted
    │   ├── EventValidationError            envelope or data failed its schema
    │   └── JsonTextError                   not JSON an event is read from (RFC 8259)
    ├── MappingError (ValueError)           an expression failed on a real event
    ├── StoredDataError (RuntimeError)      a stored record that cannot be read back
    └── DeliveryError                       an adapter could not deliver
        ├── RetryableError                  try again later (429, 503, timeouts, ...)
        │   └── MissingDependencyError      a record it refers to does not exist yet
        └── PermanentError                  retrying cannot help (400, invalid data, ...)

A message says what was wrong, where (file:line, event id, field path) and what to
do next. Event id, flow and step are attached once by the processor through
`DeliveryError.context`, not by every raiser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConfigurationError",
    "DeliveryError",
    "EventError",
    "EventValidationError",
    "FieldError",
    "FlowError",
    "FlowLoadError",
    "JsonTextError",
    "MappingError",
    "MissingDependencyError",
    "PermanentError",
    "PlatypusError",
    "RetryableError",
    "SchemaError",
    "SourceLocation",
    "StoredDataError",
]


class PlatypusError(Exception):
    """Root of every error Platypus raises on purpose."""


class ConfigurationError(PlatypusError, ValueError):
    """Settings, connections or plugins are missing or wrong."""


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A place in a file, 1-based, as editors and CI annotations expect."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One structured validation error: where, what was expected, what was got.

    ``got`` is already masked when the field holds personal data.
    """

    path: str
    message: str
    expected: str = ""
    got: str = ""
    location: SourceLocation | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "message": self.message,
            "expected": self.expected,
            "got": self.got,
        }
        if self.location is not None:
            out["location"] = str(self.location)
        return out


class FlowError(PlatypusError, ValueError):
    """A flow definition cannot be used."""


class FlowLoadError(FlowError):
    """A flow file failed to parse or validate; every finding names file:line:column."""

    def __init__(self, file: str, errors: Sequence[FieldError]) -> None:
        self.file = file
        self.errors = list(errors)
        lines = [
            f"{e.location or file}: {e.path + ': ' if e.path else ''}{e.message}" for e in errors
        ]
        super().__init__("\n".join(lines) or f"{file}: invalid flow")


class SchemaError(PlatypusError, LookupError):
    """An event type or version has no registered schema."""


class EventError(PlatypusError, ValueError):
    """An event cannot be accepted as it is."""


class EventValidationError(EventError):
    """The envelope or the data of an event failed validation."""

    def __init__(self, message: str, errors: Sequence[FieldError], event_id: str = "") -> None:
        self.errors = list(errors)
        self.event_id = event_id
        super().__init__(message)


class JsonTextError(EventError):
    """Bytes that are not the JSON text an event is read from: what, and where.

    ``reason`` says what (a duplicate name, UTF-16 text, nesting too deep, a
    number out of range, malformed JSON); ``line`` and ``column`` (1-based) are
    0 when the problem has no one place in the text, and ``path`` is the field
    (``data.amount``) when it has one in the value.
    """

    def __init__(self, reason: str, line: int = 0, column: int = 0, path: str = "") -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.path = path
        if line:
            super().__init__(f"malformed JSON at line {line} column {column}: {reason}")
        else:
            super().__init__(f"{path}: {reason}" if path else reason)


class MappingError(PlatypusError, ValueError):
    """A mapping or condition expression failed against a real event."""


class StoredDataError(PlatypusError, RuntimeError):
    """A record in the data directory cannot be read back as it was written (its
    compression dictionary is missing or damaged): the file was changed or broken
    outside Platypus."""


@dataclass
class DeliveryContext:
    """Where a delivery error happened; attached once by the processor."""

    event_id: str = ""
    flow: str = ""
    step: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class DeliveryError(PlatypusError):
    """An adapter could not deliver. Subclasses say whether a retry can help.

    Adapters raise `RetryableError` or `PermanentError`; anything else an adapter
    raises is treated as permanent, since nobody classified it.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        vendor_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after
        self.vendor_code = vendor_code
        self.context = DeliveryContext()


class RetryableError(DeliveryError):
    """A transient failure: the same call may succeed later."""

    retryable = True


class MissingDependencyError(RetryableError):
    """The vendor refused the write because a record it refers to does not exist yet.

    The invoice names a customer NetSuite does not have, the payment an account
    Salesforce does not know: another event, on another key, or another system
    usually creates it soon. The step retries it with backoff for its retry
    policy's ``dependency_wait`` (``max_attempts`` does not count here), then the
    event is dead-lettered; a replay once the record exists delivers it.
    """


class PermanentError(DeliveryError):
    """A failure that a retry cannot fix: the event goes to the dead-letter topic."""

    retryable = False
