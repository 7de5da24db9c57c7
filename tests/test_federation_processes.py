"""The federation as an operator runs it: `taxii-fed federation up`, `federation status`, `mirror`, with the
mirror as a real process that is SIGKILLed while objects flow."""

import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from taxii_federation.clients.federation.alliance import start_alliance
from taxii_federation.clients.federation.config import load_federation_config
from tests.conftest import (
    SHARED_INDICATORS,
    load_bundle,
    post_envelope,
    walk,
    write_federation_files,
)

CLI = [sys.executable, "-m", "taxii_federation.clients.cli"]


def _post(base_url: str, objects: list[dict]) -> None:
    assert post_envelope(base_url, objects)["failure_count"] == 0


def _manifest_keys(base_url: str) -> list[tuple[str, str]]:
    records = walk(base_url, "manifest/", limit=1000, **{"match[version]": "all"})
    return [(record["id"], record["version"]) for record in records]


def test_federation_up_status_and_mirror_once_from_the_command_line(tmp_path):
    path = write_federation_files(tmp_path, [SHARED_INDICATORS], poll_interval=0.2)
    members = yaml.safe_load(path.read_text())["members"]
    process = subprocess.Popen(
        [*CLI, "federation", "up", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = [process.stdout.readline() for _ in range(6)]
        assert banner[0].startswith("federation up: hub 'hub', 6 links")
        assert any(members["md"]["url"] in line for line in banner)
        objects = load_bundle("oasis-examples/apt1.json")
        _post(members["ua"]["url"], objects)
        deadline = time.monotonic() + 30
        while len(_manifest_keys(members["md"]["url"])) < len(objects) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_manifest_keys(members["md"]["url"])) == len(objects)
        status = subprocess.run(
            [*CLI, "federation", "status", "--config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stderr
        assert "OK   ua->hub:alliance-indicators" in status.stdout
        assert "lag 0 objects, 0.0 s" in status.stdout
        once = subprocess.run(
            [*CLI, "mirror", "--config", str(path), "--once"], capture_output=True, text=True, timeout=60
        )
        assert once.returncode == 0, once.stdout + once.stderr
        assert "OK   ua->hub:alliance-indicators: seen 0, stored 0" in once.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_federation_status_reports_an_unreachable_member_and_exits_non_zero(tmp_path):
    path = write_federation_files(tmp_path, [SHARED_INDICATORS])
    result = subprocess.run(
        [*CLI, "federation", "status", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1  # usable from monitoring: any failing link fails the command
    assert "FAIL ua->hub:alliance-indicators" in result.stdout
    assert "source unreachable" in result.stdout


@pytest.mark.timeout(600)
def test_sigkilled_mirror_ends_with_every_node_holding_exactly_the_published_set(tmp_path):
    path = write_federation_files(tmp_path, [SHARED_INDICATORS], poll_interval=0.2)
    alliance = start_alliance(load_federation_config(path), run_links=False)
    template = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    published = [dict(template, id=f"indicator--{uuid.uuid4()}", name=f"flow {n}") for n in range(20_000)]
    ua_url = alliance.nodes["ua"].url
    rng = random.Random(20261122)
    kills = 0
    mirror = None
    try:
        for start in range(0, len(published), 1000):
            _post(ua_url, published[start : start + 1000])
            if mirror is None:
                mirror = subprocess.Popen(
                    [*CLI, "mirror", "--config", str(path)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            if start % 3000 == 0 and start:
                time.sleep(rng.uniform(0.05, 1.0))  # let it get somewhere, then kill it mid-flight
                mirror.send_signal(signal.SIGKILL)
                mirror.wait(timeout=30)
                kills += 1
                mirror = None
        if mirror is None:
            mirror = subprocess.Popen(
                [*CLI, "mirror", "--config", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        expected = sorted((o["id"], o["modified"]) for o in published)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if all(len(_manifest_keys(alliance.nodes[m].url)) >= len(published) for m in ("hub", "ro", "md")):
                break
            time.sleep(1)
        assert kills >= 5
        for member in ("hub", "ua", "ro", "md"):
            keys = _manifest_keys(alliance.nodes[member].url)
            assert len(keys) == len(set(keys)), f"{member} holds a version twice"
            assert sorted((i, v[:23]) for i, v in keys) == sorted((i, m[:23]) for i, m in expected), member
    finally:
        if mirror is not None:
            mirror.terminate()
            mirror.wait(timeout=30)
        alliance.stop()
