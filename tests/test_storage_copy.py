"""`taxii-fed storage copy` moves a node between backends exactly, and can be re-run safely."""

import subprocess
import sys
import uuid

from taxii_federation.server.storage import open_storage
from taxii_federation.server.storage.base import VERSION_ALL, ObjectQuery, Provenance, StatusRecord
from taxii_federation.server.validation import validate_object
from tests.conftest import load_bundle

COLLECTION = "0d4a3c2b-1e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _everything(url: str) -> tuple[list, list]:
    store = open_storage(url)
    try:
        versions, after = [], None
        for collection_id in store.collection_ids():
            while True:
                page = store.query(
                    ObjectQuery(collection_id, limit=1000, versions=(VERSION_ALL,), after=after)
                )
                versions.extend((collection_id, item) for item in page.items)
                if not page.more:
                    break
                after = page.items[-1].date_added
            after = None
        statuses = store.list_status(None, 1000)
    finally:
        store.close()
    return versions, statuses


def _fill(url: str) -> None:
    """ATT&CK ICS 17.1 then 18.1 (versions, revocations, same-version-other-content), two provenances."""
    store = open_storage(url)
    for release, provenance in (
        ("attack/ics-attack-17.1.json", Provenance("ua")),
        ("attack/ics-attack-18.1.json", Provenance("ro", "ro->hub:alliance-indicators")),
    ):
        objects = [validate_object(o, n, True) for n, o in enumerate(load_bundle(release))]
        store.add_objects(COLLECTION, objects, provenance)
    store.close()


def _copy(source: str, destination: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taxii_federation.clients.cli",
            "storage",
            "copy",
            "--from",
            source,
            "--to",
            destination,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_attack_round_trips_sqlite_to_mongodb_and_back_exactly(tmp_path, mongodb_server):
    sqlite_url = f"sqlite:{tmp_path / 'source.db'}"
    _fill(sqlite_url)
    source_store = open_storage(sqlite_url)
    source_store.save_status(
        StatusRecord(
            str(uuid.uuid4()),
            "alliance",
            COLLECTION,
            1_700_000_000_000_000,
            1,
            successes=[{"id": "x", "version": "v", "message": "stored"}],
        ),
        10**18,
    )
    source_store.close()
    mongo_url = mongodb_server.url(f"copy_{uuid.uuid4().hex[:8]}")
    back_url = f"sqlite:{tmp_path / 'back.db'}"
    first = _copy(sqlite_url, mongo_url)
    assert "2141 versions read, 2141 written" in first and "1 status resources" in first
    assert "0 written" in _copy(sqlite_url, mongo_url)  # re-running copies nothing twice
    _copy(mongo_url, back_url)
    original, original_statuses = _everything(sqlite_url)
    assert len(original) == 2141  # distinct (id, modified) of ICS 17.1 + 18.1
    for url in (mongo_url, back_url):
        copied, statuses = _everything(url)
        assert copied == original, url  # every version, date_added, body and provenance, in order
        assert statuses == original_statuses
