"""The backend contract (server.storage.base.Storage), run against every backend."""

import json
import multiprocessing
import uuid

import pytest

from taxii_federation.server.storage import open_storage
from taxii_federation.server.storage.base import (
    VERSION_ALL,
    VERSION_FIRST,
    NewObject,
    ObjectQuery,
    Provenance,
    StatusRecord,
)
from taxii_federation.server.timestamps import parse_micros

COLLECTION = "c0ffee00-0000-4000-8000-000000000001"
HOME = Provenance("ua")


def _object(object_id: str, modified: str | None) -> NewObject:
    body = {"type": "indicator", "id": object_id, "spec_version": "2.1"}
    if modified:
        body["modified"] = modified
    return NewObject(
        object_id, "indicator", "2.1", parse_micros(modified) if modified else None, json.dumps(body)
    )


def _new_id() -> str:
    return f"indicator--{uuid.uuid4()}"


@pytest.fixture
def storage(storage_url):
    backend = open_storage(storage_url)
    yield backend
    backend.close()


def _all(storage, **options) -> list:
    items, after = [], None
    for _ in range(10_000):
        page = storage.query(ObjectQuery(COLLECTION, limit=7, after=after, **options))
        items.extend(page.items)
        if not page.more:
            return items
        after = page.items[-1].date_added
    raise AssertionError("pages did not end")


def test_date_added_strictly_increases_across_writes(storage):
    for _ in range(5):
        storage.add_objects(COLLECTION, [_object(_new_id(), "2024-01-01T00:00:00Z") for _ in range(20)], HOME)
    dates = [item.date_added for item in _all(storage)]
    assert len(dates) == 100 and dates == sorted(set(dates))


def test_a_version_is_stored_once(storage):
    obj = _object(_new_id(), "2024-01-01T00:00:00.000Z")
    same_instant = _object(obj.id, "2024-01-01T00:00:00Z")
    assert [o.stored for o in storage.add_objects(COLLECTION, [obj, obj], HOME)] == [True, False]
    assert [o.stored for o in storage.add_objects(COLLECTION, [same_instant], HOME)] == [False]
    assert len(_all(storage, versions=(VERSION_ALL,))) == 1


def test_an_object_without_modified_or_created_has_one_version(storage):
    sco = _object("ipv4-addr--" + str(uuid.uuid4()), None)
    storage.add_objects(COLLECTION, [sco], HOME)
    assert [o.stored for o in storage.add_objects(COLLECTION, [sco], HOME)] == [False]


def test_last_and_first_follow_versions_posted_out_of_order(storage):
    object_id = _new_id()
    storage.add_objects(COLLECTION, [_object(object_id, "2024-02-01T00:00:00Z")], HOME)
    storage.add_objects(
        COLLECTION,
        [_object(object_id, "2024-03-01T00:00:00Z"), _object(object_id, "2024-01-01T00:00:00Z")],
        HOME,
    )
    [last] = _all(storage)
    [first] = _all(storage, versions=(VERSION_FIRST,))
    assert last.version == parse_micros("2024-03-01T00:00:00Z")
    assert first.version == parse_micros("2024-01-01T00:00:00Z")
    storage.delete_object(COLLECTION, object_id, (parse_micros("2024-03-01T00:00:00Z"),), ())
    [last] = _all(storage)
    assert last.version == parse_micros("2024-02-01T00:00:00Z")


def test_provenance_is_kept_per_version(storage):
    object_id = _new_id()
    storage.add_objects(COLLECTION, [_object(object_id, "2024-01-01T00:00:00Z")], Provenance("ro", "ro->hub"))
    [item] = _all(storage)
    assert (item.origin_node, item.link) == ("ro", "ro->hub")


def test_status_round_trips(storage):
    record = StatusRecord(
        str(uuid.uuid4()),
        "alliance",
        COLLECTION,
        1_700_000_000_000_000,
        2,
        successes=[{"id": "a", "version": "v", "message": "stored"}],
        failures=[{"id": "b", "version": "", "message": "bad"}],
    )
    storage.save_status(record, retention_micros=10**18)
    assert storage.get_status(record.id) == record
    assert storage.get_status(str(uuid.uuid4())) is None


def _write_batches(url: str, worker: int, batches: int) -> None:
    backend = open_storage(url)
    for batch in range(batches):
        objects = [
            _object(f"indicator--{uuid.UUID(int=worker << 64 | batch << 16 | n)}", "2024-01-01T00:00:00Z")
            for n in range(25)
        ]
        backend.add_objects(COLLECTION, objects, HOME)
    backend.close()


def test_several_processes_writing_one_store_keep_date_added_unique_and_ordered(storage_url):
    url = storage_url
    open_storage(url).close()  # creates the schema or indexes once, before the writers race
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_batches, args=(url, worker, 12)) for worker in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    storage = open_storage(url)
    items = _all(storage)
    storage.close()
    dates = [item.date_added for item in items]
    assert len(items) == 3 * 12 * 25
    assert dates == sorted(set(dates))
