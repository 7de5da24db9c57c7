"""`taxii-fed federation add-member` as an operator runs it against a running `federation up`: the new
member's node starts, `check` passes, a publish at the new member reaches every other member, and the
links that ran before keep their checkpoints."""

import json
import signal
import subprocess
import time
import uuid

import requests
import yaml

from taxii_federation.clients.federation.state import FederationState
from tests.conftest import (
    COLLECTION_ID,
    HEADERS,
    SHARED_INDICATORS,
    load_bundle,
    post_envelope,
    walk,
    write_federation_files,
)
from tests.processes import CLI, free_port, taxii_fed


def _ids(base_url: str, collection_id: str, user: str = "soc", password: str | None = None) -> set[str]:
    if password is None:
        return {o["id"] for o in walk(base_url, collection_id=collection_id, limit=1000)}
    listing = requests.get(f"{base_url}alliance/collections/{collection_id}/objects/", auth=(user, password),
                           headers=HEADERS, params={"limit": 1000}, timeout=30)  # fmt: skip
    return {o["id"] for o in listing.json().get("objects", [])}


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s")


def test_add_member_then_a_publish_at_it_reaches_every_other_member(tmp_path):
    path = write_federation_files(tmp_path / "fed", [SHARED_INDICATORS], poll_interval=0.2)
    members = yaml.safe_load(path.read_text())["members"]
    up = subprocess.Popen([*CLI, "federation", "up", "--config", str(path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert up.stdout.readline().startswith("federation up: hub 'hub', 6 links")
        history = load_bundle("oasis-examples/apt1.json")
        post_envelope(members["ua"]["url"], history)
        _wait(lambda: len(_ids(members["md"]["url"], COLLECTION_ID)) == len(history), 60, "history at md")
        state_path = tmp_path / "fed" / "state" / "federation.db"
        before = FederationState(state_path).links()

        port = free_port()
        added = taxii_fed(
            "federation", "add-member", "pl", "--config", str(path), "--url", f"http://127.0.0.1:{port}/"
        )
        assert added.returncode == 0, added.stderr
        node_config = tmp_path / "fed" / "hub" / "pl.yaml"
        assert f"node config {node_config}" in added.stdout
        grant = "alliance:*:read-write"
        created = taxii_fed(
            "users", "add", "cert-pl", "--config", str(node_config), "--grant", grant, "--password-stdin",
            stdin="pl-cert-pass\n",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        check = taxii_fed("federation", "check", "--config", str(path))
        assert check.returncode == 0, check.stdout
        assert "OK   pl: " in check.stdout

        pl = f"http://127.0.0.1:{port}/"
        catalogue = yaml.safe_load((tmp_path / "fed" / "hub" / "pl-catalogue.yaml").read_text())
        (shared,) = catalogue["api_roots"]["alliance"]["collections"]
        assert shared["alias"] == "alliance-indicators"
        _wait(lambda: _reachable(pl), 60, "the new member's node started by the running federation")
        up.send_signal(signal.SIGHUP)  # "reload now": handled (the process goes on), nothing to change
        time.sleep(1.5)
        assert up.poll() is None and _reachable(pl)
        # The new member receives the shared history, from the start of the hub's collection.
        _wait(
            lambda: len(_ids(pl, shared["id"], "cert-pl", "pl-cert-pass")) == len(history),
            60,
            "history at pl",
        )
        template = next(o for o in history if o["type"] == "indicator")
        fresh = [dict(template, id=f"indicator--{uuid.uuid4()}", name=f"from pl {n}") for n in range(5)]
        response = requests.post(
            f"{pl}alliance/collections/{shared['id']}/objects/",
            auth=("cert-pl", "pl-cert-pass"),
            headers=HEADERS,
            data=json.dumps({"objects": fresh}),
            timeout=60,
        )
        assert response.status_code == 202, response.text
        wanted = {o["id"] for o in fresh}
        for member in ("hub", "ua", "ro", "md"):
            _wait(
                lambda m=member: wanted <= _ids(members[m]["url"], COLLECTION_ID),
                60,
                f"pl's objects at {member}",
            )

        after = FederationState(state_path).links()
        assert before["ua->hub:alliance-indicators"].checkpoint is not None
        for name, link in before.items():
            if link.checkpoint is not None:
                assert after[name].checkpoint >= link.checkpoint, name
        # ua->hub continued from its checkpoint, never reading the history again: at most pl's 5 objects,
        # echoes for it, which its held read at ua does not even wake for (not news: the hub delivered them).
        read_since = (
            after["ua->hub:alliance-indicators"].objects_seen
            - before["ua->hub:alliance-indicators"].objects_seen
        )
        assert read_since <= 5
        assert {"pl->hub:alliance-indicators", "hub->pl:alliance-indicators"} <= set(after)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    assert up.returncode == 0, up.stderr.read()


def _reachable(url: str) -> bool:
    try:
        return requests.get(f"{url}healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_add_member_refuses_a_name_in_use_and_an_unknown_agreement_and_changes_nothing(tmp_path):
    path = write_federation_files(tmp_path / "fed", [SHARED_INDICATORS])
    before = {p: p.read_text() for p in (tmp_path / "fed").rglob("*.yaml")}
    taken = taxii_fed("federation", "add-member", "ro", "--config", str(path), "--url", "http://127.0.0.1:1/")
    assert taken.returncode != 0 and "members.ro exists already" in taken.stderr
    unknown = taxii_fed("federation", "add-member", "pl", "--config", str(path), "--url", "http://127.0.0.1:1/",
                   "--agreement", "no-such-collection")  # fmt: skip
    assert unknown.returncode != 0 and "no agreement on no-such-collection" in unknown.stderr
    assert {p: p.read_text() for p in (tmp_path / "fed").rglob("*.yaml")} == before
