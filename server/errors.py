"""The one HTTP error path: every failure leaves the node as a TAXII error message (TAXII 2.1 §3.6.1)."""

import json
import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from taxii_federation.server.media import TAXII_MEDIA_TYPE

log = logging.getLogger(__name__)


class TaxiiError(Exception):
    """An error a client caused or must act on, rendered as a TAXII error message."""

    def __init__(self, http_status: int, title: str, description: str = "", headers: dict | None = None):
        super().__init__(f"{http_status} {title}: {description}")
        self.http_status = http_status
        self.title = title
        self.description = description
        self.headers = headers or {}


def error_response(
    http_status: int, title: str, description: str = "", headers: dict | None = None
) -> Response:
    body = {"title": title, "http_status": str(http_status)}
    if description:
        body["description"] = description
    response = Response(json.dumps(body), status=http_status, mimetype=TAXII_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(TaxiiError)
    def _taxii_error(error: TaxiiError) -> Response:
        return error_response(error.http_status, error.title, error.description, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        # Routing failures (unknown path, wrong method) and werkzeug's own limits.
        headers = {}
        if error.code == 405 and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        description = error.description or ""
        if error.code == 404:
            description = "no TAXII resource at this path; the node's discovery resource is at /taxii2/"
        return error_response(error.code or 500, error.name, description, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error while serving a request")
        return error_response(500, "Internal Server Error", "the node failed; the error is in its log")
