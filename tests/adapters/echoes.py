"""A vendor that echoes a person's data back changed, and what must then hold.

Vendors quote what they were sent in their errors, rarely as it was sent: an
e-mail lower-cased, a name URL- or JSON-escaped in a link or a body, a value cut
off in an excerpt. `ECHOES` are such answers for `PERSON`; `assert_masked` runs
one failing adapter call the way the runtime does (inside the event's redaction
scope, the error classified, dead-lettered and logged) and scans the error text,
every dead-letter header and every log line with `tests.faults.leakscan.found_in`,
which reads case, escapes and cut values apart from ``platypus.redaction``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

import pytest
import structlog

from platypus import core
from platypus.deadletter import dead_letter
from platypus.exceptions import PlatypusError
from platypus.logging import configure_logging, get_logger, redaction_scope
from platypus.records import Record
from tests.faults.leakscan import found_in

__all__ = ["ECHOES", "EMAIL", "NAME", "VALUES", "assert_masked"]

FIRST, LAST = "Xavier", "Quartermain"
EMAIL = "Xavier.Qw@Corp-Pii.example"
NAME = f"{FIRST} {LAST}"
VALUES = [FIRST, LAST, EMAIL]
_LOCAL, _DOMAIN = EMAIL.split("@")

ECHOES = {
    "lower-cased": f"user {EMAIL.lower()} already exists ({LAST.lower()})",
    "url-escaped": f"see https://vendor.example/users?email={quote(EMAIL)}&n={quote_plus(NAME)}",
    "json-escaped": 'email \\"'
    + _LOCAL
    + "\\u0040"
    + _DOMAIN
    + '\\" of \\"'
    + NAME
    + '\\" invalid',
    "truncated": f"value too long: '{EMAIL.upper()[:-5]}...' (name {LAST[:9]}...)",
}


@contextmanager
def _captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level


async def assert_masked(call: Callable[[], Awaitable[object]], *, quoted: bool = True) -> str:
    """Run the failing ``call`` as the runtime would; no `VALUES` anywhere in clear.

    Returns the dead letter's message, for the caller's own checks. Fails if the
    call succeeds, or if its raw error holds no trace of the echo (then the test
    would prove nothing); ``quoted=False`` for an answer the adapter does not
    quote (then only the scan holds).
    """
    with _captured() as logs, redaction_scope(VALUES):
        with pytest.raises(PlatypusError) as caught:
            await call()
        error = caught.value
        failure = core.classify(error)
        letter = dead_letter(
            Record("platypus.events", 0, 7, "evt-echo", b'{"id": "evt-echo"}'),
            failure,
            flow="echo",
            flow_version="1",
            step="send",
            event_id="evt-echo",
            event_type="people.worker.hired.v1",
            attempts=1,
            first_failure=datetime.now(UTC),
            last_failure=datetime.now(UTC),
            personal=VALUES,
        )
        message = letter.header("__connect.errors.exception.message") or ""
        # What the processor logs: the retry line (the raw error) and the dead letter.
        log = get_logger("tests.echo")
        log.info("delivery failed, will retry", error=str(error))
        log.error("event dead-lettered", error=message, exc=error)

    raw = str(error) + " " + (failure.vendor_code or "")
    # The echo reached the error: in clear, or masked by the adapter itself (one that
    # knows which of its inputs are personal, as SCIM's and Okta's do).
    if quoted:
        assert "***" in raw or any(found_in(v, raw) for v in VALUES), f"no echo in: {raw}"
    leaks = [
        f"{where}: {value!r} as {found!r}"
        for where, text in [
            ("message", message),
            *((f"header {k}", v.decode(errors="replace")) for k, v in letter.headers),
            ("logs", logs.getvalue()),
        ]
        for value in VALUES
        if (found := found_in(value, text))
    ]
    assert not leaks, leaks
    assert "***" in message or not quoted, message
    return message
