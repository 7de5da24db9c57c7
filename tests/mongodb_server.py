"""A MongoDB wire-protocol server for the tests: secantusdb (PyPI), started on an ephemeral port and
spoken to only through pymongo. The MongoDB backend uses nothing specific to it."""

import socket
import subprocess
import sys
import time
from pathlib import Path


class MongoTestServer:
    def __init__(self, folder: Path, port: int):
        self.port, self.folder = port, folder
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"secantusdb exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("secantusdb did not start listening within 60 s")

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
