"""A MongoDB wire-protocol server for the tests: secantusdb (PyPI), started on an ephemeral port and
spoken to only through pymongo. The MongoDB backend uses nothing specific to it."""

import subprocess
import sys
from pathlib import Path

from tests.processes import wait_until_listening


class MongoTestServer:
    def __init__(self, folder: Path, port: int):
        self.port, self.folder = port, folder
        log_path = folder.parent / f"{folder.name}.log"  # a file: an unread pipe would fill and stall it
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
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
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_listening(port, self.process, "secantusdb", 60, log_path.read_text)

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
