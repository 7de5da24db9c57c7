"""The audit trail: who wrote what to a node (every POST and DELETE of objects, every refused login), and
the answer to "who published object X, when, through which link".

Views note what a write did (`note_ingest`, `note_delete`); after the response, the request's audit event
is built here from that note, the caller and the HTTP status. The storage records each version's origin
node and link; the audit log adds the user, the time and the status id.
"""

from dataclasses import dataclass, field
from pathlib import Path

from flask import g, request

from taxii_federation.server.config import STIX_VERSIONS, NodeConfig
from taxii_federation.server.observability.logs import read_events
from taxii_federation.server.storage import open_storage
from taxii_federation.server.storage.base import VERSION_ALL, ObjectQuery, StatusRecord
from taxii_federation.server.timestamps import TimestampError, format_micros, parse_micros

STORED_MESSAGE = "stored"  # server.ingest's message for a version that was new
_ORIGIN_HEADER, _LINK_HEADER = "X-TAXII-Fed-Origin", "X-TAXII-Fed-Link"


def note_ingest(collection_label: str, record: StatusRecord) -> None:
    stored = [[s["id"], s["version"]] for s in record.successes if s.get("message") == STORED_MESSAGE]
    g.audit_detail = {
        "collection": collection_label,
        "status_id": record.id,
        "total": record.total_count,
        "stored": len(stored),
        "already_present": len(record.successes) - len(stored),
        "refused": len(record.failures),
        "versions": stored,  # what "who published X" looks up
    }


def note_delete(collection_label: str, object_id: str, deleted: int) -> None:
    g.audit_detail = {"collection": collection_label, "object_id": object_id, "versions_deleted": deleted}


def request_event(status: int) -> dict | None:
    """The audit event of this request, if it was a write to objects."""
    if request.method not in ("POST", "DELETE") or request.url_rule is None:
        return None
    if not request.url_rule.rule.endswith(("/objects/", "/objects/<object_id>/")):
        return None
    user = g.get("user")
    args = request.view_args or {}
    event = {
        "event": "publish" if request.method == "POST" else "delete",
        "user": user.name if user else None,
        "remote": request.remote_addr,
        "api_root": args.get("api_root"),
        "collection_id": args.get("collection_id"),
        "http_status": status,
    }
    if request.method == "DELETE":
        event["object_id"] = args.get("object_id")
        event["match_version"] = request.args.getlist("match[version]")
    if user is not None and "federation" in user.roles and request.headers.get(_LINK_HEADER):
        event["origin"] = request.headers.get(_ORIGIN_HEADER)
        event["link"] = request.headers.get(_LINK_HEADER)
    return event | g.get("audit_detail", {})


def login_failed_event(user_name: str | None) -> dict:
    return {
        "event": "login_failed",
        "user": user_name[:200] if user_name else None,
        "remote": request.remote_addr,
        "method": request.method,
        "path": request.path,
    }


@dataclass
class VersionHistory:
    """One stored version of an object on one node, and the audit events that wrote it there."""

    node: str
    collection: str
    version: str
    date_added: str
    origin_node: str | None
    link: str | None
    posts: list[dict] = field(default_factory=list)  # audit events naming this version


def object_history(config: NodeConfig, object_id: str) -> list[VersionHistory]:
    """Every version of `object_id` the node holds, with who posted it (from the audit log, if kept)."""
    storage = open_storage(config.storage_url)
    history: list[VersionHistory] = []
    try:
        for api_root in config.api_roots:
            for collection in api_root.collections:
                query = ObjectQuery(
                    collection_id=collection.id,
                    limit=1000,
                    ids=(object_id,),
                    versions=(VERSION_ALL,),
                    spec_versions=STIX_VERSIONS,  # every copy, not only the latest STIX version
                    with_bodies=False,
                )
                for item in storage.query(query).items:
                    history.append(
                        VersionHistory(
                            config.name,
                            collection.alias or collection.id,
                            item.version_shown,
                            format_micros(item.date_added),
                            item.origin_node,
                            item.link,
                        )
                    )
    finally:
        storage.close()
    if config.logs.audit is not None and history:
        _attach_posts(history, config.logs.audit, object_id)
    return history


def _attach_posts(history: list[VersionHistory], audit_log: Path, object_id: str) -> None:
    # Versions are compared as instants: the same version may be written 2016-04-06T20:03:48Z or ...48.000Z.
    by_version = {(h.collection, _instant(h.version)): h for h in history}
    for event in read_events(audit_log, containing=object_id):
        if event.get("event") != "publish":
            continue
        for stored_id, version in event.get("versions") or []:
            entry = by_version.get((event.get("collection"), _instant(version)))
            if stored_id == object_id and entry is not None:
                summary = {k: v for k, v in event.items() if k != "versions"}
                entry.posts.append(summary)


def _instant(version: str) -> int | None:
    try:
        return parse_micros(version)
    except TimestampError:
        return None
