"""The adapter contract: behaviour every adapter has, written once, run against each.

Subclass `AdapterContract` in ``tests/adapters/test_<vendor>.py`` as
``class TestContract(AdapterContract)`` and provide:

* a fixture ``vendor``: the vendor's loopback fake, started, reset for each test;
* ``secret``: a credential value ``make_adapter`` puts in the settings, so the
  contract can check it never leaks;
* ``make_adapter(vendor)``: the adapter under test, configured for the fake,
  not started;
* ``write(event_id)``: a `Request` for a write that creates one record;
* ``record_count(vendor, request)``: how many records the fake holds for it;
* ``refreshes_credentials = False`` if the adapter's credentials are static;
* ``fail_next(vendor, failure)``: make the fake's next answer one of
  ``"permanent"``, ``"retryable"``, ``"timeout"`` (answer after the adapter's
  timeout), ``"reset"`` (drop the connection without answering) or
  ``"expired_credential"`` (the vendor's own "session/token expired" answer).

Each vendor's own test module adds what is specific to it (error codes, limits,
signatures, WSDL validation).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import pytest
import structlog

from platypus.adapter import Adapter, Request
from platypus.exceptions import PermanentError, RetryableError
from platypus.logging import configure_logging
from platypus.records import Delivery
from platypus.runtime.memory import MemoryLedger

Failure = Literal["permanent", "retryable", "timeout", "reset", "expired_credential"]


class AdapterContract:
    """The contract; see the module docstring for what a subclass provides."""

    secret: ClassVar[str] = ""
    refreshes_credentials: ClassVar[bool] = True
    """False for adapters whose credentials are static (nothing to refresh)."""

    @pytest.fixture
    def captured_logs(self) -> Iterator[io.StringIO]:
        stream = io.StringIO()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        configure_logging(json=True, level="debug", stream=stream)
        root.setLevel(logging.DEBUG)
        yield stream
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level

    def make_adapter(self, vendor: Any) -> Adapter:
        raise NotImplementedError

    def write(self, event_id: str) -> Request:
        raise NotImplementedError

    def record_count(self, vendor: Any, request: Request) -> int:
        raise NotImplementedError

    def fail_next(self, vendor: Any, failure: Failure) -> None:
        raise NotImplementedError

    async def _started(self, vendor: Any) -> Adapter:
        adapter = self.make_adapter(vendor)
        await adapter.start()
        return adapter

    async def test_a_write_succeeds_and_creates_one_record(self, vendor: Any) -> None:
        adapter = await self._started(vendor)
        try:
            request = self.write("evt-contract-1")
            result = await adapter.call(request)
        finally:
            await adapter.close()
        assert result is not None
        assert self.record_count(vendor, request) == 1
        declared = adapter.actions[request.action].result
        if declared is not None:  # what lint checks steps.<name>.<field> against
            declared.model_validate(result)

    async def test_a_permanent_vendor_error_is_a_permanent_error(self, vendor: Any) -> None:
        adapter = await self._started(vendor)
        try:
            self.fail_next(vendor, "permanent")
            with pytest.raises(PermanentError):
                await adapter.call(self.write("evt-contract-2"))
        finally:
            await adapter.close()

    @pytest.mark.parametrize("failure", ["retryable", "timeout", "reset"])
    async def test_transient_failures_are_retryable_errors(
        self, vendor: Any, failure: Failure
    ) -> None:
        adapter = await self._started(vendor)
        try:
            self.fail_next(vendor, failure)
            with pytest.raises(RetryableError):
                await adapter.call(self.write(f"evt-contract-{failure}"))
            # The failure was transient: the same write goes through next time.
            request = self.write(f"evt-contract-{failure}")
            await adapter.call(request)
        finally:
            await adapter.close()
        if failure == "timeout" and not adapter.actions[request.action].idempotent:
            # A write that timed out may have been applied: only a vendor that
            # de-duplicates (an idempotent action) can promise one record.
            assert self.record_count(vendor, request) >= 1
        else:
            assert self.record_count(vendor, request) == 1

    async def test_an_expired_credential_is_refreshed_and_the_write_succeeds(
        self, vendor: Any
    ) -> None:
        if not self.refreshes_credentials:
            pytest.skip("this adapter's credentials are static: nothing to refresh")
        adapter = await self._started(vendor)
        try:
            # A first call, so that an adapter that logs in lazily holds a credential.
            await adapter.call(self.write("evt-contract-before-expiry"))
            request = self.write("evt-contract-expired")
            self.fail_next(vendor, "expired_credential")
            await adapter.call(request)
        finally:
            await adapter.close()
        assert self.record_count(vendor, request) == 1

    async def test_the_same_event_delivered_twice_leaves_one_record(self, vendor: Any) -> None:
        # What the runtime does for a replayed event: a write the vendor does not
        # de-duplicate itself is guarded by the delivery ledger.
        adapter = await self._started(vendor)
        ledger = MemoryLedger()
        request = self.write("evt-contract-twice")
        guarded = adapter.actions[request.action].guarded
        key = (request.event_id, request.flow, request.step)
        try:
            for _ in range(2):
                if guarded and key in await ledger.delivered([request.event_id]):
                    continue
                result = await adapter.call(request)
                if guarded:
                    await ledger.record(
                        [Delivery(request.event_id, request.flow, request.step, "", result, 1)]
                    )
        finally:
            await adapter.close()
        assert self.record_count(vendor, request) == 1

    async def test_no_secret_reaches_a_log_line_an_error_or_a_repr(
        self, vendor: Any, captured_logs: io.StringIO
    ) -> None:
        assert self.secret, "the contract needs the credential value to look for"
        adapter = await self._started(vendor)
        errors: list[str] = []
        try:
            await adapter.call(self.write("evt-contract-secret-ok"))
            failures: list[Failure] = ["permanent"]
            if self.refreshes_credentials:
                failures.append("expired_credential")
            for failure in failures:
                self.fail_next(vendor, failure)
                try:
                    await adapter.call(self.write(f"evt-contract-secret-{failure}"))
                except (PermanentError, RetryableError) as exc:
                    errors.append(f"{exc!s} {exc!r}")
        finally:
            await adapter.close()
        assert self.secret not in captured_logs.getvalue()
        assert all(self.secret not in text for text in errors)
        assert self.secret not in repr(adapter)
        assert self.secret not in repr(adapter.settings)
