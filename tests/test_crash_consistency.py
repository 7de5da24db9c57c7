"""SIGKILL while CERTs publish: every acknowledged envelope survives with its status, and no envelope is
stored without the status that reports it (objects and status are one commit)."""

import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import requests

from taxii_federation.server.storage.base import VERSION_ALL, ObjectQuery
from taxii_federation.server.storage.sqlite import SqliteStorage
from taxii_federation.server.timestamps import parse_micros
from tests.conftest import COLLECTION_ID, HEADERS, PASSWORDS, load_bundle, write_node_files
from tests.processes import free_port, start_listening_server

OBJECTS = load_bundle("attack/ics-attack-18.1.json")


def _start(config, port: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "taxii_federation.clients.cli", "serve", "--config", str(config)]
    return start_listening_server([*command, "--port", str(port)], port, log, "node")


def _publisher(url: str, acknowledged: list, stop: threading.Event, seed: int) -> None:
    session = requests.Session()
    session.auth = ("cert", PASSWORDS["cert"])
    for round_number in range(10_000):
        if stop.is_set():
            return
        envelope = [
            {**obj, "id": f"{obj['type']}--{uuid.uuid4()}"}
            for obj in OBJECTS[(seed * 97 + round_number * 40) % 1700 :][:40]
            if obj["type"] != "marking-definition"
        ]
        try:
            response = session.post(url, data=json.dumps({"objects": envelope}), headers=HEADERS, timeout=30)
        except requests.RequestException:
            continue  # the node is down: keep trying until the test stops us
        if response.status_code == 202:
            acknowledged.append(response.json())


def _stored_versions(store: SqliteStorage) -> set[tuple[str, int]]:
    versions, after = set(), None
    for _ in range(10_000):
        page = store.query(
            ObjectQuery(COLLECTION_ID, limit=1000, versions=(VERSION_ALL,), after=after, with_bodies=False)
        )
        versions |= {(item.id, item.version) for item in page.items}
        if not page.more:
            return versions
        after = page.items[-1].date_added
    raise AssertionError("pages did not end")


def test_sigkill_while_publishing_loses_no_acknowledged_envelope_and_no_status(tmp_path):
    config = write_node_files(tmp_path / "node", "crash")
    port, log = free_port(), tmp_path / "node.log"
    url = f"http://127.0.0.1:{port}/alliance/collections/{COLLECTION_ID}/objects/"
    acknowledged: list[dict] = []
    stop = threading.Event()
    publishers = [
        threading.Thread(target=_publisher, args=(url, acknowledged, stop, seed)) for seed in range(3)
    ]
    process = _start(config, port, log)
    for thread in publishers:
        thread.start()
    try:
        for kill in range(4):
            time.sleep(1.0 + 0.37 * kill)
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            process = _start(config, port, log)
    finally:
        stop.set()
        for thread in publishers:
            thread.join(60)
        process.terminate()
        process.wait(30)
    assert len(acknowledged) > 10, "the publishers should have been acknowledged many envelopes"
    store = SqliteStorage(tmp_path / "node" / "node.db")
    try:
        stored = _stored_versions(store)
        statuses = {status.id: status for status in store.list_status(None, 100_000)}
    finally:
        store.close()
    reported = {(s["id"], s["version"]) for status in statuses.values() for s in status.successes}
    for status in acknowledged:
        assert status["id"] in statuses  # its status survived
        assert status["success_count"] == 40
    # Every stored version is reported by a status, and every reported one is stored.
    assert {(object_id, parse_micros(version)) for object_id, version in reported} == stored
