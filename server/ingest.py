"""Adding an envelope to a collection (TAXII 2.1 §5.4): read within limits, validate, store, report.

Valid objects are written in one transaction; the status lists every object's outcome. Nothing is
half-written: a failure of storage itself leaves the collection as it was and answers 500.
"""

import json
import logging
import uuid

from flask import request

from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.media import is_taxii_content
from taxii_federation.server.node import CollectionContext, current_node, current_user
from taxii_federation.server.storage.base import (
    NewObject,
    PartialWriteError,
    Provenance,
    StatusRecord,
    WriteOutcome,
)
from taxii_federation.server.timestamps import format_micros, now_micros
from taxii_federation.server.validation import Refusal

log = logging.getLogger(__name__)

# A mirror (a user with the 'federation' role) states where the objects it posts came from, and asks
# where the objects it reads came from; standard clients never see either (TAXII 2.1 lets a
# resource carry custom properties, which clients ignore).
ORIGIN_HEADER = "X-TAXII-Fed-Origin"
LINK_HEADER = "X-TAXII-Fed-Link"
PROVENANCE_HEADER = "X-TAXII-Fed-Provenance"
# A mirror reading from a taxii-federation node says the objects were validated there already.
VALIDATED_HEADER = "X-TAXII-Fed-Validated"
PROVENANCE_PROPERTY = "x_taxii_fed_origins"  # the node where each version was first published
LINK_PROPERTY = "x_taxii_fed_links"  # the federation link that delivered it here, if any


def is_federation_caller() -> bool:
    return "federation" in current_user().roles


def wants_provenance() -> bool:
    return is_federation_caller() and request.headers.get(PROVENANCE_HEADER) == "include"


def read_envelope(max_content_length: int) -> list:
    if not is_taxii_content(request.headers.get("Content-Type")):
        raise TaxiiError(
            415,
            "Unsupported Media Type",
            f"send the envelope as 'application/taxii+json;version=2.1', "
            f"not {request.headers.get('Content-Type')!r}",
        )
    # Decided from the header, before a byte of the body is read (TAXII 2.1 §4.2 max_content_length).
    declared = request.content_length
    if declared is not None and declared > max_content_length:
        raise _too_large(declared, max_content_length)
    body = request.stream.read(max_content_length + 1)
    if len(body) > max_content_length:
        raise _too_large(None, max_content_length)
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise TaxiiError(400, "Bad Request", f"the body is not valid JSON: {error}") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("objects"), list):
        raise TaxiiError(
            422,
            "Unprocessable Entity",
            "the body must be a TAXII envelope: a JSON object with an 'objects' list",
        )
    return envelope["objects"]


def _too_large(size: int | None, limit: int) -> TaxiiError:
    what = f"{size} bytes" if size is not None else "the body"
    return TaxiiError(
        413,
        "Payload Too Large",
        f"{what} exceeds this API root's max_content_length of {limit} bytes; "
        "split the objects over several envelopes",
    )


def _provenance() -> Provenance:
    node_name = current_node().config.name
    if not is_federation_caller():
        return Provenance(origin_node=node_name)
    origin = request.headers.get(ORIGIN_HEADER) or node_name
    return Provenance(origin_node=origin, link=request.headers.get(LINK_HEADER))


def _store(
    context: CollectionContext, valid: list[NewObject]
) -> tuple[list[WriteOutcome], list[WriteOutcome]]:
    """The outcomes to report as successes, and the new versions a failing backend did not store."""
    try:
        return current_node().storage.add_objects(context.collection.id, valid, _provenance()), []
    except PartialWriteError as error:
        log.exception("storage failed part way through an envelope")
        kept = [o for o in error.outcomes if not o.stored or (o.id, o.version) in error.stored]
        lost = [o for o in error.outcomes if o.stored and (o.id, o.version) not in error.stored]
        return kept, lost


def ingest_envelope(context: CollectionContext) -> StatusRecord:
    request_timestamp = now_micros()
    objects = read_envelope(context.api_root.max_content_length)
    node = current_node()
    allow_custom = context.collection.allow_custom
    # Trusted only from a federation account, and only where this collection is no stricter than any other.
    validated_upstream = (
        is_federation_caller() and request.headers.get(VALIDATED_HEADER) == "stix2" and allow_custom
    )
    verdicts = node.validator.validate(objects, allow_custom, validated_upstream)
    valid = [verdict for verdict in verdicts if isinstance(verdict, NewObject)]
    outcomes, lost = _store(context, valid)
    if any(outcome.stored for outcome in outcomes):
        node.held_reads.committed(context.collection.id)
    successes = [
        {
            "id": outcome.id,
            "version": format_micros(outcome.version),
            "message": "stored" if outcome.stored else "already present; the stored copy is kept",
        }
        for outcome in outcomes
    ]
    failures = [
        {
            "id": o.id,
            "version": format_micros(o.version),
            "message": "not stored: the storage failed; post again",
        }
        for o in lost
    ] + [
        {"id": verdict.id or "", "version": verdict.version or "", "message": verdict.message}
        for verdict in verdicts
        if isinstance(verdict, Refusal)
    ]
    record = StatusRecord(
        id=str(uuid.uuid4()),
        api_root=context.api_root.path,
        collection_id=context.collection.id,
        request_timestamp=request_timestamp,
        total_count=len(objects),
        successes=successes,
        failures=failures,
    )
    node.storage.save_status(record, node.config.status_retention_hours * 3_600_000_000)
    return record
