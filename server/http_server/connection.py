"""One client connection on the event loop: bytes in, requests parsed (httptools, the llhttp parser of
Node.js) and received whole under the limits, each handed to a worker thread, answers written back.

A connection costs a worker only while the app runs its request: waiting for a request, receiving a slow
one and sending the answer all happen on the event loop. Requests on one connection are answered in order
(HTTP/1.1 pipelining), one at a time; reading pauses while the app works, so a client cannot queue more."""

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httptools

from taxii_federation.server.http_server.gate import GATE_PASSED_ENVIRON_KEY, GateRefusal
from taxii_federation.server.http_server.wsgi import Request, build_environ, error_answer, run_app

if TYPE_CHECKING:
    from taxii_federation.server.http_server.server import HTTPServer

log = logging.getLogger(__name__)

# After an answer that ends the connection while the client may still be sending (a body too large, a
# header over the limit), input is read and dropped this long before closing: closing with unread input
# makes the kernel reset the connection, and the client would lose the answer (RFC 9112 §9.6).
LINGER_SECONDS = 2.0


@dataclass
class _Refusal:
    """An answer the server gives instead of a request it will not take; the connection ends after it."""

    status: int
    title: str
    description: str


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; the refusal is on the connection."""


class Connection(asyncio.Protocol):
    def __init__(self, server: "HTTPServer"):
        self.server = server
        self.limits = server.limits
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] = ("", 0)
        self.client_cert: bytes | None = None
        self.queue: deque[Request | _Refusal] = deque()
        self.busy = False  # a worker has the current request
        self.closing = False
        self.parsing = True
        self.lingering = False
        self.timer: asyncio.TimerHandle | None = None
        self.idle_deadline = self.request_deadline = self.opened_at = 0.0
        self.unsent_at_last_look = 0
        self._new_message()

    def _new_message(self) -> None:
        self.in_message = False
        self.headers_done = False
        self.head_bytes = 0
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.skip_body = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self.server.stopping or len(self.server.connections) >= self.limits.connections:
            if not self.server.stopping:
                log.warning("%d connections open: refusing another", len(self.server.connections))
            transport.abort()
            self.closing = True
            return
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.client_cert = ssl_object.getpeercert(binary_form=True)
        self.opened_at = self.loop.time()
        self.idle_deadline = self.opened_at + self.limits.keep_alive_seconds
        self._schedule()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._disarm()
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.lingering or not self.parsing or self.closing:
            return
        try:
            self.parser.feed_data(data)
        except _Refused:
            pass
        except httptools.HttpParserCallbackError as error:
            if not isinstance(error.__context__, _Refused):
                raise
        except httptools.HttpParserUpgrade:
            # No protocol switch is offered (RFC 9110 §7.8): the request is answered, then the connection
            # ends, since what follows on it is not HTTP/1.1.
            if self.queue and isinstance(self.queue[-1], Request):
                self.queue[-1].keep_alive = False
            self._stop_parsing()
        except httptools.HttpParserError as error:
            self._refuse(400, "Bad Request", f"not a valid HTTP/1.1 request ({error})")
        else:
            if self.in_message and not self.headers_done:
                # The parser keeps a header line to itself until it ends: bound what it may hold.
                self.head_bytes += len(data)
                if self.head_bytes > self._head_limit:
                    self._refuse(431, "Request Header Fields Too Large", self._header_limit_text())
        self._next()
        self._schedule()

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        self._new_message()
        self.in_message = True
        self.request_deadline = self.loop.time() + self.limits.request_seconds

    def on_url(self, url: bytes) -> None:
        self.target += url
        if len(self.target) > self.limits.request_line_bytes:
            self._refuse(
                414,
                "URI Too Long",
                f"the request target is longer than this node's {self.limits.request_line_bytes} bytes "
                "(limits.request_line_bytes); ask for fewer ids per request",
            )
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.header_bytes += len(name) + len(value) + 4
        if len(self.headers) > self.limits.headers or self.header_bytes > self.limits.header_bytes:
            self._refuse(431, "Request Header Fields Too Large", self._header_limit_text())
            raise _Refused

    def on_headers_complete(self) -> None:
        self.headers_done = True
        declared = self._content_length()
        if declared is not None and declared > self.server.max_body_bytes:
            # Too large to take: the app answers from the headers alone (a TAXII 413 naming the API root's
            # max_content_length) and the body is never read.
            self.skip_body = True
            self._queue_request(body_skipped=True)
            self._stop_parsing()
            raise _Refused
        if self._wants_continue():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.server.max_body_bytes:
            self._refuse(
                413,
                "Payload Too Large",
                f"the body exceeds this node's largest max_content_length "
                f"({self.server.max_body_bytes} bytes)",
            )
            raise _Refused
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.skip_body:
            self._queue_request(body_skipped=False)
        self._new_message()

    # --- requests to workers ---

    def _queue_request(self, body_skipped: bool) -> None:
        self.queue.append(
            Request(
                method=self.parser.get_method().decode("latin-1"),
                target=self.target,
                http_version=self.parser.get_http_version(),
                headers=self.headers,
                keep_alive=self.parser.should_keep_alive() and not body_skipped and not self._too_old(),
                body=b"".join(self.body),
                body_skipped=body_skipped,
            )
        )

    def _next(self) -> None:
        """Start the next queued request, or answer a refusal, unless a worker has one already."""
        if self.busy or self.closing or not self.queue:
            return
        item = self.queue.popleft()
        if isinstance(item, _Refusal):
            server = self.server
            self._answer_and_close(
                error_answer(item.status, item.title, item.description, server.site, server.error_body)
            )
            return
        self.busy = True
        self._schedule()  # no timer: how long the app takes is the app's business (a long-poll waits)
        self.transport.pause_reading()
        environ = build_environ(item, self.server.site, self.client, self.client_cert)
        if self.server.gate is None:
            self.server.executor.submit(self._run, item, environ, None)
        else:
            self.loop.create_task(self._through_gate(item, environ))

    async def _through_gate(self, request: Request, environ: dict) -> None:
        """On the event loop: the gate (server/http_server/gate.py) decides before any worker is used."""
        admission = await self.server.gate.admit(environ)
        if not isinstance(admission, GateRefusal):
            self.server.executor.submit(self._run, request, environ, admission)
            return
        await asyncio.sleep(admission.delay)
        if not self.closing and not self.transport.is_closing():
            server = self.server
            answer = error_answer(
                admission.status,
                admission.title,
                admission.description,
                server.site,
                server.error_body,
                admission.headers,
            )
            self._answer_and_close(answer)

    def _run(self, request: Request, environ: dict, release: Callable[[], None] | None) -> None:
        """In a worker thread."""
        if release is not None:
            release = _once_on_loop(self.loop, release)
            environ[GATE_PASSED_ENVIRON_KEY] = release
        answer, close = run_app(self.server.app, environ, request, self.server.site, self.server.error_body)
        with contextlib.suppress(RuntimeError):  # the server stopped while the app worked
            self.loop.call_soon_threadsafe(self._answered, answer, close, release)

    def _answered(self, answer: bytes, close: bool, release: Callable[[], None] | None = None) -> None:
        if release is not None:
            release()
        self.busy = False
        if self.closing or self.transport.is_closing():
            return
        if close:
            self._answer_and_close(answer)
            return
        self.transport.write(answer)
        if self.queue:
            self._next()
            return
        if self.server.stopping:
            self._close()
            return
        self.transport.resume_reading()
        # Reading was paused while the app worked: the next request's time starts now.
        now = self.loop.time()
        self.request_deadline = now + self.limits.request_seconds
        self.idle_deadline = now + self.limits.keep_alive_seconds
        self.unsent_at_last_look = 0
        self._schedule()

    def _too_old(self) -> bool:
        return self.loop.time() - self.opened_at > self.limits.connection_seconds

    # --- refusals, timeouts, closing ---

    @property
    def _head_limit(self) -> int:
        return self.limits.request_line_bytes + self.limits.header_bytes + 4

    def _header_limit_text(self) -> str:
        return (
            f"the request has more than {self.limits.headers} header lines or {self.limits.header_bytes} "
            "bytes of them (limits.headers, limits.header_bytes)"
        )

    def _refuse(self, status: int, title: str, description: str) -> None:
        self.queue.append(_Refusal(status, title, description))
        self._stop_parsing()

    def _stop_parsing(self) -> None:
        self.parsing = False
        self.transport.pause_reading()

    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == b"content-length":
                return int(value)  # llhttp has checked it is one decimal number
        return None

    def _wants_continue(self) -> bool:
        return any(
            name.lower() == b"expect" and value.lower() == b"100-continue" for name, value in self.headers
        )

    def _answer_and_close(self, answer: bytes) -> None:
        """Send a last answer, then stop sending and drop what the client still sends for a moment."""
        self.transport.write(answer)
        self.closing = True
        self.lingering = True
        self.queue.clear()
        if self.transport.can_write_eof():
            try:
                self.transport.write_eof()
            except OSError:  # the client is gone already (ENOTCONN): nothing to linger for
                self._abort()
                return
        self.transport.resume_reading()
        self._arm(LINGER_SECONDS, self._abort)

    def _close(self) -> None:
        self.closing = True
        self._disarm()
        self.transport.close()

    def _abort(self) -> None:
        self.transport.abort()

    def shutdown(self) -> None:
        """The server is stopping: an idle connection ends now (without waiting for a TLS close_notify
        from a client that may be gone), a busy one after its answer."""
        if not self.busy:
            self.closing = True
            self._disarm()
            self.transport.abort()

    def _arm(self, seconds: float, callback) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _schedule(self) -> None:
        """The one timer of a connection: the idle deadline between requests, the request deadline while
        one is received, none while the app works. Deadlines are fixed when a request starts or an answer
        is sent, so a client that trickles bytes does not extend them."""
        if self.lingering:
            return
        if self.busy or self.closing:
            self._disarm()
            return
        if self.in_message:
            deadline, callback = self.request_deadline, self._on_request_timeout
        else:
            deadline, callback = self.idle_deadline, self._on_idle_timeout
        if self.timer is None or self.timer.when() != deadline:
            self._disarm()
            self.timer = self.loop.call_at(deadline, callback)

    def _on_idle_timeout(self) -> None:
        """No request under way for keep_alive_seconds. An answer the client is still reading gets more
        time as long as it makes progress."""
        self.timer = None
        unsent = self.transport.get_write_buffer_size()
        if unsent and unsent != self.unsent_at_last_look:
            self.unsent_at_last_look = unsent
            self.idle_deadline = self.loop.time() + self.limits.keep_alive_seconds
            self._schedule()
        elif unsent:
            self._abort()
        else:
            self._close()

    def _on_request_timeout(self) -> None:
        self.timer = None
        self.queue.append(
            _Refusal(
                408,
                "Request Timeout",
                f"the request was not complete within {self.limits.request_seconds:g} seconds "
                "(limits.request_seconds)",
            )
        )
        self._stop_parsing()
        self._next()


def _once_on_loop(loop: asyncio.AbstractEventLoop, action: Callable[[], None]) -> Callable[[], None]:
    """A callable, safe from any thread, that runs `action` on `loop` the first time it is called."""
    lock = threading.Lock()
    called = False

    def call() -> None:
        nonlocal called
        with lock:
            if called:
                return
            called = True
        with contextlib.suppress(RuntimeError):  # the server stopped
            loop.call_soon_threadsafe(action)

    return call
