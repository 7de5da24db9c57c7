"""API root information, GET /{api-root}/ (TAXII 2.1 §4.2)."""

from flask import Blueprint

from taxii_federation.server.media import TAXII_MEDIA_TYPE
from taxii_federation.server.node import find_api_root, taxii_response

blueprint = Blueprint("api_root", __name__)


@blueprint.get("/<api_root>/")
def get_api_root(api_root: str):
    root = find_api_root(api_root)
    body = {
        "title": root.title,
        "versions": [TAXII_MEDIA_TYPE],
        "max_content_length": root.max_content_length,
    }
    if root.description:
        body["description"] = root.description
    return taxii_response(body)
