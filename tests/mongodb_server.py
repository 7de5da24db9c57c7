"""A MongoDB wire-protocol server for the tests: secantusdb (PyPI), started on an ephemeral port and
spoken to only through pymongo. The MongoDB backend uses nothing specific to it."""

import sys
from pathlib import Path

from tests.processes import start_listening_server


class MongoTestServer:
    def __init__(self, folder: Path, port: int):
        self.port, self.folder = port, folder
        self.process = start_listening_server(
            [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(folder),
                "--log-level",
                "WARNING",
            ],
            port,
            folder.parent / f"{folder.name}.log",
            "secantusdb",
        )

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
