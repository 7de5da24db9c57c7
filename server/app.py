"""The app factory: `create_app(config)` returns one independent TAXII 2.1 node.

No module-level app, storage or user table exists, so several nodes can run in one process
(the federation demo and the tests do exactly that).
"""

import datetime
import secrets

from flask import Flask, current_app, g, request

from taxii_federation.server.auth import Authenticator
from taxii_federation.server.cert_auth import CertificateIdentities, log_in
from taxii_federation.server.config import NodeConfig
from taxii_federation.server.errors import TaxiiError, install_error_handlers
from taxii_federation.server.extension import NO_EXTENSION, NodeExtension
from taxii_federation.server.held_reads import HeldReads
from taxii_federation.server.http_server import CLIENT_CERT_ENVIRON_KEY, GATE_PASSED_ENVIRON_KEY
from taxii_federation.server.media import accepts_taxii
from taxii_federation.server.node import Node, attach_node, current_node
from taxii_federation.server.observability import Observability
from taxii_federation.server.observability.endpoints import blueprint as observability_blueprint
from taxii_federation.server.resources import BLUEPRINTS
from taxii_federation.server.storage import open_storage
from taxii_federation.server.storage.base import Storage
from taxii_federation.server.user_reload import UserReloader
from taxii_federation.server.validation import EnvelopeValidator

# The app.extensions key of the blueprints that authenticate their own requests (not TAXII ones).
_SELF_AUTHENTICATED = "taxii_self_authenticated_blueprints"


def _authenticate_and_negotiate() -> None:
    if request.blueprint in current_app.extensions[_SELF_AUTHENTICATED]:
        return
    node = current_node()
    try:
        g.user = log_in(
            node.authenticator,
            node.certificates,
            request.headers.get("Authorization"),
            request.environ.get(CLIENT_CERT_ENVIRON_KEY),
            request.remote_addr,
        )
    finally:
        gate_passed = request.environ.get(GATE_PASSED_ENVIRON_KEY)
        if gate_passed is not None:
            gate_passed()  # the password check is over: its slot goes to the next login, not a long-poll
    if not accepts_taxii(request.headers.get("Accept")):
        raise TaxiiError(
            406,
            "Not Acceptable",
            f"this node answers in 'application/taxii+json;version=2.1'; the Accept header "
            f"{request.headers.get('Accept')!r} does not allow it",
        )


def create_app(
    config: NodeConfig, storage: Storage | None = None, extension: NodeExtension = NO_EXTENSION
) -> Flask:
    """Build a node. `storage` defaults to the backend the config names; `extension` is what a layer
    above adds (the hub's federation dashboard)."""
    app = Flask(f"taxii-node-{config.name}")
    app.json.sort_keys = False
    # A path without its trailing slash names the same resource (instead of Werkzeug's HTML redirect page),
    # and '//' is not quietly merged into '/': it is simply not a TAXII path.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    # Sessions (the dashboard's login) are signed with a key of this process: a restart logs out.
    app.secret_key = secrets.token_bytes(32)
    app.config.update(
        SESSION_COOKIE_NAME=f"taxii-fed-{config.name}",
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.tls is not None,
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(hours=8),
    )
    storage = storage or open_storage(config.storage_url)
    observability = Observability(config, storage, extension)
    authenticator = Authenticator(config.users, config.login_throttle, observability.login_failed)
    certificates = CertificateIdentities(config.users)
    node = Node(
        config,
        storage,
        authenticator,
        EnvelopeValidator(config.validation_workers),
        HeldReads(config.max_held_reads, config.held_read_seconds),
        certificates,
    )
    node.on_close.append(observability.close)
    if extension.close:
        node.on_close.append(extension.close)
    attach_node(app, node)
    install_error_handlers(app)
    observability.install(app)  # first: it times and logs every request, refused ones included
    if config.source is not None:
        reloader = UserReloader(config.source, (authenticator.replace_users, certificates.replace_users))
        app.before_request(reloader.check)
    own_login = (observability_blueprint, *extension.blueprints)
    app.extensions[_SELF_AUTHENTICATED] = {blueprint.name for blueprint in own_login}
    app.before_request(_authenticate_and_negotiate)
    for blueprint in (*BLUEPRINTS, *own_login):
        app.register_blueprint(blueprint)
    return app
