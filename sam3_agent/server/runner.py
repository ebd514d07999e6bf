"""Run a server app with uvicorn: in the foreground (``sam3-agent serve``) or on a background thread
(tests, load tests, notebooks), both with graceful shutdown.

Shutdown order: readiness turns 503 and new segment requests are refused; uvicorn stops accepting
connections and waits for the requests in flight to be answered; then the app's batcher drains what is
still queued and stops.
"""

from __future__ import annotations

import socket
import threading
import time
from types import FrameType, TracebackType
from typing import Any

import uvicorn


def _begin_drain(app: Any) -> None:
    state = getattr(getattr(app, "state", None), "sam3", None)
    if state is not None:
        state.begin_drain()


class _DrainingServer(uvicorn.Server):
    """A uvicorn server that tells the app to drain as soon as it is asked to exit."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        _begin_drain(self.config.app)
        super().handle_exit(sig, frame)


def _config(app: Any, host: str, port: int, graceful_timeout: float, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=max(1, round(graceful_timeout)),
        lifespan="on",
        access_log=False,
    )


def serve_forever(app: Any, *, host: str, port: int, graceful_timeout: float = 30.0, log_level: str = "info") -> None:
    """Serve ``app`` on ``host:port`` until SIGINT / SIGTERM, then shut down gracefully."""
    _DrainingServer(_config(app, host, port, graceful_timeout, log_level)).run()


class BackgroundServer:
    """Serve ``app`` from a daemon thread on ``host`` (port 0: a free one); ``stop()`` shuts down gracefully.

    Usage::

        with BackgroundServer(create_app(engine)) as server:
            segmenter = RemoteSegmenter(server.base_url)
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        graceful_timeout: float = 30.0,
        log_level: str = "warning",
        startup_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = _DrainingServer(_config(app, host, self.port, graceful_timeout, log_level))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="sam3-server", daemon=True
        )
        self._startup_timeout = startup_timeout
        self._stopped = False

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving (idempotent); returns once the app's startup has run. RuntimeError if it did not."""
        if self._thread.is_alive() or self._stopped:
            return self
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.base_url} did not start")
            time.sleep(0.01)
        return self

    def begin_drain(self) -> None:
        """Ask the server to exit: readiness turns 503, in-flight requests finish (``stop`` waits for it)."""
        _begin_drain(self.app)
        self._server.should_exit = True

    def stop(self, timeout: float = 60.0) -> None:
        """Shut down gracefully and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self.begin_drain()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
