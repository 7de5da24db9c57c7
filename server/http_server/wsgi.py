"""The WSGI side of one request (PEP 3333): the environ of a request received whole, and the bytes of the
answer the app gives. Runs in a worker thread; nothing here touches a socket."""

import io
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import unquote_to_bytes

log = logging.getLogger(__name__)

# The client's certificate (DER) as the TLS handshake verified it; absent without one. mod_ssl would name
# it SSL_CLIENT_CERT (PEM); DER spares a conversion per request.
CLIENT_CERT_ENVIRON_KEY = "taxii_federation.client_cert_der"

# Connection management is the server's (RFC 9112 §9): an app's own hop-by-hop headers are dropped.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection"}
)
# RFC 9110 §6.4.1: these answers never have content.
_NO_CONTENT = frozenset({204, 304})

ErrorBody = Callable[[int, str, str], tuple[str, bytes]]
"""(status, title, description) -> (content type, body): how the server words the errors it answers itself."""


@dataclass
class Request:
    method: str
    target: bytes
    http_version: str  # "1.1" or "1.0"
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    body: bytes = b""
    # The body was not read (its Content-Length is above the limit): the app answers from the headers,
    # and the connection ends after that answer.
    body_skipped: bool = False


@dataclass(frozen=True)
class Site:
    """What every request's environ shares on one listener."""

    server_name: str
    server_port: int
    scheme: str  # http or https
    server_header: str


class _DateHeader:
    """The Date header (RFC 9110 §6.6.1), formatted once a second rather than once a request."""

    def __init__(self) -> None:
        self._second, self._text = 0, ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second, self._text = now, formatdate(now, usegmt=True)
        return self._text


http_date = _DateHeader()


def build_environ(request: Request, site: Site, client: tuple[str, int], client_cert: bytes | None) -> dict:
    path, _, query = request.target.partition(b"?")
    environ = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _percent_decoded(path),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": request.target.decode("latin-1"),
        "SERVER_NAME": site.server_name,
        "SERVER_PORT": str(site.server_port),
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": site.scheme,
        "wsgi.input": io.BytesIO(request.body),
        # The whole body is in wsgi.input, chunked or not, so the app may read it to the end.
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if site.scheme == "https":
        environ["HTTPS"] = "on"
    if client_cert is not None:
        environ[CLIENT_CERT_ENVIRON_KEY] = client_cert
    for raw_name, raw_value in request.headers:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value
            continue
        key = "HTTP_" + name
        # RFC 9110 §5.3: repeated fields are one comma-separated list.
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if "HTTP_TRANSFER_ENCODING" in environ and not request.body_skipped:
        environ["CONTENT_LENGTH"] = str(len(request.body))  # a chunked body, now of known length
    return environ


def _percent_decoded(path: bytes) -> str:
    """PATH_INFO is the decoded path as latin-1 text (PEP 3333), as every WSGI server gives it."""
    return (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")


def run_app(app, environ: dict, request: Request, site: Site, error_body: ErrorBody) -> tuple[bytes, bool]:
    """Call the app and return the whole answer (head and body) and whether the connection ends after it.
    The answer is built whole: a node's answers are pages bounded by max_page_size."""
    started: list = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]

    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if not started:
            raise RuntimeError("the WSGI app returned without calling start_response")
        status, headers = started
    except Exception:
        log.exception("the app failed on %s %s", request.method, request.target[:200])
        content_type, body = error_body(
            500, "Internal Server Error", "the node failed; the error is in its log"
        )
        status, headers = "500 Internal Server Error", [("Content-Type", content_type)]
        request.keep_alive = False
    close = not request.keep_alive or request.body_skipped
    return _head(status, headers, body, request, site, close) + _content(status, body, request), close


def _content(status: str, body: bytes, request: Request) -> bytes:
    if request.method == "HEAD" or int(status[:3]) in _NO_CONTENT:
        return b""
    return body


def _head(
    status: str, headers: list[tuple[str, str]], body: bytes, request: Request, site: Site, close: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status}\r\n"]
    has_length = has_date = has_server = False
    for name, value in headers:
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            continue
        has_length = has_length or lower == "content-length"
        has_date = has_date or lower == "date"
        has_server = has_server or lower == "server"
        lines.append(f"{name}: {value}\r\n")
    code = int(status[:3])
    if not has_length and request.method != "HEAD" and code not in _NO_CONTENT and code >= 200:
        lines.append(f"Content-Length: {len(body)}\r\n")
    if not has_date:
        lines.append(f"Date: {http_date()}\r\n")
    if not has_server:
        lines.append(f"Server: {site.server_header}\r\n")
    if close:
        lines.append("Connection: close\r\n")
    elif request.http_version == "1.0":
        lines.append("Connection: keep-alive\r\n")  # RFC 9112 §9.3: 1.0 persistence is opt-in
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def error_answer(
    status: int,
    title: str,
    description: str,
    site: Site,
    error_body: ErrorBody,
    headers: dict[str, str] | None = None,
) -> bytes:
    """An answer the server gives itself instead of the app (a limit, a timeout); the connection ends."""
    content_type, body = error_body(status, title, description)
    lines = [
        f"HTTP/1.1 {status} {title}\r\n",
        f"Content-Type: {content_type}\r\n",
        f"Content-Length: {len(body)}\r\n",
        f"Date: {http_date()}\r\n",
        f"Server: {site.server_header}\r\n",
        *(f"{name}: {value}\r\n" for name, value in (headers or {}).items()),
        "Connection: close\r\n",
        "\r\n",
    ]
    return "".join(lines).encode("latin-1") + body
