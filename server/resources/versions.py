"""Versions of an object, GET .../objects/{object-id}/versions/ (TAXII 2.1 §5.8)."""

from flask import Blueprint

from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.node import find_collection, taxii_response
from taxii_federation.server.resources.paging import date_added_headers, page_fields, read_page

blueprint = Blueprint("versions", __name__)

_PARAMETERS = {"added_after", "limit", "next", "match[spec_version]"}


@blueprint.get("/<api_root>/collections/<collection_id>/objects/<object_id>/versions/")
def get_versions(api_root: str, collection_id: str, object_id: str):
    find_collection(api_root, collection_id, need="read")
    scope = f"versions:{object_id}"
    query, page = read_page(_PARAMETERS, collection_id, scope, object_id, with_bodies=False)
    if not page.items and query.after is None and query.added_after is None:
        raise TaxiiError(404, "Not Found", f"no object '{object_id}' in collection '{collection_id}'")
    body = page_fields(query, page, scope)
    if page.items:
        body["versions"] = [item.version_shown for item in page.items]  # §5.8: the objects' own timestamps
    return taxii_response(body, headers=date_added_headers(page))
