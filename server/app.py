"""The app factory: `create_app(config)` returns one independent TAXII 2.1 node.

No module-level app, storage or user table exists, so several nodes can run in one process
(the federation demo and the tests do exactly that).
"""

from flask import Flask, g, request

from taxii_federation.server.auth import Authenticator
from taxii_federation.server.cert_auth import CertificateIdentities, log_in
from taxii_federation.server.config import NodeConfig
from taxii_federation.server.errors import TaxiiError, install_error_handlers
from taxii_federation.server.http_server import CLIENT_CERT_ENVIRON_KEY
from taxii_federation.server.media import accepts_taxii
from taxii_federation.server.node import Node, attach_node, current_node
from taxii_federation.server.resources import BLUEPRINTS
from taxii_federation.server.storage import open_storage
from taxii_federation.server.storage.base import Storage
from taxii_federation.server.validation import EnvelopeValidator


def _authenticate_and_negotiate() -> None:
    node = current_node()
    g.user = log_in(
        node.authenticator,
        node.certificates,
        request.headers.get("Authorization"),
        request.environ.get(CLIENT_CERT_ENVIRON_KEY),
    )
    if not accepts_taxii(request.headers.get("Accept")):
        raise TaxiiError(
            406,
            "Not Acceptable",
            f"this node answers in 'application/taxii+json;version=2.1'; the Accept header "
            f"{request.headers.get('Accept')!r} does not allow it",
        )


def create_app(config: NodeConfig, storage: Storage | None = None) -> Flask:
    """Build a node. `storage` defaults to the backend the config names."""
    app = Flask(f"taxii-node-{config.name}")
    app.json.sort_keys = False
    storage = storage or open_storage(config.storage_url)
    node = Node(
        config,
        storage,
        Authenticator(config.users),
        EnvelopeValidator(config.validation_workers),
        CertificateIdentities(config.users),
    )
    attach_node(app, node)
    install_error_handlers(app)
    app.before_request(_authenticate_and_negotiate)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
