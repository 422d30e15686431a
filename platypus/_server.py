"""Run an ASGI app with uvicorn in a background thread, on loopback.

Used by ``platypus run --demo`` to start the stand-in vendor and by tests to
start fake vendors, the way httpx's own tests serve their test app::

    with ServerThread(create_vendor_app()) as server:
        httpx.post(f"{server.url}/orders", json={})
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ServerThread"]


class ServerThread:
    """An ASGI3 app served by uvicorn in a daemon thread.

    The listening socket is bound in `start` (port 0 picks a free port), so the
    URL is known before the first request and no port can be taken in between.
    uvicorn installs no signal handlers outside the main thread, so Ctrl+C still
    reaches the program that owns this server.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        graceful_shutdown: int = 2,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="auto",
            # uvicorn's "auto" takes a bound `async def` method for ASGI2; every app
            # we serve is ASGI3.
            interface="asgi3",
            # A slow request in flight must not hold up a test's teardown for long.
            timeout_graceful_shutdown=graceful_shutdown,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._url = ""

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321``; set by `start`."""
        if not self._url:
            raise RuntimeError("the server is not started; call start() first")
        return self._url

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> str:
        """Start serving and return the base URL once connections are accepted."""
        if self.running:
            return self.url
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets created
        # with it, and without TCP_NODELAY every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise RuntimeError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror}; "
                "choose another port (0 picks a free one)"
            ) from exc
        port = sock.getsockname()[1]
        server = uvicorn.Server(self._config)
        self._server = server
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"uvicorn-{port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(
                    f"the server on {self.host}:{port} stopped while starting: {self._error!r}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.host}:{port} did not start in {timeout}s")
            time.sleep(0.005)
        self._url = f"http://{self.host}:{port}"
        return self._url

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 -- reported by start(), not lost in a thread
            self._error = exc
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish or cut in-flight requests, and join the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            # Graceful shutdown overran: drop open connections and wait once more.
            server.force_exit = True
            thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._url or f"{self.host}:{self.port}"
        return f"ServerThread({where}, running={self.running})"
