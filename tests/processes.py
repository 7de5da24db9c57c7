"""Starting servers for the tests and the benchmarks: a free port on 127.0.0.1, and waiting until a process
listens on it."""

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(
    port: int,
    process: subprocess.Popen,
    name: str,
    seconds: float = 60,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Return once `process` accepts connections on `port`; fail with its output if it exits or is slow."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {output()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start listening on port {port} within {seconds:g} s")


def start_listening_server(
    command: list[str], port: int, log_path: Path, name: str, seconds: float = 60, env: dict | None = None
) -> subprocess.Popen:
    """Start a server whose output goes to `log_path` (a file: an unread pipe would fill and stall it) and
    return once it listens on `port`."""
    with open(log_path, "ab") as log:  # appended: a restarted server keeps its predecessor's last words
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_until_listening(port, process, name, seconds, log_path.read_text)
    return process


CLI = [sys.executable, "-m", "taxii_federation.clients.cli"]


def taxii_fed(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `taxii-fed ARGS` as an operator types it, with its output captured as text."""
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout)
