"""`taxii-fed pki init` and `taxii-fed federation up --tls`: the alliance over HTTPS, links by mTLS only."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from taxii_federation.clients.federation.pki import mirror_subject
from tests.conftest import (
    COLLECTION_ID,
    PASSWORDS,
    SHARED_INDICATORS,
    TAXII,
    load_bundle,
    write_federation_files,
)

CLI = [sys.executable, "-m", "taxii_federation.clients.cli"]


def _map_mirror_certificates(federation_path: Path) -> dict:
    """As the shipped demo configs do: each node knows its mirror by the subject `pki init` gives it."""
    members = yaml.safe_load(federation_path.read_text())["members"]
    for name, member in members.items():
        node_path = Path(member["node_config"])
        data = yaml.safe_load(node_path.read_text())
        data["users"]["mirror"]["certificates"] = [{"subject": mirror_subject(name)}]
        node_path.write_text(yaml.safe_dump(data))
    return members


def _objects(url: str, ca: Path) -> list[dict]:
    response = requests.get(
        f"{url}alliance/collections/{COLLECTION_ID}/objects/",
        auth=("soc", PASSWORDS["soc"]),
        headers={"Accept": TAXII},
        verify=str(ca),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json().get("objects", [])


def test_federation_up_tls_runs_the_alliance_over_https_with_mtls_links(tmp_path, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    path = write_federation_files(tmp_path, [SHARED_INDICATORS], poll_interval=0.2)
    members = _map_mirror_certificates(path)
    pki = tmp_path / "pki"
    made = subprocess.run(
        [*CLI, "pki", "init", "--config", str(path), "--pki", str(pki)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert {"ca.crt", "node-ua.crt", "mirror-md.key"} <= {file.name for file in pki.iterdir()}
    process = subprocess.Popen(
        [*CLI, "federation", "up", "--tls", "--pki", str(pki), "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    https = {name: member["url"].replace("http://", "https://") for name, member in members.items()}
    try:
        banner = [process.stdout.readline() for _ in range(6)]
        assert any(https["md"] in line for line in banner), banner
        objects = load_bundle("oasis-examples/apt1.json")
        response = requests.post(
            f"{https['ua']}alliance/collections/{COLLECTION_ID}/objects/",
            data=json.dumps({"objects": objects}),
            auth=("cert", PASSWORDS["cert"]),
            headers={"Accept": TAXII, "Content-Type": TAXII},
            verify=str(pki / "ca.crt"),
            timeout=60,
        )
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 30
        while len(_objects(https["md"], pki / "ca.crt")) < len(objects) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_objects(https["md"], pki / "ca.crt")) == len(objects)
        status = subprocess.run(
            [*CLI, "federation", "status", "--tls", "--pki", str(pki), "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert "OK   ua->hub:alliance-indicators" in status.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_federation_check_tls_names_a_node_that_does_not_map_its_mirrors_certificate(tmp_path):
    agreement = {**SHARED_INDICATORS, "members": ["ua"]}
    path = write_federation_files(tmp_path, [agreement], members=("hub", "ua"))
    pki = tmp_path / "pki"
    tls = ["--tls", "--pki", str(pki), "--config", str(path)]
    subprocess.run([*CLI, "pki", "init", "--config", str(path), "--pki", str(pki)], check=True, timeout=60)
    unmapped = subprocess.run([*CLI, "federation", "check", *tls], capture_output=True, text=True, timeout=60)
    assert unmapped.returncode == 1
    assert f"FAIL ua: the client certificate {pki / 'mirror-ua.crt'}" in unmapped.stdout
    assert "is not mapped to user 'mirror'" in unmapped.stdout
    refused = subprocess.run([*CLI, "federation", "up", *tls], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "nothing was started" in refused.stderr
    _map_mirror_certificates(path)
    mapped = subprocess.run([*CLI, "federation", "check", *tls], capture_output=True, text=True, timeout=60)
    assert mapped.returncode == 0, mapped.stdout
    assert f"OK   ua: client certificate {pki / 'mirror-ua.crt'} is user 'mirror'" in mapped.stdout
