"""Every example in README.md runs as a new user pastes it: on the demo alliance that
`taxii-fed federation up` starts from the repository's own config (on free ports instead of 6100-6103),
from a folder laid out like a checkout with its `.venv`."""

import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.processes import free_port, wait_until_listening

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
VENV = Path(sys.executable).parent.parent
DEMO_PORTS = (6100, 6101, 6102, 6103)
# What an example must print besides exiting with 0, keyed by a text the example contains.
EXPECTED_OUTPUT = {
    "print(requests.post(": "complete",
    "taxii-fed discover": "alliance-indicators",
    "--data @poisonivy-envelope.json": '"status":"complete"',
    "-nameopt RFC2253": "subject=CN=mirror,OU=ua,O=taxii-federation demo alliance",
}


def _blocks(kind: str) -> list[str]:
    return [body for language, body in re.findall(r"```(\w+)\n(.*?)```", README, re.S) if language == kind]


@dataclass
class Demo:
    folder: Path
    ports: dict[int, int]
    log: Path

    def localize(self, text: str) -> str:
        for demo_port, port in self.ports.items():
            text = text.replace(f"127.0.0.1:{demo_port}", f"127.0.0.1:{port}")
        return text


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkout")
    for data in ("config", "collections"):
        shutil.copytree(REPO / data, folder / data)
    (folder / "tests").mkdir()
    (folder / "tests" / "data").symlink_to(REPO / "tests" / "data")
    (folder / ".venv").symlink_to(VENV)
    ports = {demo_port: free_port() for demo_port in DEMO_PORTS}
    running = Demo(folder, ports, folder / "federation-up.log")
    federation = folder / "config" / "federation.yaml"
    federation.write_text(running.localize(federation.read_text()))
    command = _blocks("sh")[0].rsplit("&&", 1)[1].split()  # the demo command after the install
    with open(running.log, "wb") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        for port in ports.values():
            wait_until_listening(port, process, "taxii-fed federation up", output=running.log.read_text)
        for _ in range(300):  # the nodes listen a moment before `federation up` prints its summary
            if "Ctrl-C stops everything" in running.log.read_text():
                break
            time.sleep(0.1)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)


def test_the_readme_test_command_is_exactly_what_ci_runs():
    ci_command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert [block.strip() for block in _blocks("sh") if "pytest" in block] == [ci_command]


def test_the_demo_command_starts_the_alliance(demo):
    install_and_run = _blocks("sh")[0].strip()
    assert install_and_run.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    output = demo.log.read_text()
    assert "federation up: hub 'hub'" in output
    for name, port in zip(("hub", "ua", "ro", "md"), demo.ports.values(), strict=True):
        assert f"{name}" in output and f"127.0.0.1:{port}/taxii2/" in output


def _run_follow(demo: Demo, block: str) -> str:
    """--follow polls until Ctrl-C: wait for its first line, press Ctrl-C, return everything it printed."""
    process = subprocess.Popen(
        ["bash", "-c", demo.localize(block)], cwd=demo.folder, stderr=subprocess.PIPE, text=True
    )
    first = process.stderr.readline()
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 0, first + rest
    assert " poll 1: " in first
    return first + rest


def test_every_shell_example_runs_as_written(demo):
    examples = [block for block in _blocks("sh") if "python3 -m venv" not in block]
    assert len(examples) >= 4
    for block in examples:
        if "--follow" in block:
            assert _run_follow(demo, block).splitlines()[-1].startswith("followed 1 polls: received ")
            continue
        result = subprocess.run(
            ["bash", "-e", "-c", demo.localize(block)],
            cwd=demo.folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
        for marker, expected in EXPECTED_OUTPUT.items():
            if marker in block:
                assert expected in result.stdout, f"{block}\n{result.stdout}"


def test_the_taxii2_client_example_lists_the_indicators_and_malware(demo):
    (example,) = _blocks("python")
    result = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", demo.localize(example)],
        cwd=demo.folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    collections = requests.get(
        demo.localize("http://127.0.0.1:6101/alliance/collections/"),
        auth=("soc-ua", "demo-soc-ua"),
        headers={"Accept": "application/taxii+json;version=2.1"},
        timeout=30,
    ).json()["collections"]
    shared = next(c["id"] for c in collections if c["alias"] == "alliance-indicators")
    manifest = requests.get(
        demo.localize(f"http://127.0.0.1:6101/alliance/collections/{shared}/manifest/"),
        params={"match[type]": "indicator,malware"},
        auth=("soc-ua", "demo-soc-ua"),
        headers={"Accept": "application/taxii+json;version=2.1"},
        timeout=30,
    ).json()
    expected = len(manifest["objects"])
    assert expected > 0 and result.stdout.splitlines()[-1] == f"{expected} objects"
