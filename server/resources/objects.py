"""Objects (TAXII 2.1 §5.3-§5.7): list and add objects; get and delete one object."""

import json
import math

from flask import Blueprint, Response, request

from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.filters import MATCH_FIELDS, parse_query
from taxii_federation.server.held_reads import NOT_NEWS_HEADER, PASSED_HEADER, WAIT_HEADER, NotNews
from taxii_federation.server.ingest import (
    LINK_PROPERTY,
    PROVENANCE_PROPERTY,
    ingest_envelope,
    is_federation_caller,
    wants_provenance,
)
from taxii_federation.server.node import current_node, find_collection, taxii_response
from taxii_federation.server.observability.audit import note_delete, note_ingest
from taxii_federation.server.resources.paging import date_added_headers, page_fields, read_page
from taxii_federation.server.resources.status import status_body
from taxii_federation.server.storage.base import VERSION_ALL, ObjectQuery, Page
from taxii_federation.server.timestamps import format_micros

blueprint = Blueprint("objects", __name__)

_LIST_PARAMETERS = {"added_after", "limit", "next", *(f"match[{name}]" for name in MATCH_FIELDS)}
_ONE_PARAMETERS = {"added_after", "limit", "next", "match[version]", "match[spec_version]"}
_DELETE_PARAMETERS = {"match[version]", "match[spec_version]"}


def envelope_response(
    query: ObjectQuery, page: Page, scope: str, headers: dict[str, str] | None = None
) -> Response:
    # Stored bodies are already JSON text: joining them avoids decoding and re-encoding every object.
    fields = page_fields(query, page, scope)
    if page.items and wants_provenance():
        fields[PROVENANCE_PROPERTY] = [item.origin_node for item in page.items]
        fields[LINK_PROPERTY] = [item.link for item in page.items]
    text = json.dumps(fields)
    if page.items:
        text = text[:-1] + ',"objects":[' + ",".join(item.body for item in page.items) + "]}"
    return taxii_response(text, headers={**date_added_headers(page), **(headers or {})})


def _requested_wait() -> float | None:
    """How long a federation account asks an empty read to be held (server/held_reads.py); None for
    everyone else, who get plain TAXII whatever they send."""
    text = request.headers.get(WAIT_HEADER)
    if text is None or not is_federation_caller():
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise TaxiiError(400, "Bad Request", f"{WAIT_HEADER} must be a number of seconds, got {text!r}")
    return seconds


@blueprint.get("/<api_root>/collections/<collection_id>/objects/")
def get_objects(api_root: str, collection_id: str):
    find_collection(api_root, collection_id, need="read")
    wait, node = _requested_wait(), current_node()
    generation = node.held_reads.generation(collection_id)
    query, page = read_page(_LIST_PARAMETERS, collection_id, "objects")
    not_news = NotNews.parse(request.headers.get(NOT_NEWS_HEADER)) if wait is not None else None
    if wait is None or not_news.has_news(page):
        return envelope_response(query, page, "objects")
    held = node.held_reads.hold(query, generation, wait, node.storage.query, not_news, page)
    headers = {WAIT_HEADER: f"{held.granted:g}"}
    if held.passed is not None:
        headers[PASSED_HEADER] = format_micros(held.passed)
    return envelope_response(query, held.page, "objects", headers)


@blueprint.post("/<api_root>/collections/<collection_id>/objects/")
def add_objects(api_root: str, collection_id: str):
    context = find_collection(api_root, collection_id, need="write")
    record = ingest_envelope(context)
    note_ingest(context.collection.alias or context.collection.id, record)
    return taxii_response(status_body(record), status=202)


def _require_object(collection_id: str, object_id: str) -> None:
    probe = ObjectQuery(collection_id=collection_id, limit=1, ids=(object_id,), versions=(VERSION_ALL,))
    if not current_node().storage.query(probe).items:
        raise TaxiiError(404, "Not Found", f"no object '{object_id}' in collection '{collection_id}'")


@blueprint.get("/<api_root>/collections/<collection_id>/objects/<object_id>/")
def get_object(api_root: str, collection_id: str, object_id: str):
    find_collection(api_root, collection_id, need="read")
    scope = f"object:{object_id}"
    query, page = read_page(_ONE_PARAMETERS, collection_id, scope, object_id)
    if not page.items and query.after is None:
        _require_object(collection_id, object_id)
    return envelope_response(query, page, scope)


@blueprint.delete("/<api_root>/collections/<collection_id>/objects/<object_id>/")
def delete_object(api_root: str, collection_id: str, object_id: str):
    # TAXII 2.1 §5.7: deleting needs read and write access, so a write-only user cannot learn from the
    # answer whether an object exists.
    context = find_collection(api_root, collection_id, need="read and write")
    args = request.args.to_dict(flat=False)
    query = parse_query(args, _DELETE_PARAMETERS, collection_id, 1, "delete", object_id)
    # Without match[version] every version goes (TAXII 2.1 §5.7).
    versions = query.versions if "match[version]" in args else (VERSION_ALL,)
    deleted = current_node().storage.delete_object(collection_id, object_id, versions, query.spec_versions)
    note_delete(context.collection.alias or context.collection.id, object_id, deleted)
    if not deleted:
        _require_object(collection_id, object_id)
        raise TaxiiError(404, "Not Found", f"no version of '{object_id}' matches the given filters")
    return taxii_response("", status=200)
