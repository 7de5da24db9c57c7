"""Collections, GET /{api-root}/collections/ and /{api-root}/collections/{id}/ (TAXII 2.1 §5.1, §5.2)."""

from flask import Blueprint

from taxii_federation.server.auth import Access, collection_access
from taxii_federation.server.config import CollectionConfig
from taxii_federation.server.media import stix_media_type
from taxii_federation.server.node import current_user, find_api_root, find_collection, taxii_response

blueprint = Blueprint("collections", __name__)


def collection_body(collection: CollectionConfig, access: Access) -> dict:
    body = {
        "id": collection.id,
        "title": collection.title,
        "can_read": access.can_read,
        "can_write": access.can_write,
        "media_types": [stix_media_type(version) for version in collection.stix_versions],
    }
    if collection.description:
        body["description"] = collection.description
    if collection.alias:
        body["alias"] = collection.alias
    return body


@blueprint.get("/<api_root>/collections/")
def get_collections(api_root: str):
    root = find_api_root(api_root)
    user = current_user()
    visible = []
    for collection in root.collections:
        access = collection_access(user, root.path, collection)
        if access.visible:
            visible.append(collection_body(collection, access))
    return taxii_response({"collections": visible} if visible else {})


@blueprint.get("/<api_root>/collections/<collection_id>/")
def get_collection(api_root: str, collection_id: str):
    context = find_collection(api_root, collection_id)
    return taxii_response(collection_body(context.collection, context.access))
