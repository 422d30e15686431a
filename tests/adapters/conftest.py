"""What the adapter tests share: a throwaway CA for HTTPS fakes, and a tunnelling proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.proxy import TunnelProxy
from tests.fakes.tls import TestCA


@pytest.fixture(scope="session")
def test_ca() -> Iterator[TestCA]:
    """A CA no system trusts: HTTPS fakes serve its certificate; ``ca_bundle`` names it."""
    ca = TestCA()
    yield ca
    ca.remove()


@pytest.fixture(scope="session")
def _tunnel_proxy() -> Iterator[TunnelProxy]:
    with TunnelProxy() as proxy:
        yield proxy


@pytest.fixture
def tunnel_proxy(_tunnel_proxy: TunnelProxy) -> TunnelProxy:
    """A CONNECT proxy on loopback, with no tunnels recorded yet."""
    _tunnel_proxy.clear()
    return _tunnel_proxy
