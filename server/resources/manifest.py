"""The manifest of a collection, GET /{api-root}/collections/{id}/manifest/ (TAXII 2.1 §5.6)."""

from flask import Blueprint

from taxii_federation.server.filters import MATCH_FIELDS
from taxii_federation.server.media import stix_media_type
from taxii_federation.server.node import find_collection, taxii_response
from taxii_federation.server.resources.paging import date_added_headers, page_fields, read_page
from taxii_federation.server.timestamps import format_micros

blueprint = Blueprint("manifest", __name__)

_PARAMETERS = {"added_after", "limit", "next", *(f"match[{name}]" for name in MATCH_FIELDS)}


@blueprint.get("/<api_root>/collections/<collection_id>/manifest/")
def get_manifest(api_root: str, collection_id: str):
    find_collection(api_root, collection_id, need="read")
    query, page = read_page(_PARAMETERS, collection_id, "manifest", with_bodies=False)
    body = page_fields(query, page, "manifest")
    if page.items:
        body["objects"] = [
            {
                "id": item.id,
                "date_added": format_micros(item.date_added),
                "version": item.version_shown,  # §5.6: the object's own modified (or created)
                "media_type": stix_media_type(item.spec_version),
            }
            for item in page.items
        ]
    return taxii_response(body, headers=date_added_headers(page))
