"""Running a node: the app of `create_app` on the node's HTTP server (server/http_server/), in the
background for tests and `federation up` (`start_node`), or until SIGTERM or Ctrl-C (`serve_forever`)."""

import logging
import resource
import signal
import threading
from dataclasses import dataclass

from flask import Flask

from taxii_federation.server.app import create_app
from taxii_federation.server.config import NodeConfig
from taxii_federation.server.errors import error_response
from taxii_federation.server.extension import NO_EXTENSION, NodeExtension
from taxii_federation.server.http_server import HTTPServer
from taxii_federation.server.login_gate import LoginGate
from taxii_federation.server.node import current_node, node_of

log = logging.getLogger(__name__)


@dataclass
class RunningNode:
    """A node listening in background threads; `url` is its base URL with the port actually bound."""

    config: NodeConfig
    app: Flask
    server: HTTPServer

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    @property
    def url(self) -> str:
        """On the address actually bound: a `host` given to start_node wins over the config's."""
        host, port = self.server.bind_addr[:2]
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{host}:{port}/"

    def stop(self) -> None:
        node_of(self.app).held_reads.close()  # held reads answer now, so the worker threads can finish
        self.server.stop()
        with self.app.app_context():
            current_node().close()


def taxii_error_body(status: int, title: str, description: str) -> tuple[str, bytes]:
    """The errors the HTTP server answers itself (limits, timeouts) are TAXII error messages too."""
    response = error_response(status, title, description)
    return response.headers["Content-Type"], response.get_data()


def build_server(
    config: NodeConfig,
    app: Flask,
    host: str | None = None,
    port: int | None = None,
    gate: LoginGate | None = None,
) -> HTTPServer:
    """The HTTP server for a node's app; `gate` is its login gate (see `start_node`)."""
    return HTTPServer(
        app,
        host or config.host,
        config.port if port is None else port,
        threads=config.threads,
        limits=config.limits,
        max_body_bytes=max(root.max_content_length for root in config.api_roots),
        error_body=taxii_error_body,
        server_header=f"taxii-federation/{config.name}",
        tls=config.tls,
        name=f"taxii-node-{config.name}",
        gate=gate,
    )


def start_node(
    config: NodeConfig,
    host: str | None = None,
    port: int | None = None,
    extension: NodeExtension = NO_EXTENSION,
) -> RunningNode:
    """Start a node in background threads and return once it accepts connections."""
    app = create_app(config, extension=extension)
    try:
        gate = LoginGate(node_of(app).authenticator, config.login_throttle)
        server = build_server(config, app, host, port, gate)
        server.start()
    except BaseException:
        with app.app_context():
            current_node().close()
        raise
    return RunningNode(config, app, server)


def _allow_open_files(connections: int) -> None:
    """Every connection is a file descriptor: raise the soft limit towards the hard one so that
    limits.connections, not the process default (often 1,024), bounds them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256  # storage, logs, validation workers
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


def serve_forever(
    config: NodeConfig,
    host: str | None = None,
    port: int | None = None,
    extension: NodeExtension = NO_EXTENSION,
) -> None:
    _allow_open_files(config.limits.connections)
    stop = threading.Event()
    # SIGTERM (systemd, `kill`, container runtimes) stops the node as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    node = start_node(config, host, port, extension)
    bound_host, bound_port = node.server.bind_addr
    scheme = "https" if config.tls else "http"
    log.info("node %s serving TAXII 2.1 at %s://%s:%s/taxii2/", config.name, scheme, bound_host, bound_port)
    print(f"node {config.name}: {scheme}://{bound_host}:{bound_port}/taxii2/", flush=True)
    try:
        while not stop.wait(1):
            pass
    finally:
        node.stop()  # answers held reads at once, then stops the server
