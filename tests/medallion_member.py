"""A stock medallion 3.0 (the OASIS reference server, a project dependency) as an alliance member, on
127.0.0.1 with its memory backend, or its MongoDB backend given a MongoDB URI; see ../shared/PEERS.md for its
quirks."""

import json
import subprocess
import sys
from pathlib import Path

import pymongo

from tests.processes import start_listening_server

MEDALLION_MAIN = "from medallion.scripts.run import main; main()"


class MedallionMember:
    def __init__(
        self,
        folder: Path,
        port: int,
        collection_id: str,
        alias: str,
        users: dict[str, str],
        python: str = sys.executable,
        max_page_size: int = 100,
        mongodb_uri: str | None = None,
    ):
        """`python` may be another environment's interpreter (the benchmarks run medallion in a venv); with
        `mongodb_uri`, medallion keeps its data in that (empty) MongoDB server instead of in memory."""
        self.folder, self.port, self.users, self.python = folder, port, users, python
        self.url = f"http://127.0.0.1:{port}/"
        folder.mkdir(parents=True, exist_ok=True)
        collection = {
            "id": collection_id,
            "title": f"medallion {alias}",
            "alias": alias,
            "can_read": True,
            "can_write": True,
            "media_types": ["application/stix+json;version=2.1"],
            "objects": [],
            "manifest": [],
        }
        data = {
            "/discovery": {
                "title": "stock medallion member",
                "default": f"{self.url}alliance/",
                "api_roots": [f"{self.url}alliance/"],
            },
            "alliance": {
                "information": {
                    "title": "medallion alliance root",
                    "versions": ["application/taxii+json;version=2.1"],
                    "max_content_length": 10 * 1024 * 1024,
                },
                "status": [],
                "collections": [collection],
            },
        }
        if mongodb_uri:
            _seed_mongodb(mongodb_uri, data, self.url)
            backend = {
                "module": "medallion.backends.mongodb_backend",
                "module_class": "MongoBackend",
                "uri": mongodb_uri,
            }
        else:
            (folder / "data.json").write_text(json.dumps(data))
            backend = {
                "module": "medallion.backends.memory_backend",
                "module_class": "MemoryBackend",
                "filename": str(folder / "data.json"),
            }
        config = {
            "backend": backend,
            "users": users,
            "taxii": {"max_page_size": max_page_size},
        }
        (folder / "config.json").write_text(json.dumps(config))
        self.process: subprocess.Popen | None = None

    def start(self) -> "MedallionMember":
        # medallion logs a line per request.
        self.process = start_listening_server(
            [
                self.python,
                "-c",
                MEDALLION_MAIN,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                str(self.folder / "config.json"),
            ],
            self.port,
            self.folder / "medallion.log",
            "medallion",
            30,
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _seed_mongodb(uri: str, data: dict, url: str) -> None:
    """Write the discovery, API-root and collection documents in the layout medallion 3.0's MongoBackend
    reads: a `discovery_database` naming the API roots, and one database per API root."""
    client = pymongo.MongoClient(uri)
    try:
        discovery = client["discovery_database"]
        roots = [name for name in data if name != "/discovery"]
        discovery["discovery_information"].insert_one({**data["/discovery"], "api_roots": roots})
        for name in roots:
            discovery["api_root_info"].insert_one(
                {"_url": f"{url}{name}/", "_name": name, **data[name]["information"]}
            )
            collections = [
                {key: value for key, value in collection.items() if key not in ("objects", "manifest")}
                for collection in data[name]["collections"]
            ]
            client[name]["collections"].insert_many(collections)
    finally:
        client.close()
