"""`taxii-fed discover`, `publish` and `poll`, as a CERT analyst and a SOC engineer run them."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

from tests.conftest import COLLECTION_ID, PASSWORDS, free_port, load_bundle, post_envelope, walk
from tests.medallion_member import MedallionMember

CLI = [sys.executable, "-m", "taxii_federation.clients.cli"]
ICS = "tests/data/attack/ics-attack-18.1.json"


@pytest.fixture
def storage_url(tmp_path) -> str:
    """The tools are clients: one backend is enough here (the node suites cover both)."""
    return f"sqlite:{tmp_path / 'node.db'}"


def _env(user: str) -> dict:
    return {**os.environ, "TAXII_FED_USER": user, "TAXII_FED_PASSWORD": PASSWORDS[user]}


def _run(args: list[str], user: str = "cert", timeout: float = 300, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=_env(user), **options
    )


def _read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_publish_the_ics_release_and_poll_it_back_object_for_object(node, tmp_path):
    started = time.perf_counter()
    published = _run(["publish", ICS, "--collection", node.collection_url()])
    publish_seconds = time.perf_counter() - started
    assert published.returncode == 0, published.stderr
    assert "read 1826 objects; sent 1826: 1826 stored, 0 already present, 0 failed" in published.stdout
    out = tmp_path / "ics.jsonl"
    started = time.perf_counter()
    polled = _run(
        [
            "poll",
            "--collection",
            "alliance-indicators",
            "--url",
            node.url,
            "--out",
            str(out),
            "--format",
            "jsonl",
        ],
        user="soc",
    )
    poll_seconds = time.perf_counter() - started
    assert polled.returncode == 0, polled.stderr
    assert _read_jsonl(out) == load_bundle("attack/ics-attack-18.1.json")
    print(f"publish ICS 18.1: {publish_seconds:.2f} s; poll it back: {poll_seconds:.2f} s")


def test_invalid_objects_are_all_reported_before_anything_is_sent(node, tmp_path):
    apt1 = load_bundle("oasis-examples/apt1.json")
    broken = [dict(apt1[1], created="yesterday"), dict(apt1[2], spec_version="2.0")]
    bundle = tmp_path / "mixed.json"
    bundle.write_text(
        json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": apt1 + broken})
    )
    refused = _run(["publish", str(bundle), "--collection", node.collection_url()])
    assert refused.returncode == 1
    assert "2 invalid objects; nothing was sent" in refused.stdout
    assert f"{apt1[1]['id']}: 'created': 'yesterday' is not a UTC timestamp" in refused.stdout
    assert walk(node.url) == []
    rest = _run(["publish", str(bundle), "--collection", node.collection_url(), "--skip-invalid"])
    assert rest.returncode == 1  # something was still wrong
    assert f"sent {len(apt1)}: {len(apt1)} stored" in rest.stdout
    assert len(walk(node.url)) == len(apt1)


def test_a_number_outside_json_in_a_bundle_is_refused_before_anything_is_sent(node, tmp_path):
    """Python's json module reads NaN and 1e400 from a file; publish's local check refuses them, as the node
    would, rather than send them on as something else."""
    apt1 = load_bundle("oasis-examples/apt1.json")
    text = json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": apt1[1:3]})
    bundle = tmp_path / "numbers.json"
    bundle.write_text(
        text.replace('"spec_version": "2.1"', '"x_score": NaN, "x_weight": 1e400, "spec_version": "2.1"')
    )
    refused = _run(["publish", str(bundle), "--collection", node.collection_url()])
    assert refused.returncode == 1
    assert "2 invalid objects; nothing was sent" in refused.stdout
    assert refused.stdout.count("is not a JSON number") == 2
    assert walk(node.url) == []


def test_a_publish_killed_half_way_is_finished_by_running_it_again(node_factory, tmp_path):
    node = node_factory(max_content_length=300_000)  # the ICS release needs ~10 envelopes
    process = subprocess.Popen(
        [*CLI, "publish", ICS, "--collection", node.collection_url()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env("cert"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it as soon as its first envelope is in
        probe = node.session("soc").get(node.collection_url() + "manifest/", params={"limit": 1})
        if probe.json().get("objects"):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    stored_before = -1
    for _ in range(50):  # an envelope already sent may still be committing at the node: let it settle
        count = len(walk(node.url, "manifest/", limit=1000))
        if count == stored_before:
            break
        stored_before = count
        time.sleep(0.3)
    assert 0 < stored_before < 1826
    again = _run(["publish", ICS, "--collection", node.collection_url()])
    assert again.returncode == 0, again.stderr
    assert f"{1826 - stored_before} stored, {stored_before} already present, 0 failed" in again.stdout
    records = walk(node.url, "manifest/", limit=1000, **{"match[version]": "all"})
    assert len(records) == len({(r["id"], r["version"]) for r in records}) == 1826


def test_poll_resumes_from_its_cursor_and_follow_sees_new_objects(node, tmp_path):
    apt1, poisonivy = load_bundle("oasis-examples/apt1.json"), load_bundle("oasis-examples/poisonivy.json")
    post_envelope(node.url, apt1)
    out = tmp_path / "feed.jsonl"
    args = ["poll", "--collection", node.collection_url(), "--out", str(out), "--format", "jsonl"]
    assert _run(args, user="soc").returncode == 0
    post_envelope(node.url, poisonivy[:50])
    assert _run(args, user="soc").returncode == 0
    assert [o["id"] for o in _read_jsonl(out)] == [o["id"] for o in apt1 + poisonivy[:50]]

    def publish_more() -> None:
        for start in range(50, len(poisonivy), 35):
            time.sleep(0.3)
            post_envelope(node.url, poisonivy[start : start + 35])

    publisher = threading.Thread(target=publish_more)
    publisher.start()
    followed = _run([*args, "--follow", "--interval", "0.2", "--max-polls", "25"], user="soc")
    publisher.join(timeout=60)
    assert followed.returncode == 0, followed.stderr
    assert [o["id"] for o in _read_jsonl(out)] == [o["id"] for o in apt1 + poisonivy]
    poll_lines = [line for line in followed.stderr.splitlines() if " poll " in line]
    assert len(poll_lines) == 25 and poll_lines[-1].endswith(_cursor_text(out))
    assert followed.stderr.splitlines()[-1].startswith(
        f"followed 25 polls: received {len(poisonivy) - 50} objects"
    )


def _cursor_text(out) -> str:
    return "cursor " + json.loads((out.parent / (out.name + ".cursor")).read_text())["added_after"]


def test_follow_ends_on_ctrl_c_with_a_summary(node, tmp_path):
    post_envelope(node.url, load_bundle("oasis-examples/apt1.json"))
    out = tmp_path / "feed.jsonl"
    command = [*CLI, "poll", "--collection", node.collection_url(), "--out", str(out), "--format", "jsonl"]
    process = subprocess.Popen(
        [*command, "--follow", "--interval", "0.2"], stderr=subprocess.PIPE, text=True, env=_env("soc")
    )
    first = process.stderr.readline()
    assert " poll 1: " in first and "new objects" in first
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 0
    assert rest.splitlines()[-1].startswith("followed ") and "received " in rest.splitlines()[-1]
    assert len(_read_jsonl(out)) == len(load_bundle("oasis-examples/apt1.json"))


def test_poll_writes_a_stix_bundle_and_filters_by_type(node, tmp_path):
    post_envelope(node.url, load_bundle("oasis-examples/apt1.json"))
    out = tmp_path / "indicators.json"
    result = _run(
        ["poll", "--collection", node.collection_url(), "--out", str(out), "--type", "indicator"], user="soc"
    )
    assert result.returncode == 0, result.stderr
    bundle = json.loads(out.read_text())
    assert bundle["type"] == "bundle" and bundle["id"].startswith("bundle--")
    assert {o["type"] for o in bundle["objects"]} == {"indicator"} and len(bundle["objects"]) == 12


def test_discover_shows_the_callers_own_access(node):
    table = _run(["discover", node.url], user="soc")
    assert table.returncode == 0, table.stderr
    assert "alliance-indicators" in table.stdout
    rows = json.loads(_run(["discover", node.url, "--json"], user="writer").stdout)
    assert [(r["alias"], r["can_read"], r["can_write"]) for r in rows] == [
        ("alliance-indicators", False, True)
    ]


def test_errors_are_one_line_a_person_can_act_on(node, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/"
    unreachable = _run(["discover", closed])
    assert unreachable.returncode == 2 and f"cannot reach {closed}" in unreachable.stderr
    wrong = subprocess.run(
        [*CLI, "discover", node.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_env("cert"), "TAXII_FED_PASSWORD": "wrong"},
    )
    assert wrong.returncode == 2 and "refused the credentials of user 'cert' (401)" in wrong.stderr
    read_only = _run(["publish", ICS, "--collection", node.collection_url()], user="soc")
    assert read_only.returncode == 2
    assert "collection '9a0f6b1e-5a54-4c3e-8a52-4f6f0e4d2a01' is not writable by 'soc'" in read_only.stderr
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"type": "bundle",\n "objects": [}')
    bad = _run(["publish", str(not_json), "--collection", node.collection_url()])
    assert bad.returncode == 2 and f"{not_json}: not JSON (line 2 column" in bad.stderr
    no_credentials = subprocess.run(
        [*CLI, "discover", node.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TAXII_FED")},
        stdin=subprocess.DEVNULL,
    )
    assert no_credentials.returncode == 2 and "no credentials" in no_credentials.stderr


def test_credentials_from_a_file(node, tmp_path):
    credentials = tmp_path / "soc.yaml"
    credentials.write_text(yaml.safe_dump({"user": "soc", "password": PASSWORDS["soc"]}))
    result = subprocess.run(
        [*CLI, "discover", node.url, "--credentials", str(credentials), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TAXII_FED")},
    )
    assert result.returncode == 0, result.stderr
    assert {row["alias"] for row in json.loads(result.stdout)} == {"alliance-indicators", "strict"}


def test_publish_to_and_poll_from_a_stock_medallion(tmp_path):
    medallion = MedallionMember(
        tmp_path / "medallion", free_port(), COLLECTION_ID, "alliance-indicators", {"cert": PASSWORDS["cert"]}
    ).start()
    try:
        published = _run(
            [
                "publish",
                "tests/data/oasis-examples/apt1.json",
                "--collection",
                "alliance-indicators",
                "--url",
                medallion.url,
            ]
        )
        assert published.returncode == 0, published.stdout + published.stderr
        out = tmp_path / "back.jsonl"
        polled = _run(
            [
                "poll",
                "--collection",
                f"{medallion.url}alliance/collections/{COLLECTION_ID}/",
                "--out",
                str(out),
                "--format",
                "jsonl",
            ]
        )
        assert polled.returncode == 0, polled.stderr
        assert sorted(o["id"] for o in _read_jsonl(out)) == sorted(
            o["id"] for o in load_bundle("oasis-examples/apt1.json")
        )
    finally:
        medallion.stop()
