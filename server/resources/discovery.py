"""Server discovery, GET /taxii2/ (TAXII 2.1 §4.1)."""

from flask import Blueprint

from taxii_federation.server.auth import has_api_root_grant
from taxii_federation.server.node import current_node, current_user, taxii_response

blueprint = Blueprint("discovery", __name__)


@blueprint.get("/taxii2/")
def get_discovery():
    config = current_node().config
    user = current_user()
    visible = [root.path for root in config.api_roots if has_api_root_grant(user, root.path)]
    body = {"title": config.title}
    if config.description:
        body["description"] = config.description
    if config.contact:
        body["contact"] = config.contact
    # §4.1.1: API root URLs are HTTPS absolute URLs or relative ones. Relative ones ('/alliance/') are right
    # behind any proxy or port and are never built from the client's Host header, which an attacker chooses.
    if config.default_api_root in visible:
        body["default"] = f"/{config.default_api_root}/"
    if visible:
        body["api_roots"] = [f"/{path}/" for path in visible]
    return taxii_response(body)
