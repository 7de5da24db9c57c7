"""`taxii-fed storage copy`: move a node's data between backends (SQLite <-> MongoDB) exactly: every version
with its date_added and provenance, in date_added order, and every status resource. Safe to re-run: what the
destination already holds is skipped, so an interrupted copy is finished by running it again.

Copy into an empty store, or one an earlier run of the same copy filled; the node should not take writes
while it is being copied.
"""

from collections.abc import Callable
from dataclasses import dataclass

from taxii_federation.server.storage.base import VERSION_ALL, ObjectQuery, Storage

BATCH = 1000


@dataclass
class CopyReport:
    collections: int = 0
    versions_read: int = 0
    versions_written: int = 0
    statuses: int = 0


def copy_storage(
    source: Storage, destination: Storage, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    report = CopyReport()
    for collection_id in source.collection_ids():
        report.collections += 1
        after = None
        while True:
            page = source.query(ObjectQuery(collection_id, limit=BATCH, versions=(VERSION_ALL,), after=after))
            if not page.items:
                break
            report.versions_written += destination.import_versions(collection_id, page.items)
            report.versions_read += len(page.items)
            if progress:
                progress(collection_id, len(page.items))
            if not page.more:
                break
            after = page.items[-1].date_added
    after_id = None
    while statuses := source.list_status(after_id, BATCH):
        for status in statuses:
            destination.save_status(status, retention_micros=10**18)  # keep them all; the node prunes later
        report.statuses += len(statuses)
        after_id = statuses[-1].id
    return report
