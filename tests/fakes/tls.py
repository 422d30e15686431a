"""TLS for loopback fakes: a throwaway CA, and `ServerThread` serving HTTPS.

For vendors whose clients insist on ``https://``::

    ca = TestCA()                      # ca.path: the CA certificate clients trust
    server = TlsServerThread(app, ca)  # https://127.0.0.1:<port>
    url = server.start()
    ...                                # the adapter's ca_bundle: server.ca_path
    server.stop()

Without a ``ca``, a server uses one CA shared by the whole test run
(`loopback_ca`). The certificate is issued for 127.0.0.1 and localhost by a
`trustme` CA that exists only for the test run; a client that does not trust
``ca.path`` fails its handshake, as it would against a vendor behind an unknown CA.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import trustme
import uvicorn

from platypus._server import ServerThread

__all__ = ["TestCA", "TlsServerThread", "loopback_ca"]


class TestCA:
    """A throwaway CA and a server certificate it signed, as PEM files in a temp folder."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fake-tls-"))
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.path = self.folder / "ca.pem"
        """The CA certificate: what a client's ``ca_bundle`` names."""
        ca.cert_pem.write_to_path(str(self.path))
        self.certfile, self.keyfile = self.folder / "cert.pem", self.folder / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(self.certfile))
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(str(self.certfile), append=True)
        cert.private_key_pem.write_to_path(str(self.keyfile))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@functools.cache
def _shared() -> TestCA:
    return TestCA()


def loopback_ca() -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate chain, server key) of the run's shared CA."""
    ca = _shared()
    return ca.path, ca.certfile, ca.keyfile


class TlsServerThread(ServerThread):
    """`ServerThread` serving HTTPS with ``ca``'s server certificate (the shared CA's
    by default). ``date_header=False`` when the fake sends its own ``Date``."""

    def __init__(self, app: Any, ca: TestCA | None = None, *, date_header: bool = True) -> None:
        super().__init__(app)
        ca = ca or _shared()
        self.ca_path = ca.path
        """The CA certificate (PEM) a client trusts to reach this server."""
        self._config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            interface="asgi3",
            timeout_graceful_shutdown=2,
            date_header=date_header,
            ssl_certfile=str(ca.certfile),
            ssl_keyfile=str(ca.keyfile),
        )

    def start(self, timeout: float = 10.0) -> str:
        url = super().start(timeout)
        self._url = url.replace("http://", "https://", 1)
        return self._url
