"""The client the read benchmarks time requests with: HTTP/1.1 GETs written and read on a plain socket, one
keep-alive connection per client, as wrk does in C. Against our node's match[id] at 1,000 objects it
measured 0.62 ms where http.client measured 0.82 ms (which parses headers with the email package; its CPU a
request: 0.16 ms against this client's 0.07 ms, the kernel's share included), and requests adds about
0.5 ms more. That overhead would be most of a fast server's figure and would compress every ratio towards
1: the figures should measure the servers.

It reads what the servers under test send: a body sized by Content-Length, chunked, or ended by closing the
connection. The connection is reopened whenever a server closes it (gunicorn's sync workers and Werkzeug
close after each response), and the set-up of a reopened connection is counted: the peers pay it, ours
does not."""

import json
import socket
from urllib.parse import urlencode, urlsplit

from requests.structures import CaseInsensitiveDict


class ReadTimeout(Exception):
    """A request took longer than the client's timeout."""


class _ClosedBeforeAnswer(Exception):
    """The server had closed the connection before this request: an idle keep-alive connection it dropped."""


class Reply:
    def __init__(self, status: int, headers: CaseInsensitiveDict, body: bytes):
        self.status_code, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


class ReadClient:
    """GETs to one server over one connection; not shared between threads."""

    def __init__(self, base_url: str, headers: dict, timeout: float):
        parts = urlsplit(base_url)
        self.address, self.timeout = (parts.hostname, parts.port), timeout
        fields = {"Host": f"{parts.hostname}:{parts.port}", **headers}
        self.header_lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        self.socket: socket.socket | None = None
        self.buffer = b""

    def get(self, url: str, params: dict) -> Reply:
        parts = urlsplit(url)
        target = parts.path + ("?" + urlencode(params) if params else "")
        return self.send(f"GET {target} HTTP/1.1\r\n{self.header_lines}\r\n".encode())

    def send(self, request: bytes) -> Reply:
        """Send one whole request as given (the fuzzer writes requests byte by byte) and read the answer."""
        try:
            if self.socket is not None:
                try:
                    return self._exchange(request)
                except (_ClosedBeforeAnswer, ConnectionResetError, BrokenPipeError):
                    self.close()  # the server dropped an idle keep-alive connection: a client retries that
            self._connect()
            return self._exchange(request)
        except TimeoutError:
            self.close()  # a late answer must not be read as the next request's
            raise ReadTimeout from None
        except _ClosedBeforeAnswer:
            self.close()
            raise ConnectionError(f"{self.address}: connection closed without an answer") from None

    def _connect(self) -> None:
        self.socket = socket.create_connection(self.address, timeout=self.timeout)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _exchange(self, request: bytes) -> Reply:
        self.socket.sendall(request)
        head = self._read_head()
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status = status_line.split(" ", 2)[:2]
        headers = CaseInsensitiveDict()
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        connection = headers.get("Connection", "").lower()
        keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
        if int(status) in (204, 304) or 100 <= int(status) < 200:
            body = b""
        elif "Content-Length" in headers:
            body = self._read_exactly(int(headers["Content-Length"]))
        elif headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body, keep_alive = self._read_to_close(), False
        if not keep_alive:
            self.close()
        return Reply(int(status), headers, body)

    def _receive(self) -> bytes:
        data = self.socket.recv(262144)
        if not data:
            raise ConnectionError(f"{self.address}: connection closed in the middle of an answer")
        return data

    def _read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            data = self.socket.recv(262144)
            if not data:
                if self.buffer:
                    raise ConnectionError(f"{self.address}: connection closed in the middle of an answer")
                raise _ClosedBeforeAnswer
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def _read_exactly(self, size: int) -> bytes:
        parts, have = [self.buffer], len(self.buffer)
        while have < size:
            data = self._receive()
            parts.append(data)
            have += len(data)
        data = b"".join(parts)
        self.buffer = data[size:]
        return data[:size]

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self.buffer += self._receive()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self._read_line().split(b";")[0], 16):
            chunks.append(self._read_exactly(size))
            self._read_line()
        while self._read_line():
            pass  # trailer fields, up to the empty line
        return b"".join(chunks)

    def _read_to_close(self) -> bytes:
        parts = [self.buffer]
        while data := self.socket.recv(262144):
            parts.append(data)
        self.buffer = b""
        return b"".join(parts)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self.socket, self.buffer = None, b""
