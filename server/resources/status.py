"""Status resources, GET /{api-root}/status/{status-id}/ (TAXII 2.1 §4.3)."""

from flask import Blueprint

from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.node import (
    current_node,
    current_user,
    find_api_root,
    find_collection,
    taxii_response,
)
from taxii_federation.server.storage.base import StatusRecord
from taxii_federation.server.timestamps import format_micros

blueprint = Blueprint("status", __name__)


def status_body(record: StatusRecord) -> dict:
    body = {
        "id": record.id,
        "status": record.status,
        "request_timestamp": format_micros(record.request_timestamp),
        "total_count": record.total_count,
        "success_count": len(record.successes),
        "failure_count": len(record.failures),
        "pending_count": len(record.pendings),
    }
    # §2: an empty list MUST NOT stand in for an optional property that has nothing to say.
    for name in ("successes", "failures", "pendings"):
        if details := getattr(record, name):
            body[name] = details
    return body


@blueprint.get("/<api_root>/status/<status_id>/")
def get_status(api_root: str, status_id: str):
    find_api_root(api_root)
    record = current_node().storage.get_status(status_id)
    if record is None or record.api_root != api_root or not _may_read(record):
        raise TaxiiError(
            404,
            "Not Found",
            f"no status '{status_id[:100]}' of yours in API root '{api_root}' (a status can be read by the "
            "user who posted the envelope, for the node's retention period)",
        )
    # A status tells which objects went into a collection: only those who still see it may read it.
    find_collection(api_root, record.collection_id)
    return taxii_response(status_body(record))


def _may_read(record: StatusRecord) -> bool:
    """A status shows what one user sent: it is theirs (and the node admins') to read."""
    user = current_user()
    return record.owner == user.name or "admin" in user.roles
