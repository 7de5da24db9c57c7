"""`taxii-fed storage import-medallion`: a CERT moving off medallion keeps its URLs, its objects and the
order its SOC pollers walk them in."""

import datetime
import json
import subprocess
import sys
from pathlib import Path

import yaml
from medallion.backends.memory_backend import MemoryBackend

from taxii_federation.server.config import load_node_config
from taxii_federation.server.serve import start_node
from taxii_federation.server.storage import open_storage
from taxii_federation.server.storage.base import ObjectQuery
from taxii_federation.server.storage.medallion_import import import_medallion
from tests.conftest import COLLECTION_ID, PASSWORDS, free_port, load_bundle, walk, write_node_files
from tests.medallion_member import MedallionMember

REPO = Path(__file__).resolve().parents[1]


def _medallion_data_file(member: MedallionMember) -> list[dict]:
    """Fill the member's data file through medallion's own backend: three POSTs, the second adding newer
    versions; returns everything posted."""
    backend = MemoryBackend(filename=str(member.folder / "data.json"))
    posts = [
        load_bundle("oasis-examples/apt1.json"),
        load_bundle("attack/ics-attack-17.1.json")[:150],
        load_bundle("attack/ics-attack-18.1.json")[:150],
    ]
    start = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
    for n, objects in enumerate(posts):
        backend.add_objects(
            "alliance", COLLECTION_ID, {"objects": objects}, start + datetime.timedelta(minutes=n)
        )
    backend.save_data_to_file(str(member.folder / "data.json"))
    return [obj for objects in posts for obj in objects]


def test_an_imported_medallion_collection_reads_the_same_at_our_node(tmp_path):
    medallion = MedallionMember(
        tmp_path / "medallion", free_port(), COLLECTION_ID, "alliance-indicators", {"soc": PASSWORDS["soc"]}
    )
    _medallion_data_file(medallion)
    medallion.start()
    try:
        node_folder = tmp_path / "node"
        config_path = write_node_files(node_folder)
        store = f"sqlite:{node_folder / 'imported.db'}"
        catalogue = (
            node_folder / "catalogue.yaml"
        )  # replaces the test catalogue: same API root and collection
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "taxii_federation.clients.cli",
                "storage",
                "import-medallion",
                str(medallion.folder / "data.json"),
                "--to",
                store,
                "--catalogue",
                str(catalogue),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        config = yaml.safe_load(config_path.read_text())
        config["storage"] = store
        config["users"] = {"soc": config["users"]["soc"]}  # a SOC reading the imported collection
        config_path.write_text(yaml.safe_dump(config))
        node = start_node(load_node_config(config_path))
        try:
            theirs = walk(medallion.url, **{"match[version]": "all"})
            ours = walk(node.url, **{"match[version]": "all"})
            assert [(o["id"], o.get("modified")) for o in ours] == [
                (o["id"], o.get("modified")) for o in theirs
            ]
            assert ours == theirs  # the same objects, byte for byte as JSON values
            last_seen = max(
                r["date_added"] for r in walk(medallion.url, "manifest/", **{"match[version]": "all"})
            )
            assert walk(node.url, added_after=last_seen) == []  # a poller's cursor carries over
        finally:
            node.stop()
    finally:
        medallion.stop()


def test_import_keeps_the_stix_version_of_each_object(tmp_path):
    """A medallion collection fed STIX 2.0 (objects without spec_version) stays STIX 2.0 at our node: the
    written catalogue lets the collection store 2.0, and match[spec_version]=2.0 finds the objects."""
    folder = tmp_path / "medallion"
    folder.mkdir()
    backend = MemoryBackend(filename=None)
    backend.data = {"alliance": {"information": {"title": "Alliance"}, "status": [], "collections": []}}
    legacy = json.loads((REPO / "tests/data/attack-stix20/ics-attack.json").read_text())["objects"][:20]
    collection = {
        "id": COLLECTION_ID,
        "title": "legacy",
        "can_read": True,
        "can_write": True,
        "media_types": ["application/stix+json;version=2.0"],
        "objects": [],
    }
    backend.data["alliance"]["collections"].append({**collection, "manifest": []})
    backend.add_objects("alliance", COLLECTION_ID, {"objects": legacy}, datetime.datetime.now(datetime.UTC))
    backend.save_data_to_file(str(folder / "data.json"))
    destination = open_storage(f"sqlite:{tmp_path / 'imported.db'}")
    try:
        report = import_medallion(folder / "data.json", destination)
        page = destination.query(ObjectQuery(COLLECTION_ID, limit=100, spec_versions=("2.0",)))
    finally:
        destination.close()
    assert {item.id for item in page.items} == {o["id"] for o in legacy}
    (entry,) = report.catalogue["api_roots"]["alliance"]["collections"]
    assert entry["stix_versions"] == ["2.1", "2.0"]
