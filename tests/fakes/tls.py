"""HTTPS for the loopback fakes of vendors whose clients insist on ``https://``.

One throwaway certificate authority (from `trustme`) signs a certificate for
127.0.0.1 and localhost; a fake serves with it and a client trusts ``ca_path``::

    server = TlsServerThread(app)
    url = server.start()            # https://127.0.0.1:<port>
    ...                             # the adapter's ca_bundle: server.ca_path
    server.stop()
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import trustme
import uvicorn

from platypus._server import ServerThread

__all__ = ["TlsServerThread", "loopback_ca"]


@functools.cache
def loopback_ca() -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate chain, server key) files, made once per process."""
    folder = Path(tempfile.mkdtemp(prefix="platypus-test-ca-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = folder / "ca.pem"
    chain = folder / "server.pem"
    key = folder / "server.key"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(key))
    with chain.open("wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return ca_path, chain, key


class TlsServerThread(ServerThread):
    """`ServerThread` serving HTTPS with the test CA's certificate for 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        ca_path, chain, key = loopback_ca()
        self.ca_path = ca_path
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
            # The fakes send their own Date header: some vendors' clients read it.
            date_header=False,
            ssl_certfile=str(chain),
            ssl_keyfile=str(key),
        )

    def start(self, timeout: float = 10.0) -> str:
        url = super().start(timeout)
        self._url = url.replace("http://", "https://", 1)
        return self._url
