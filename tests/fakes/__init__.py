"""Fake vendors for integration tests: real servers on loopback speaking a vendor's protocol."""

from tests.fakes.vendor import FakeVendor, RecordedRequest, Reply

__all__ = ["FakeVendor", "RecordedRequest", "Reply"]
