"""The MongoDB backend (pymongo), for nodes that outgrow one machine: a replica set for availability, a
sharded cluster for size. It behaves exactly like the SQLite backend; the same test suites run on both.

Documents (database from the URL, default `taxii`):
- `objects`: one per stored version: collection_id, date_added, id, version, type, spec_version, is_first,
  is_last, origin_node, link, body (the object's JSON text, served as stored).
- `clocks`: per collection, the last date_added ever assigned.
- `write_locks`: per collection, the lease of the writer assigning date_added.
- `status`: status resources.

Indexes (created at start, see `_INDEXES`): every page read is one index range that stops after
`limit + 1` documents, at any collection size; (collection_id, id, version, spec_version) is unique, so a
version is stored once even if two writers race.

date_added must increase in commit order even with several server processes writing, or an `added_after`
poller could pass over an object committed late with a smaller date_added. Writers of one collection
therefore take a lease (a document in `write_locks`), assign date_added after the last one, insert, and
release. Where the deployment supports transactions (replica sets, sharded clusters) the inserts of an
envelope commit together; on a standalone server they are inserted in order and a failure reports exactly
which objects were stored.
"""

import heapq
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from urllib.parse import urlsplit

from pymongo import ASCENDING, MongoClient, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from taxii_federation.server.json_output import json_text
from taxii_federation.server.storage.base import (
    VERSION_ALL,
    VERSION_FIRST,
    VERSION_LAST,
    CollectionSize,
    NewObject,
    ObjectQuery,
    Page,
    PlannedVersion,
    Provenance,
    StatusBuilder,
    StatusRecord,
    Storage,
    StoredVersion,
    VersionKey,
    WriteOutcome,
    WritePlan,
    fill_page,
    plan_write,
)
from taxii_federation.server.timestamps import now_micros, parse_micros

_INDEXES = {
    "objects": [
        ([("collection_id", ASCENDING), ("date_added", ASCENDING)], {"unique": True}),
        (
            [
                ("collection_id", ASCENDING),
                ("id", ASCENDING),
                ("version", ASCENDING),
                ("spec_version", ASCENDING),
            ],
            {"unique": True},
        ),
        ([("collection_id", ASCENDING), ("is_last", ASCENDING), ("date_added", ASCENDING)], {}),
        ([("collection_id", ASCENDING), ("type", ASCENDING), ("date_added", ASCENDING)], {}),
        (
            [
                ("collection_id", ASCENDING),
                ("type", ASCENDING),
                ("is_last", ASCENDING),
                ("date_added", ASCENDING),
            ],
            {},
        ),
    ],
    "status": [([("created", ASCENDING)], {})],
}
log = logging.getLogger(__name__)
_OLD_VERSION_INDEX = "collection_id_1_id_1_version_1"
_LEASE_SECONDS = 120  # far longer than writing the largest envelope a node accepts
_FIELDS = (
    "id",
    "type",
    "spec_version",
    "version",
    "date_added",
    "body",
    "origin_node",
    "link",
    "version_text",
)
_PROJECTION = {name: 1 for name in _FIELDS} | {"_id": 0, "is_latest_spec": 1}
_PROJECTION_WITHOUT_BODY = {name: 1 for name in _FIELDS if name != "body"} | {"_id": 0, "is_latest_spec": 1}


def _version_document(collection_id: str, planned: PlannedVersion, provenance: Provenance) -> dict:
    return {
        "collection_id": collection_id,
        "date_added": planned.date_added,
        "id": planned.object.id,
        "version": planned.version,
        "type": planned.object.type,
        "spec_version": planned.object.spec_version,
        "is_first": planned.only_version,
        "is_last": planned.only_version,
        "is_latest_spec": planned.only_version,
        "origin_node": provenance.origin_node,
        "link": provenance.link,
        "body": planned.object.body,
        "version_text": planned.object.version_text,
    }


class WriteLockTimeout(RuntimeError):
    """Another writer held a collection's lease for too long."""


