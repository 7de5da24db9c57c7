"""Running a node on cheroot, a production multi-threaded WSGI server with TLS (not Flask's dev server)."""

import logging
import signal
import threading
from dataclasses import dataclass, field

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

from taxii_federation.server.app import create_app
from taxii_federation.server.config import NodeConfig
from taxii_federation.server.extension import NO_EXTENSION, NodeExtension
from taxii_federation.server.node import current_node, node_of

log = logging.getLogger(__name__)


@dataclass
class RunningNode:
    """A node listening in a background thread; `url` is its base URL with the port actually bound."""

    config: NodeConfig
    app: Flask
    server: wsgi.Server
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.config.host}:{self.port}/"

    def stop(self) -> None:
        node_of(self.app).held_reads.close()  # held reads answer now, so the worker threads can finish
        self.server.stop()
        self.thread.join(timeout=10)
        with self.app.app_context():
            current_node().close()


def build_server(
    config: NodeConfig, app: Flask, host: str | None = None, port: int | None = None
) -> wsgi.Server:
    server = wsgi.Server(
        (host or config.host, config.port if port is None else port),
        app,
        numthreads=config.threads,
        request_queue_size=64,
        timeout=30,
        server_name=f"taxii-federation/{config.name}",
    )
    if config.tls:
        server.ssl_adapter = BuiltinSSLAdapter(str(config.tls.cert), str(config.tls.key))
    return server


def start_node(
    config: NodeConfig,
    host: str | None = None,
    port: int | None = None,
    extension: NodeExtension = NO_EXTENSION,
) -> RunningNode:
    """Start a node in a background thread and return once it accepts connections."""
    app = create_app(config, extension=extension)
    server = build_server(config, app, host, port)
    server.prepare()  # binds the socket, so the real port is known before we return
    thread = threading.Thread(target=server.serve, name=f"taxii-node-{config.name}", daemon=True)
    thread.start()
    return RunningNode(config, app, server, thread)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve_forever(
    config: NodeConfig,
    host: str | None = None,
    port: int | None = None,
    extension: NodeExtension = NO_EXTENSION,
) -> None:
    app = create_app(config, extension=extension)
    server = build_server(config, app, host, port)
    server.prepare()
    scheme = "https" if config.tls else "http"
    log.info("node %s serving TAXII 2.1 at %s://%s:%s/taxii2/", config.name, scheme, *server.bind_addr[:2])
    print(f"node {config.name}: {scheme}://{server.bind_addr[0]}:{server.bind_addr[1]}/taxii2/", flush=True)
    # SIGTERM (systemd, `kill`, process managers) stops the node as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        node_of(app).held_reads.close()
        server.stop()
        with app.app_context():
            current_node().close()
