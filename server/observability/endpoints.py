"""/healthz, /readyz and /metrics. Health answers carry no data (a load balancer and anyone else may ask);
why a node is not ready goes to its log. /metrics asks for an operator's login unless `metrics.auth: none`."""

from flask import Blueprint, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taxii_federation.server.config import UserConfig
from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.node import current_node
from taxii_federation.server.observability import current_observability

blueprint = Blueprint("observability", __name__)


def _plain(text: str, status: int = 200) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


@blueprint.get("/healthz")
def healthz() -> Response:
    return _plain("ok")


@blueprint.get("/readyz")
def readyz() -> Response:
    return _plain("ready") if current_observability().ready() else _plain("not ready", 503)


@blueprint.get("/metrics")
def metrics() -> Response:
    observability = current_observability()
    if observability.config.metrics_auth == "operator":
        require_operator(request.headers.get("Authorization"))
    return Response(generate_latest(observability.metrics.registry), mimetype=CONTENT_TYPE_LATEST)


def require_operator(authorization: str | None) -> UserConfig:
    """HTTP Basic for a user with the 'operator' role (401 without a valid login, 403 without the role)."""
    user = current_node().authenticator.authenticate(authorization)
    g.user = user
    if "operator" not in user.roles:
        raise TaxiiError(403, "Forbidden", f"user '{user.name}' lacks the 'operator' role this page needs")
    return user
