"""The HTTP/1.1 server a node runs on: an asyncio event loop in its own thread receives every request whole
(and does every TLS handshake, each with a deadline, none on the accept path), then a pool of worker
threads runs the WSGI app on complete requests only. Slow, idle or silent clients cost a socket and a few
kilobytes, never a worker. docs/benchmarks.md has the measurements that chose this design over cheroot,
waitress, hypercorn, uvicorn and granian."""

import asyncio
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from taxii_federation.server.config import LimitsConfig, TlsConfig
from taxii_federation.server.http_server.connection import Connection
from taxii_federation.server.http_server.gate import Gate
from taxii_federation.server.http_server.tls import ReloadingServerContext, TlsEventLoop
from taxii_federation.server.http_server.wsgi import ErrorBody, Site

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024


class HTTPServer:
    """One listener serving one WSGI app. `start()` binds and returns once connections are accepted;
    `stop()` answers the requests under way, closes every connection and ends the threads."""

    def __init__(
        self,
        app,
        host: str,
        port: int,
        *,
        threads: int,
        limits: LimitsConfig,
        max_body_bytes: int,
        error_body: ErrorBody,
        server_header: str,
        tls: TlsConfig | None = None,
        name: str = "http",
        gate: Gate | None = None,
    ):
        self.app, self.limits, self.max_body_bytes, self.error_body = app, limits, max_body_bytes, error_body
        self.gate = gate
        self.tls = ReloadingServerContext(tls) if tls else None
        self.handshake_seconds = tls.handshake_seconds if tls else None
        self.name = name
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        self.bind_addr: tuple[str, int] = self.socket.getsockname()[:2]
        self.site = Site(host, self.bind_addr[1], "https" if tls else "http", server_header)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"{name}-worker")
        self.connections: set[Connection] = set()
        self.stopping = False
        self.loop = TlsEventLoop() if tls else asyncio.new_event_loop()
        self._listener: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run_loop, name=f"{name}-io", daemon=True)

    def start(self) -> None:
        ready = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)
        self._thread.start()
        ready.result(timeout=30)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _listen(self) -> None:
        self._listener = await self.loop.create_server(
            lambda: Connection(self),
            sock=self.socket,
            ssl=self.tls.listener_context if self.tls else None,
            ssl_handshake_timeout=self.handshake_seconds,
            ssl_shutdown_timeout=self.handshake_seconds,
            backlog=LISTEN_BACKLOG,
        )

    def stop(self, grace_seconds: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        done = asyncio.run_coroutine_threadsafe(self._shutdown(grace_seconds), self.loop)
        try:
            done.result(timeout=grace_seconds + 5)
        except Exception:  # noqa: BLE001 - stopping goes on whatever a connection did
            log.exception("%s: stopping did not finish cleanly", self.name)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        # Workers still inside the app (a long-poll) finish on their own; nothing will read their answer.
        self.executor.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self.loop.close()

    async def _shutdown(self, grace_seconds: float) -> None:
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        # Connections accepted whose transport is still being made (a TLS handshake under way) end with
        # the tasks making them.
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.shutdown()
        deadline = self.loop.time() + grace_seconds
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.transport.abort()
        await asyncio.sleep(0.01)  # let the aborted transports close their sockets
