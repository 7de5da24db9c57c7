"""What a node tells its operators: Prometheus metrics (/metrics), health (/healthz, /readyz), a JSON-lines
access log and an audit log. `Observability.install` wires one node's app; every request passes its
hooks: timed first, then logged and counted after the response (errors included)."""

import logging
import threading
import time

from flask import Flask, Response, current_app, g, request

from taxii_federation.server.config import NodeConfig
from taxii_federation.server.extension import NodeExtension
from taxii_federation.server.observability import audit
from taxii_federation.server.observability.logs import JsonLinesLog
from taxii_federation.server.observability.metrics import NodeMetrics
from taxii_federation.server.storage.base import Storage

log = logging.getLogger(__name__)
_EXTENSION_KEY = "taxii_observability"
_METHODS = frozenset({"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"})
READINESS_CACHE_SECONDS = 2.0  # a probe every second must not ping storage and members every second


class Observability:
    def __init__(self, config: NodeConfig, storage: Storage, extension: NodeExtension):
        self.config, self.storage = config, storage
        self.metrics = NodeMetrics(config, storage, extension.collectors)
        self.readiness_checks = extension.readiness_checks
        logs = config.logs
        self.access_log = JsonLinesLog(logs.access, logs.rotate_bytes, logs.keep)
        self.audit_log = JsonLinesLog(logs.audit, logs.rotate_bytes, logs.keep)
        self._readiness_lock = threading.Lock()
        self._readiness: tuple[float, bool] = (float("-inf"), False)

    def install(self, app: Flask) -> None:
        """The request hooks; the endpoints are observability.endpoints.blueprint, registered by the app."""
        app.extensions[_EXTENSION_KEY] = self
        app.before_request(self._start)
        app.after_request(self._finish)

    def ready(self) -> bool:
        """Storage answers and every extension check passes; reasons for not being ready are logged."""
        with self._readiness_lock:
            checked_at, ready = self._readiness
            if time.monotonic() - checked_at > READINESS_CACHE_SECONDS:
                problems = self._readiness_problems()
                for problem in problems:
                    log.warning("node %s not ready: %s", self.config.name, problem)
                ready = not problems
                self._readiness = (time.monotonic(), ready)
            return ready

    def _readiness_problems(self) -> list[str]:
        problems = []
        try:
            self.storage.ping()
        except Exception as error:  # whatever the backend raises, the node cannot serve
            problems.append(f"storage unreachable: {error}")
        for check in self.readiness_checks:
            try:
                problem = check()
            except Exception as error:
                problem = f"readiness check failed: {error!r}"
            if problem:
                problems.append(problem)
        return problems

    def login_failed(self, user_name: str | None) -> None:
        """The Authenticator's `on_failure`: count it and leave an audit line."""
        self.metrics.auth_failures.inc()
        self.audit(audit.login_failed_event(user_name))

    def audit(self, event: dict) -> None:
        self.audit_log.write({"node": self.config.name, **event})

    @staticmethod
    def _start() -> None:
        g.request_started = time.perf_counter()

    def _finish(self, response: Response) -> Response:
        seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else None
        method = request.method if request.method in _METHODS else "OTHER"
        self.metrics.observe_request(endpoint, method, response.status_code, seconds)
        user = g.get("user")
        # No header values and no query values: either may carry a secret (an Authorization, a token).
        self.access_log.write(
            {
                "node": self.config.name,
                "remote": request.remote_addr,
                "method": method,
                "path": request.path,
                "query": sorted(request.args.keys()),
                "endpoint": endpoint,
                "status": response.status_code,
                "user": user.name if user else None,
                "bytes": response.calculate_content_length(),
                "duration_ms": round(seconds * 1000, 3),
            }
        )
        event = audit.request_event(response.status_code)
        if event is not None:
            self.audit(event)
            detail = g.get("audit_detail") or {}
            for outcome in ("stored", "already_present", "refused"):
                if detail.get(outcome) and "status_id" in detail:
                    self.metrics.objects.labels(detail["collection"], outcome).inc(detail[outcome])
            if detail.get("stored") or detail.get("versions_deleted"):
                self.metrics.collection_sizes.invalidate()
        return response

    def close(self) -> None:
        self.access_log.close()
        self.audit_log.close()


def current_observability() -> Observability:
    return current_app.extensions[_EXTENSION_KEY]