class MongoStorage(Storage):
    def __init__(self, url: str):
        self.client = MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10_000)
        self.db = self.client[urlsplit(url).path.strip("/") or "taxii"]
        for collection, indexes in _INDEXES.items():
            for keys, options in indexes:
                self.db[collection].create_index(keys, **options)
        # Databases from before a version was unique per STIX version (VersionKey) drop the older index.
        if _OLD_VERSION_INDEX in self.db.objects.index_information():
            self.db.objects.drop_index(_OLD_VERSION_INDEX)
        self._transactions = self._supports_transactions()

    def _supports_transactions(self) -> bool:
        hello = self.client.admin.command("hello")
        return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"

    # -- writes ------------------------------------------------------------------------------------

    def add_envelope(
        self,
        collection_id: str,
        objects: list[NewObject],
        provenance: Provenance,
        build_status: StatusBuilder | None,
        retention_micros: int,
    ) -> tuple[list[WriteOutcome], StatusRecord | None]:
        with _CollectionLease(self.db, collection_id):
            existing = self._existing_versions(collection_id, sorted({obj.id for obj in objects}))
            clock = self.db.clocks.find_one({"_id": collection_id}) or {"last": 0}
            plan = plan_write(objects, existing, max(now_micros(), clock["last"] + 1))
            if build_status is not None and not self._transactions:
                return plan.outcomes, self._write_without_transaction(
                    collection_id, plan, provenance, build_status, retention_micros
                )
            status = build_status(plan.outcomes, set(), set()) if build_status else None
            self._in_transaction(
                lambda session: self._write(
                    collection_id, plan, provenance, status, retention_micros, session
                )
            )
            return plan.outcomes, status

    def _write(
        self,
        collection_id: str,
        plan: WritePlan,
        provenance: Provenance,
        status: StatusRecord | None,
        retention_micros: int,
        session,
    ) -> None:
        if plan.versions:
            documents = [_version_document(collection_id, planned, provenance) for planned in plan.versions]
            self.db.objects.insert_many(documents, ordered=True, session=session)
            self.db.clocks.update_one(
                {"_id": collection_id}, {"$max": {"last": plan.last_date_added}}, upsert=True, session=session
            )
        self._reflag(collection_id, sorted(plan.ids_to_reflag), session)
        if status is not None:
            self._save_status(status, retention_micros, session)

    def _write_without_transaction(
        self,
        collection_id: str,
        plan: WritePlan,
        provenance: Provenance,
        build_status: StatusBuilder,
        retention_micros: int,
    ) -> StatusRecord:
        """A standalone server has no transactions: the status is written first, naming every new version
        as pending, so a crash never leaves objects without their status (`get_status` settles a pending
        status that outlived its writer's lease); then the objects; then the final status."""
        planned = [(version.object.id, version.version) for version in plan.versions]
        self._save_status(build_status(plan.outcomes, set(planned), set()), retention_micros)
        lost: set[tuple[str, int]] = set()
        try:
            self._write(collection_id, plan, provenance, None, retention_micros, None)
        except BulkWriteError as error:
            log.exception("the storage failed part way through an envelope")
            lost = set(planned[error.details.get("nInserted", 0) :])  # ordered: the first nInserted are in
        status = build_status(plan.outcomes, set(), lost)
        self._save_status(status, retention_micros)
        return status

    def _in_transaction(self, work: Callable) -> None:
        if not self._transactions:
            work(None)
            return
        with self.client.start_session() as session:
            session.with_transaction(work)

    def _existing_versions(self, collection_id: str, ids: list[str]) -> dict[str, set[VersionKey]]:
        existing: dict[str, set[VersionKey]] = {}
        for start in range(0, len(ids), 1000):
            cursor = self.db.objects.find(
                {"collection_id": collection_id, "id": {"$in": ids[start : start + 1000]}},
                {"id": 1, "version": 1, "spec_version": 1, "_id": 0},
            )
            for document in cursor:
                existing.setdefault(document["id"], set()).add(
                    (document["version"], document["spec_version"])
                )
        return existing

    def _reflag(self, collection_id: str, ids: list[str], session=None) -> None:
        """Recompute which version of each id is the first and the last (the default `match[version]`), and
        which have its latest STIX version (served when no `match[spec_version]` is given)."""
        for object_id in ids:
            documents = list(
                self.db.objects.find(
                    {"collection_id": collection_id, "id": object_id},
                    {"version": 1, "spec_version": 1},
                    session=session,
                )
            )
            if not documents:
                continue
            versions = [document["version"] for document in documents]
            first, last = min(versions), max(versions)
            latest_spec = max(document["spec_version"] for document in documents)
            self.db.objects.update_many(
                {"collection_id": collection_id, "id": object_id},
                [
                    {
                        "$set": {
                            "is_first": {"$eq": ["$version", first]},
                            "is_last": {"$eq": ["$version", last]},
                            "is_latest_spec": {"$eq": ["$spec_version", latest_spec]},
                        }
                    }
                ],
                session=session,
            )

    def delete_object(
        self,
        collection_id: str,
        object_id: str,
        versions: tuple[str | int, ...],
        spec_versions: tuple[str, ...],
    ) -> int:
        selector = {"collection_id": collection_id, "id": object_id}
        _add_version_filter(selector, versions)
        if spec_versions:
            selector["spec_version"] = {"$in": list(spec_versions)}
        with _CollectionLease(self.db, collection_id):
            deleted = self.db.objects.delete_many(selector).deleted_count
            self._reflag(collection_id, [object_id])
        return deleted

    # -- reads -------------------------------------------------------------------------------------

    def query(self, query: ObjectQuery) -> Page:
        if query.ids:
            documents: Iterable[dict] = self._select_by_ids(query)
        elif len(query.types) > 1:
            # One ordered index range per type, merged, as in the SQLite backend.
            ranges = [self._select(query, (object_type,)) for object_type in query.types]
            documents = heapq.merge(*ranges, key=lambda document: document["date_added"])
        else:
            documents = self._select(query, query.types)
        if not query.spec_versions:
            # Filtered here, not in the query: secantusdb serves only pure equalities from an index, and
            # documents from before the flag are STIX 2.1 (`_select` reads on lazily when it drops some).
            documents = (document for document in documents if document.get("is_latest_spec", True))
        versions = (
            StoredVersion(*(document.get(name, "" if name == "body" else None) for name in _FIELDS))
            for document in documents
        )
        return fill_page(versions, query.limit, query.max_bytes)

    def _select_by_ids(self, query: ObjectQuery) -> list[dict]:
        """match[id], one object, its versions: every version of the ids, found by equality alone on the
        (collection_id, id, version) index, each marked by the database with whether the other filters
        select it (bodies only for those). An object has few versions, and a filter beside `id` (is_last, a
        date_added range) can lead a planner to scan the collection instead: secantusdb always does, and
        equality on an index prefix is the shape every MongoDB-compatible server serves from its index."""
        selected = _selection_expression(query)
        projection = _PROJECTION_WITHOUT_BODY | {"selected": selected}
        if query.with_bodies:
            projection["body"] = {"$cond": [selected, "$body", "$$REMOVE"]}
        candidates = self.db.objects.find(
            {"collection_id": query.collection_id, "id": {"$in": list(query.ids)}}, projection
        )
        chosen = [document for document in candidates if document["selected"]]
        return sorted(chosen, key=lambda document: document["date_added"])[: query.limit + 1]

    def _select(self, query: ObjectQuery, types: tuple[str, ...]) -> Iterable[dict]:
        selector: dict = {"collection_id": query.collection_id}
        if types:
            selector["type"] = types[0] if len(types) == 1 else {"$in": list(types)}
        _add_version_filter(selector, query.versions)
        if query.spec_versions:
            selector["spec_version"] = {"$in": list(query.spec_versions)}
        lower = query.lower_bound
        if lower is not None:
            selector["date_added"] = {"$gt": lower}
        projection = _PROJECTION if query.with_bodies else _PROJECTION_WITHOUT_BODY
        cursor = self.db.objects.find(selector, projection).sort("date_added", ASCENDING)
        # Read lazily, a page's worth at a time: a page cut by size, or full, reads no further.
        return (
            cursor.batch_size(query.limit + 1) if not query.spec_versions else cursor.limit(query.limit + 1)
        )

    # -- status ------------------------------------------------------------------------------------

    def save_status(self, status: StatusRecord, retention_micros: int) -> None:
        self._save_status(status, retention_micros)

    def _save_status(self, status: StatusRecord, retention_micros: int, session=None) -> None:
        document = {
            "_id": status.id,
            "created": status.request_timestamp,
            "api_root": status.api_root,
            "collection_id": status.collection_id,
            "total_count": status.total_count,
            "owner": status.owner,
            "body": json_text(
                {"successes": status.successes, "failures": status.failures, "pendings": status.pendings}
            ),
        }
        self.db.status.replace_one({"_id": status.id}, document, upsert=True, session=session)
        self.db.status.delete_many({"created": {"$lt": now_micros() - retention_micros}}, session=session)

    def get_status(self, status_id: str) -> StatusRecord | None:
        document = self.db.status.find_one({"_id": status_id})
        if document is None:
            return None
        record = self._status_record(document)
        if record.pendings and record.request_timestamp < now_micros() - _LEASE_SECONDS * 1_000_000:
            record = self._settle(record)
        return record

    def _settle(self, record: StatusRecord) -> StatusRecord:
        """A status still pending after its writer's lease ran out: the writer died between the objects and
        the final status (standalone servers only). Each pending version is a success if it is stored."""
        successes, failures = list(record.successes), list(record.failures)
        for pending in record.pendings:
            selector = {
                "collection_id": record.collection_id,
                "id": pending["id"],
                "version": parse_micros(pending["version"]),
            }
            if self.db.objects.count_documents(selector, limit=1):
                successes.append({**pending, "message": "stored"})
            else:
                failures.append(
                    {**pending, "message": "not stored: the node stopped while writing; post again"}
                )
        settled = replace(record, successes=successes, failures=failures, pendings=[])
        self._save_status(settled, retention_micros=10**18)
        return settled

    @staticmethod
    def _status_record(document: dict) -> StatusRecord:
        return StatusRecord(
            id=document["_id"],
            api_root=document["api_root"],
            collection_id=document["collection_id"],
            request_timestamp=document["created"],
            total_count=document["total_count"],
            owner=document.get("owner"),
            **json.loads(document["body"]),
        )

    def collection_ids(self) -> list[str]:
        return sorted(document["_id"] for document in self.db.clocks.find({}, {"_id": 1}))

    def import_versions(self, collection_id: str, versions: list[StoredVersion]) -> int:
        if not versions:
            return 0
        with _CollectionLease(self.db, collection_id):
            existing = self._existing_versions(collection_id, sorted({v.id for v in versions}))
            documents = [
                {
                    "collection_id": collection_id,
                    "date_added": v.date_added,
                    "id": v.id,
                    "version": v.version,
                    "type": v.type,
                    "spec_version": v.spec_version,
                    "is_first": False,
                    "is_last": False,
                    "origin_node": v.origin_node,
                    "link": v.link,
                    "body": v.body,
                    "version_text": v.version_text,
                }
                for v in versions
                if (v.version, v.spec_version) not in existing.get(v.id, set())
            ]

            def write(session) -> None:
                if documents:
                    self.db.objects.insert_many(documents, ordered=True, session=session)
                self.db.clocks.update_one(
                    {"_id": collection_id},
                    {"$max": {"last": max(v.date_added for v in versions)}},
                    upsert=True,
                    session=session,
                )
                self._reflag(collection_id, sorted({v.id for v in versions}), session)

            self._in_transaction(write)
        return len(documents)

    def list_status(self, after_id: str | None, limit: int) -> list[StatusRecord]:
        cursor = self.db.status.find({"_id": {"$gt": after_id or ""}}).sort("_id", ASCENDING).limit(limit)
        return [self._status_record(document) for document in cursor]

    def collection_sizes(self) -> dict[str, CollectionSize]:
        return {
            collection_id: CollectionSize(
                self.db.objects.count_documents({"collection_id": collection_id}),
                self.db.objects.count_documents({"collection_id": collection_id, "is_last": True}),
            )
            for collection_id in self.collection_ids()
        }

    def ping(self) -> None:
        self.client.admin.command("ping")

    def close(self) -> None:
        self.client.close()


