"""The client the read benchmarks time requests with: one keep-alive HTTP/1.1 connection from the standard
library. Its own cost is about 0.1 ms a request, where requests adds about 0.5 ms, which would be most of a
fast server's figure and would compress every ratio towards 1; as with wrk, the figures should measure the
servers. The connection is reopened whenever a server closes it (gunicorn's sync workers and Werkzeug close
after each response), and the set-up of a reopened connection is counted: the peers pay it, ours does not."""

import http.client
import json
from urllib.parse import urlencode, urlsplit


class ReadTimeout(Exception):
    """A request took longer than the client's timeout."""


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
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
        self.headers = headers
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def get(self, url: str, params: dict) -> Reply:
        parts = urlsplit(url)
        target = parts.path + ("?" + urlencode(params) if params else "")
        try:
            return self._send(target)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server dropped an idle keep-alive connection as we reused it: a client retries that.
            self.connection.close()
            return self._send(target)

    def _send(self, target: str) -> Reply:
        try:
            self.connection.request("GET", target, headers=self.headers)
            response = self.connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        except TimeoutError:
            self.connection.close()  # a late answer must not be read as the next request's
            raise ReadTimeout from None

    def close(self) -> None:
        self.connection.close()
