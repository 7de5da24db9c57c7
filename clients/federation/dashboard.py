"""The hub dashboard (`/dashboard/` on the hub's node): every link's state, lag, last success, last error
and held-back counts, each member's reachability and a chart of the objects it sent and received per
minute over the last hour. Server-rendered HTML; a few lines of inline JavaScript fetch the live panel
again every few seconds. Login is an operator's (role `operator`) of the hub's own node, checked by the
node's Authenticator, so refused logins land in the node's audit log like any other."""

import base64
import secrets
import time
from dataclasses import dataclass

from flask import Blueprint, Response, g, redirect, render_template, request, session, url_for

from taxii_federation.clients.federation.monitor import FederationMonitor, Throughput
from taxii_federation.clients.federation.status import STATES
from taxii_federation.server.config import UserConfig
from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.node import current_node

REFRESH_SECONDS = 5
CHART_WIDTH, CHART_HEIGHT = 240, 48
_SESSION_KEY = "operator"


@dataclass(frozen=True)
class Chart:
    """One member's objects per minute as SVG polylines (into the hub and out of it)."""

    member: str
    into_hub_points: str
    from_hub_points: str
    into_hub_total: int
    from_hub_total: int
    peak: int


def chart(throughput: Throughput) -> Chart:
    peak = max((*throughput.into_hub, *throughput.from_hub, 1))
    minutes = len(throughput.into_hub)

    def points(series: tuple[int, ...]) -> str:
        step = CHART_WIDTH / max(1, minutes - 1)
        return " ".join(
            f"{index * step:.1f},{CHART_HEIGHT - 2 - value / peak * (CHART_HEIGHT - 4):.1f}"
            for index, value in enumerate(series)
        )

    return Chart(
        throughput.member,
        points(throughput.into_hub),
        points(throughput.from_hub),
        sum(throughput.into_hub),
        sum(throughput.from_hub),
        peak,
    )


def _ago(moment: float | None) -> str:
    if not moment:
        return "never"
    seconds = max(0, time.time() - moment)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _utc(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment)) if moment else ""


def dashboard_blueprint(monitor: FederationMonitor) -> Blueprint:
    blueprint = Blueprint(
        "federation_dashboard", __name__, url_prefix="/dashboard", template_folder="templates"
    )

    def operator() -> UserConfig | None:
        name = session.get(_SESSION_KEY)
        user = current_node().authenticator.find_user(name) if name else None
        if user is None or "operator" not in user.roles:
            session.pop(_SESSION_KEY, None)
            return None
        g.user = user  # the access log names the operator
        return user

    def page(template: str, status: int = 200, **context) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = Response(render_template(template, nonce=nonce, **context), status=status)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def panel_context() -> dict:
        config = monitor.config
        links = monitor.links()
        counts = {state: sum(1 for link in links if link.health == state) for state in STATES}
        return {
            "hub": config.hub,
            "links": links,
            "counts": counts,
            "members": monitor.members(),
            "charts": {throughput.member: chart(throughput) for throughput in monitor.throughput()},
            "config_error": monitor.files.error,
            "updated": _utc(time.time()),
            "ago": _ago,
            "utc": _utc,
            "chart_width": CHART_WIDTH,
            "chart_height": CHART_HEIGHT,
        }

    @blueprint.get("/")
    def dashboard():
        user = operator()
        if user is None:
            return redirect(url_for(".login"))
        return page(
            "federation/dashboard.html",
            operator=user.name,
            refresh_seconds=REFRESH_SECONDS,
            **panel_context(),
        )

    @blueprint.get("/panel")
    def panel():
        if operator() is None:
            return page("federation/login.html", status=401, message="your session has ended; log in again")
        return page("federation/panel.html", **panel_context())

    @blueprint.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return page("federation/login.html", message=None)
        name, password = request.form.get("user", ""), request.form.get("password", "")
        # The node's own check (and its audit of refusals): the form's fields as an HTTP Basic header.
        header = "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()
        try:
            user = current_node().authenticator.authenticate(header)
        except TaxiiError as error:
            return page("federation/login.html", status=error.http_status, message=error.description)
        if "operator" not in user.roles:
            return page(
                "federation/login.html",
                status=403,
                message=f"user '{user.name}' lacks the operator role; "
                f"`taxii-fed users add NAME --role operator` makes an operator",
            )
        session.clear()
        session.permanent = True
        session[_SESSION_KEY] = user.name
        g.user = user
        return redirect(url_for(".dashboard"))

    @blueprint.post("/logout")
    def logout():
        session.clear()
        return redirect(url_for(".login"))

    return blueprint