class _CollectionLease:
    """Exclusive right to assign date_added in one collection, across processes and machines."""

    def __init__(self, db, collection_id: str, wait_seconds: float = 60):
        self.db, self.collection_id, self.wait_seconds = db, collection_id, wait_seconds
        self.owner = str(uuid.uuid4())

    def __enter__(self) -> "_CollectionLease":
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.001
        while True:
            now = time.time()
            try:
                taken = self.db.write_locks.find_one_and_update(
                    # Our own id too: a grant that reached the server but whose answer was lost is still ours.
                    {
                        "_id": self.collection_id,
                        "$or": [{"owner": None}, {"owner": self.owner}, {"expires": {"$lt": now}}],
                    },
                    {"$set": {"owner": self.owner, "expires": now + _LEASE_SECONDS}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                if taken and taken.get("owner") == self.owner:
                    return self
            except (DuplicateKeyError, OperationFailure):
                pass  # held by another writer (the upsert collided with the existing lease)
            if time.monotonic() > deadline:
                raise WriteLockTimeout(
                    f"collection {self.collection_id}: another writer held the write lease "
                    f"for over {self.wait_seconds:.0f} s"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def __exit__(self, *exc) -> None:
        self.db.write_locks.update_one(
            {"_id": self.collection_id, "owner": self.owner}, {"$set": {"owner": None}}
        )


def _selection_expression(query: ObjectQuery) -> dict:
    """The query's filters other than ids, as an aggregation expression (`_add_version_filter` and
    `_select` say the same as a query filter)."""
    conditions: list = []
    if query.types:
        conditions.append({"$in": ["$type", list(query.types)]})
    if query.spec_versions:
        conditions.append({"$in": ["$spec_version", list(query.spec_versions)]})
    else:
        conditions.append({"$ne": ["$is_latest_spec", False]})
    lower = query.lower_bound
    if lower is not None:
        conditions.append({"$gt": ["$date_added", lower]})
    if query.versions and VERSION_ALL not in query.versions:
        alternatives: list = []
        if VERSION_LAST in query.versions:
            alternatives.append("$is_last")
        if VERSION_FIRST in query.versions:
            alternatives.append("$is_first")
        timestamps = [value for value in query.versions if isinstance(value, int)]
        if timestamps:
            alternatives.append({"$in": ["$version", timestamps]})
        conditions.append({"$or": alternatives})
    return {"$and": conditions} if conditions else {"$literal": True}


def _add_version_filter(selector: dict, versions: tuple[str | int, ...]) -> None:
    if not versions or VERSION_ALL in versions:
        return
    alternatives: list[dict] = []
    if VERSION_LAST in versions:
        alternatives.append({"is_last": True})
    if VERSION_FIRST in versions:
        alternatives.append({"is_first": True})
    timestamps = [value for value in versions if isinstance(value, int)]
    if timestamps:
        alternatives.append({"version": {"$in": timestamps}})
    if len(alternatives) == 1:
        selector.update(alternatives[0])
    else:
        selector["$or"] = alternatives
