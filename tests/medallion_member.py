"""A stock medallion 3.0 (the OASIS reference server, a project dependency) as an alliance member, on
127.0.0.1 with its memory backend; see ../shared/PEERS.md for its quirks."""

import json
import subprocess
import sys
from pathlib import Path

from tests.processes import wait_until_listening

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
    ):
        """`python` may be another environment's interpreter (the benchmarks run medallion in a venv)."""
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
        (folder / "data.json").write_text(json.dumps(data))
        config = {
            "backend": {
                "module": "medallion.backends.memory_backend",
                "module_class": "MemoryBackend",
                "filename": str(folder / "data.json"),
            },
            "users": users,
            "taxii": {"max_page_size": max_page_size},
        }
        (folder / "config.json").write_text(json.dumps(config))
        self.process: subprocess.Popen | None = None

    def start(self) -> "MedallionMember":
        # medallion logs a line per request: to a file, since an unread pipe would fill and stall it.
        self.log_path = self.folder / "medallion.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
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
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_listening(self.port, self.process, "medallion", 30, self.log_path.read_text)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
