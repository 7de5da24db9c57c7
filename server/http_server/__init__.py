"""The node's HTTP/1.1 server: requests received whole on an event loop, the WSGI app run in worker threads
(server.py), one connection's life (connection.py), PEP 3333 environ and answers (wsgi.py), TLS (tls.py)."""

from taxii_federation.server.http_server.gate import GATE_PASSED_ENVIRON_KEY
from taxii_federation.server.http_server.server import HTTPServer
from taxii_federation.server.http_server.wsgi import CLIENT_CERT_ENVIRON_KEY

__all__ = ["CLIENT_CERT_ENVIRON_KEY", "GATE_PASSED_ENVIRON_KEY", "HTTPServer"]
