"""The storage interface every backend implements, and the records that cross it.

Methods map to TAXII resources: `add_envelope` (POST objects: the objects and their status resource in one
commit), `query` (objects, object, manifest and versions GETs), `delete_object` (object DELETE),
`get_status` (status resource). All timestamps are integer microseconds since the epoch (server.timestamps).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from taxii_federation.server.timestamps import format_micros

VERSION_ALL, VERSION_FIRST, VERSION_LAST = "all", "first", "last"

# The records made once per object of every envelope and every page (NewObject, PlannedVersion, WriteOutcome,
# StoredVersion) are named tuples: as immutable as frozen dataclasses, made in a quarter of their time.


class NewObject(NamedTuple):
    """A validated STIX object about to be stored; `version` is None when it has no modified/created."""

    id: str
    type: str
    spec_version: str
    version: int | None
    body: str
    # The object's own modified (or created) text: manifests, version lists and statuses show it as it
    # was written (TAXII 2.1 §5.6, §5.8), not re-rendered from `version`.
    version_text: str | None = None


@dataclass(frozen=True)
class Provenance:
    """Where a stored version came from: the node that first held it and the link that brought it."""

    origin_node: str
    link: str | None = None


class StoredVersion(NamedTuple):
    id: str
    type: str
    spec_version: str
    version: int
    date_added: int
    body: str
    origin_node: str | None = None
    link: str | None = None
    version_text: str | None = None  # as NewObject.version_text; None for objects without modified/created

    @property
    def version_shown(self) -> str:
        return self.version_text or format_micros(self.version)


class WriteOutcome(NamedTuple):
    id: str
    version: int
    stored: bool  # False: this exact version was already present, nothing was written
    version_text: str | None = None

    @property
    def version_shown(self) -> str:
        return self.version_text or format_micros(self.version)


@dataclass(frozen=True)
class ObjectQuery:
    """One page request. `versions` holds 'all', 'first', 'last' and/or version timestamps (TAXII §3.5)."""

    collection_id: str
    limit: int
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str | int, ...] = (VERSION_LAST,)
    spec_versions: tuple[str, ...] = ()
    added_after: int | None = None
    # The date_added of the last item of the previous page (the `next` cursor); date_added is unique
    # within a collection, so this alone positions the keyset.
    after: int | None = None
    # Manifests and version lists never show bodies: without them a page reads a fraction of the bytes
    # (StoredVersion.body is then "").
    with_bodies: bool = True
    # A page is cut by size as well as by `limit` (`more` and `next` continue it), so one request never
    # holds more than this many body bytes, whatever the objects weigh; a larger object comes alone.
    max_bytes: int | None = None

    @property
    def lower_bound(self) -> int | None:
        """Items come after both added_after and the `next` cursor."""
        return max((bound for bound in (self.added_after, self.after) if bound is not None), default=None)


@dataclass(frozen=True)
class Page:
    items: list[StoredVersion]
    more: bool


def fill_page(versions: Iterable[StoredVersion], limit: int, max_bytes: int | None) -> Page:
    """Take versions in date_added order until the page is full by count or by size; `versions` is read
    lazily, so a backend that streams rows holds no more than one page in memory."""
    items: list[StoredVersion] = []
    size = 0
    for version in versions:
        size += len(version.body)
        if len(items) == limit or (items and max_bytes is not None and size > max_bytes):
            return Page(items, more=True)
        items.append(version)
    return Page(items, more=False)


@dataclass
class StatusRecord:
    """A status resource (TAXII 2.1 §4.3.1); details are (id, version, message) triples."""

    id: str
    api_root: str
    collection_id: str
    request_timestamp: int
    total_count: int
    successes: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    pendings: list[dict] = field(default_factory=list)
    # The user who posted the envelope: only they (and node admins) may read it. None on records from
    # before owners were kept.
    owner: str | None = None

    @property
    def status(self) -> str:
        return "pending" if self.pendings else "complete"


# Builds an envelope's status from its write outcomes, the (id, version) pairs still pending (a backend
# without transactions writes the status before the objects) and those it lost (it failed part way).
StatusBuilder = Callable[[list[WriteOutcome], set[tuple[str, int]], set[tuple[str, int]]], StatusRecord]


@dataclass(frozen=True)
class CollectionSize:
    versions: int  # every stored version
    objects: int  # distinct objects (their latest versions)


class PlannedVersion(NamedTuple):
    """A version to insert, with its date_added and whether it alone is both first and last of its id."""

    object: NewObject
    version: int
    date_added: int
    only_version: bool


@dataclass
class WritePlan:
    versions: list[PlannedVersion]
    outcomes: list[WriteOutcome]
    ids_to_reflag: set[str]  # ids that now have several versions: first/last must be recomputed

    @property
    def last_date_added(self) -> int | None:
        return self.versions[-1].date_added if self.versions else None


# A stored version of an object: its version key and its STIX version. The same (id, modified) may be held
# once per STIX version (a feed's 2.0 and 2.1 copies of one release); TAXII 2.1 §3.4.1 then serves the
# newest STIX version unless `match[spec_version]` asks for another.
VersionKey = tuple[int, str]


def plan_write(
    objects: list[NewObject], existing: dict[str, set[VersionKey]], first_date_added: int
) -> WritePlan:
    """Decide, for every backend alike, which versions are new and which date_added each gets.

    `existing` maps each id to its stored (version, spec_version) pairs. Consecutive date_added values
    from `first_date_added` keep every object of a POST distinct and in envelope order."""
    plan = WritePlan([], [], set())
    date_added = first_date_added
    for obj in objects:
        stored = existing.setdefault(obj.id, set())
        # An object without modified/created has a single version (TAXII 2.1 §3.4.3).
        version = obj.version if obj.version is not None else next(iter(stored), (date_added,))[0]
        key = (version, obj.spec_version)
        if key in stored:
            plan.outcomes.append(WriteOutcome(obj.id, version, stored=False, version_text=obj.version_text))
            continue
        if stored:
            plan.ids_to_reflag.add(obj.id)
        plan.versions.append(PlannedVersion(obj, version, date_added, only_version=not stored))
        plan.outcomes.append(WriteOutcome(obj.id, version, stored=True, version_text=obj.version_text))
        stored.add(key)
        date_added += 1
    return plan


class Storage(ABC):
    @abstractmethod
    def add_envelope(
        self,
        collection_id: str,
        objects: list[NewObject],
        provenance: Provenance,
        build_status: StatusBuilder | None,
        retention_micros: int,
    ) -> tuple[list[WriteOutcome], StatusRecord | None]:
        """Store the versions not yet present, assigning each a date_added greater than every date_added the
        collection has ever had, and the status `build_status` makes of the outcomes, in one transaction:
        after a crash an envelope is there with its status or not at all. Drops status resources older
        than the retention period. Returns one outcome per distinct (id, version), and the status."""

    def add_objects(
        self, collection_id: str, objects: list[NewObject], provenance: Provenance
    ) -> list[WriteOutcome]:
        """`add_envelope` without a status (imports and tests)."""
        return self.add_envelope(collection_id, objects, provenance, None, 0)[0]

    @abstractmethod
    def query(self, query: ObjectQuery) -> Page:
        """One page in date_added order, after `query.after` and `query.added_after`."""

    @abstractmethod
    def delete_object(
        self,
        collection_id: str,
        object_id: str,
        versions: tuple[str | int, ...],
        spec_versions: tuple[str, ...],
    ) -> int:
        """Delete the matching versions of one object; returns how many were deleted."""

    @abstractmethod
    def save_status(self, status: StatusRecord, retention_micros: int) -> None:
        """Keep a status resource as it is (copies and imports), dropping those older than the retention
        period."""

    @abstractmethod
    def get_status(self, status_id: str) -> StatusRecord | None: ...

    @abstractmethod
    def collection_ids(self) -> list[str]:
        """Every collection that holds at least one object."""

    @abstractmethod
    def import_versions(self, collection_id: str, versions: list[StoredVersion]) -> int:
        """Store versions exactly as another store held them (date_added and provenance included), skipping
        those present; returns how many were new. For moving a node between backends."""

    @abstractmethod
    def list_status(self, after_id: str | None, limit: int) -> list[StatusRecord]:
        """Status resources in id order after `after_id`, for copying."""

    @abstractmethod
    def collection_sizes(self) -> dict[str, CollectionSize]:
        """Per collection that holds objects, how much it holds (for metrics: counted on index ranges)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise when the store cannot be read (for /readyz); return quickly either way."""

    @abstractmethod
    def close(self) -> None: ...
