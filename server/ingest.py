"""Adding an envelope to a collection (TAXII 2.1 §5.4): read within limits, validate, store, report.

The valid objects and the status that lists every object's outcome are written in one transaction: after a
crash an envelope is stored with its status or not at all, and a failure of the storage itself leaves the
collection as it was and answers 500.
"""

import uuid

from flask import request

from taxii_federation.server import json_input
from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.media import is_taxii_content
from taxii_federation.server.node import CollectionContext, current_node, current_user
from taxii_federation.server.storage.base import (
    NewObject,
    Provenance,
    StatusBuilder,
    StatusRecord,
    WriteOutcome,
)
from taxii_federation.server.timestamps import now_micros
from taxii_federation.server.validation import Refusal

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


def read_envelope(max_content_length: int) -> tuple[list, bool]:
    """The envelope's objects, and whether its text was clean (json_input.loads_screened)."""
    if not is_taxii_content(request.headers.get("Content-Type")):
        raise TaxiiError(
            415,
            "Unsupported Media Type",
            f"send the envelope as 'application/taxii+json;version=2.1', "
            f"not {request.headers.get('Content-Type')!r}",
        )
    body = _read_body(max_content_length)
    try:
        envelope, clean_text = json_input.loads_screened(body)
    except json_input.JsonInputError as error:
        raise TaxiiError(400, "Bad Request", f"the body cannot be read: {error}") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("objects"), list):
        raise TaxiiError(
            422,
            "Unprocessable Entity",
            "the body must be a TAXII envelope: a JSON object with an 'objects' list",
        )
    return envelope["objects"], clean_text


def _read_body(max_content_length: int) -> bytes:
    declared_text = request.headers.get("Content-Length")
    if declared_text is not None and not declared_text.strip().isdigit():
        raise _bad_framing(f"Content-Length {declared_text[:40]!r} is not a number of bytes")
    # Decided from the header, before a byte of the body is read (TAXII 2.1 §4.2 max_content_length).
    declared = int(declared_text) if declared_text is not None else None
    if declared is not None and declared > max_content_length:
        raise _too_large(declared, max_content_length)
    try:
        body = request.stream.read(max_content_length + 1)
    except (ValueError, OSError) as error:  # the HTTP server met a broken chunk or length while reading
        raise _bad_framing(f"the body could not be read ({error})") from None
    if len(body) > max_content_length:
        raise _too_large(None, max_content_length)
    return body


def _bad_framing(problem: str) -> TaxiiError:
    return TaxiiError(
        400, "Bad Request", f"{problem}; send the body with a valid Content-Length or chunked encoding"
    )


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


def _status_builder(context: CollectionContext, total: int, refusals: list[Refusal]) -> StatusBuilder:
    """How the envelope's status reads, given what the storage wrote (TAXII 2.1 §4.3.1)."""
    status_id, request_timestamp, owner = str(uuid.uuid4()), now_micros(), current_user().name
    refused = [{"id": r.id or "", "version": r.version or "", "message": r.message} for r in refusals]

    def build(outcomes: list[WriteOutcome], pending: set, lost: set) -> StatusRecord:
        def detail(outcome: WriteOutcome, message: str) -> dict:
            return {"id": outcome.id, "version": outcome.version_shown, "message": message}

        waiting = pending | lost
        return StatusRecord(
            id=status_id,
            api_root=context.api_root.path,
            collection_id=context.collection.id,
            request_timestamp=request_timestamp,
            total_count=total,
            owner=owner,
            successes=[
                detail(o, "stored" if o.stored else "already present; the stored copy is kept")
                for o in outcomes
                if (o.id, o.version) not in waiting
            ],
            failures=[
                detail(o, "not stored: the storage failed; post it again")
                for o in outcomes
                if (o.id, o.version) in lost
            ]
            + refused,
            pendings=[
                {"id": o.id, "version": o.version_shown} for o in outcomes if (o.id, o.version) in pending
            ],
        )

    return build


def ingest_envelope(context: CollectionContext) -> StatusRecord:
    """Validate, then write the valid objects and the envelope's status in one commit."""
    objects, clean_text = read_envelope(context.api_root.max_content_length)
    node = current_node()
    allow_custom = context.collection.allow_custom
    # Trusted only from a federation account, and only where this collection is no stricter than any other.
    validated_upstream = (
        is_federation_caller() and request.headers.get(VALIDATED_HEADER) == "stix2" and allow_custom
    )
    verdicts = node.validator.validate(
        objects,
        allow_custom,
        validated_upstream,
        node.config.max_validation_seconds,
        context.collection.stix_versions,
        clean_text,
    )
    valid = [verdict for verdict in verdicts if isinstance(verdict, NewObject)]
    refusals = [verdict for verdict in verdicts if isinstance(verdict, Refusal)]
    outcomes, record = node.storage.add_envelope(
        context.collection.id,
        valid,
        _provenance(),
        _status_builder(context, len(objects), refusals),
        node.config.status_retention_hours * 3_600_000_000,
    )
    if any(outcome.stored for outcome in outcomes):
        node.held_reads.committed(context.collection.id)  # after the commit: held reads may now see it
    return record
