"""`taxii-fed serve` as a real process on the production server, with and without TLS; `users hash`."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from taxii2client.v21 import Server

from taxii_federation.clients.federation.pki import LocalCA
from taxii_federation.server.auth import verify_password
from tests.conftest import PASSWORDS, free_port, load_bundle, post_envelope, write_node_files
from tests.processes import wait_until_listening

CLI = [sys.executable, "-m", "taxii_federation.clients.cli"]


def _node_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A node certificate and the CA that signed it (the CA file is what clients verify with)."""
    ca = LocalCA.create(folder / "pki")
    issued = ca.issue_server(folder, "node", ["127.0.0.1"])
    return ca.files.cert, issued.cert, issued.key


def _wait_until_listening(port: int, process: subprocess.Popen) -> None:
    wait_until_listening(port, process, "taxii-fed serve", 30, lambda: process.stderr.read().decode())


@pytest.fixture
def serve(tmp_path):
    processes = []

    def start(config_path: Path) -> int:
        port = free_port()
        process = subprocess.Popen(
            [*CLI, "serve", "--config", str(config_path), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        _wait_until_listening(port, process)
        return port

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def test_serve_runs_a_node_that_taxii2_client_can_use(tmp_path, serve):
    port = serve(write_node_files(tmp_path))
    response = requests.get(f"http://127.0.0.1:{port}/taxii2/", auth=("soc", PASSWORDS["soc"]), timeout=10)
    assert response.status_code == 200
    assert response.headers["Server"] == "taxii-federation/test"  # the node's own server, not Werkzeug's


def test_serve_with_tls_from_the_config(tmp_path, serve, monkeypatch):
    # requests lets these variables override a Session's own `verify` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    config_path = write_node_files(tmp_path)
    ca, cert, key = _node_certificate(tmp_path)
    data = yaml.safe_load(config_path.read_text())
    data["tls"] = {"cert": str(cert), "key": key.name}  # relative paths are relative to the config file
    config_path.write_text(yaml.safe_dump(data))
    port = serve(config_path)
    server = Server(
        f"https://127.0.0.1:{port}/taxii2/", user="soc", password=PASSWORDS["soc"], verify=str(ca)
    )
    assert [root.title for root in server.api_roots] == ["Alliance"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{port}/taxii2/", timeout=10)  # an unknown CA is refused


def test_serve_with_a_broken_config_exits_with_the_problem(tmp_path):
    config_path = write_node_files(tmp_path)
    config_path.write_text(config_path.read_text().replace("storage:", "storagee:"))
    result = subprocess.run([*CLI, "serve", "--config", str(config_path)], capture_output=True, timeout=60)
    assert result.returncode != 0
    assert b"storagee: unknown key" in result.stderr


def test_users_hash_prints_a_hash_that_verifies():
    result = subprocess.run(
        [*CLI, "users", "hash", "--password-stdin"], input=b"s3cret-pass\n", capture_output=True, timeout=60
    )
    assert result.returncode == 0
    password_hash = result.stdout.decode().strip()
    assert password_hash.startswith("scrypt$")
    assert verify_password("s3cret-pass", password_hash)
    assert not verify_password("other", password_hash)


def _children(pid: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_node_leaves_no_validation_workers_behind(tmp_path, stop_signal):
    config_path = write_node_files(tmp_path, validation_workers=2)
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--config", str(config_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_until_listening(port, process)
    objects = load_bundle("attack/ics-attack-18.1.json")  # large enough for the worker pool
    assert post_envelope(f"http://127.0.0.1:{port}/", objects)["success_count"] == len(objects)
    workers = _children(process.pid)
    assert len(workers) >= 2
    process.send_signal(stop_signal)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
