"""The federation as a hub operator runs it: link metrics at the hub's /metrics, /readyz following the
members, `federation status --json` and its exit code, `federation check`, pausing a member and reloading
the config while running, and the state file of an older version upgraded in place."""

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from taxii_federation.clients.federation.alliance import start_alliance
from taxii_federation.clients.federation.config import load_federation_config
from taxii_federation.clients.federation.monitor import FederationMonitor
from taxii_federation.clients.federation.state import FederationState
from tests.conftest import SHARED_INDICATORS, eventually, load_bundle, post_envelope, write_federation_files
from tests.processes import CLI, taxii_fed
from tests.test_observability import sample, scrape

TLP1_RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
INBOUND, TO_RO = "ua->hub:alliance-indicators", "hub->ro:alliance-indicators"


@pytest.fixture
def federation_path(tmp_path):
    return write_federation_files(tmp_path / "fed", [SHARED_INDICATORS])


@pytest.fixture
def alliance(federation_path):
    running = start_alliance(load_federation_config(federation_path), run_links=False)
    yield running
    running.stop()


def _scrape_until(url: str, name: str, value: float, **labels) -> dict:
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(url)
        if sample(samples, name, **labels) == value or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_hub_metrics_follow_lag_stored_errors_and_held_back_across_a_mirror_pass(alliance):
    hub = alliance.nodes["hub"].url
    objects = load_bundle("oasis-examples/apt1.json")
    red = dict(next(o for o in objects if o["type"] == "indicator"), object_marking_refs=[TLP1_RED])
    red["id"] = "indicator--1b1c0c0d-9a47-4c84-9f52-5a4a7e1c0001"
    post_envelope(alliance.nodes["ua"].url, [*objects, red])
    before = scrape(hub)
    assert sample(before, "taxii_fed_link_lag_objects", link=INBOUND) == len(objects) + 1
    assert sample(before, "taxii_fed_link_objects_stored_total", link=INBOUND) == 0
    assert sample(before, "taxii_fed_link_state", link=INBOUND, state="ok") == 1
    alliance.federation.run_once()
    after = _scrape_until(hub, "taxii_fed_link_lag_objects", 0, link=INBOUND)
    assert sample(after, "taxii_fed_link_objects_stored_total", link=INBOUND) == len(objects)
    assert sample(after, "taxii_fed_link_held_back_total", link=INBOUND, reason="tlp:red") == 1
    assert time.time() - sample(after, "taxii_fed_link_last_success_timestamp_seconds", link=INBOUND) < 60
    # The hub's own request metrics saw the mirror's posts.
    assert sample(after, "taxii_objects_total", collection="alliance-indicators", outcome="stored") == len(
        objects
    )
    assert sample(after, "taxii_fed_member_up", member="ro") == 1
    alliance.nodes.pop("ro").stop()
    post_envelope(alliance.nodes["ua"].url, load_bundle("oasis-examples/poisonivy.json"))
    alliance.federation.run_once()  # hub->ro has something to deliver, and fails
    failing = _scrape_until(hub, "taxii_fed_member_up", 0, member="ro")  # reachability is cached a moment
    assert sample(failing, "taxii_fed_link_errors_total", link=TO_RO) >= 1
    assert sample(failing, "taxii_fed_link_state", link=TO_RO, state="failing") == 1
    assert sample(failing, "taxii_fed_link_state", link=INBOUND, state="ok") == 1
    # A national node runs no links: its metrics carry none.
    assert not any(name.startswith("taxii_fed_") for name, _ in scrape(alliance.nodes["ua"].url))


def test_readyz_of_the_hub_turns_not_ready_when_a_member_is_down(alliance):
    hub, ua = alliance.nodes["hub"].url, alliance.nodes["ua"].url
    assert requests.get(f"{hub}readyz", timeout=30).status_code == 200
    alliance.nodes.pop("md").stop()
    eventually(lambda: requests.get(f"{hub}readyz", timeout=30).status_code == 503, 30)
    answer = requests.get(f"{hub}readyz", timeout=30)
    assert answer.text == "not ready\n"  # which member, and why, is in the log and on the dashboard
    assert requests.get(f"{ua}readyz", timeout=30).status_code == 200
    assert requests.get(f"{hub}healthz", timeout=30).status_code == 200


def _status(federation_path, *extra):
    return taxii_fed("federation", "status", "--config", str(federation_path), *extra)


def test_status_json_lists_every_link_and_member_and_fails_when_a_link_fails(alliance, federation_path):
    post_envelope(alliance.nodes["ua"].url, load_bundle("oasis-examples/apt1.json"))
    alliance.federation.run_once()
    healthy = _status(federation_path, "--json")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    report = json.loads(healthy.stdout)
    assert {link["state"] for link in report["links"]} == {"ok"}
    inbound = next(link for link in report["links"] if link["link"] == INBOUND)
    assert inbound["lag_objects"] == 0 and inbound["objects_stored"] > 0 and inbound["checkpoint"]
    assert {m["name"]: m["healthy"] for m in report["members"]} == dict.fromkeys(
        ("hub", "ua", "ro", "md"), True
    )
    alliance.nodes.pop("ro").stop()
    post_envelope(alliance.nodes["ua"].url, load_bundle("oasis-examples/poisonivy.json"))
    alliance.federation.run_once()
    broken = _status(federation_path, "--json")
    assert broken.returncode == 1
    links = {link["link"]: link for link in json.loads(broken.stdout)["links"]}
    assert links[TO_RO]["state"] == "failing" and "connection refused" in links[TO_RO]["error"]
    assert links[INBOUND]["state"] == "ok"
    assert "FAIL hub->ro:alliance-indicators" in _status(federation_path).stdout


def test_check_names_a_wrong_password_file_and_up_refuses_to_start_with_it(federation_path):
    good = taxii_fed("federation", "check", "--config", str(federation_path))
    assert good.returncode == 0, good.stdout
    assert (
        "0 failed" in good.stdout
        and "collection 'alliance-indicators': read and write allowed" in good.stdout
    )
    config = yaml.safe_load(federation_path.read_text())
    wrong = federation_path.parent / "ro-wrong.txt"
    wrong.write_text("not-the-password\n")
    config["members"]["ro"]["credentials"]["password_file"] = wrong.name
    federation_path.write_text(yaml.safe_dump(config))
    bad = taxii_fed("federation", "check", "--config", str(federation_path))
    assert bad.returncode == 1
    (failure,) = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
    assert failure.startswith("FAIL ro: the password of members.ro.credentials.password_file")
    assert str(wrong) in failure
    up = taxii_fed("federation", "up", "--config", str(federation_path))
    assert up.returncode != 0 and "nothing was started" in up.stderr and str(wrong) in up.stderr


def test_check_asks_a_member_run_elsewhere_over_taxii(alliance, federation_path):
    config = yaml.safe_load(federation_path.read_text())
    del config["members"]["md"]["node_config"]  # md runs elsewhere: only TAXII tells
    config["members"]["md"]["url"] = alliance.nodes["md"].url
    federation_path.write_text(yaml.safe_dump(config))
    ok = taxii_fed("federation", "check", "--config", str(federation_path))
    assert ok.returncode == 0, ok.stdout
    assert f"OK   md: {alliance.nodes['md'].url} accepts user 'mirror'" in ok.stdout
    (federation_path.parent / "md-wrong.txt").write_text("wrong\n")
    config["members"]["md"]["credentials"]["password_file"] = "md-wrong.txt"
    federation_path.write_text(yaml.safe_dump(config))
    bad = taxii_fed("federation", "check", "--config", str(federation_path))
    assert bad.returncode == 1
    assert "FAIL md: " in bad.stdout and "refused the credentials of user 'mirror' (401)" in bad.stdout
    assert "md-wrong.txt" in bad.stdout


def test_a_paused_member_is_shown_not_run_and_catches_up_from_its_checkpoint_when_resumed(
    alliance, federation_path
):
    first = load_bundle("oasis-examples/apt1.json")
    post_envelope(alliance.nodes["ua"].url, first)
    alliance.federation.run_once()
    checkpoints = {name: link.checkpoint for name, link in alliance.federation.state.links().items()}
    config = yaml.safe_load(federation_path.read_text())
    config["members"]["md"]["paused"] = True
    federation_path.write_text(yaml.safe_dump(config))
    alliance.apply(load_federation_config(federation_path))
    assert not [
        link for link in alliance.federation.links if "md" in (link.source.name, link.destination.name)
    ]
    monitor = FederationMonitor(federation_path, cache_seconds=0)
    try:
        states = {report.link: report.health for report in monitor.links()}
    finally:
        monitor.close()
    assert states["hub->md:alliance-indicators"] == "paused" and states[INBOUND] == "ok"
    second = load_bundle("oasis-examples/poisonivy.json")
    post_envelope(alliance.nodes["ua"].url, second)
    alliance.federation.run_once()
    md_before = alliance.federation.state.links()["hub->md:alliance-indicators"]
    assert md_before.checkpoint == checkpoints["hub->md:alliance-indicators"]  # untouched while paused
    del config["members"]["md"]["paused"]
    federation_path.write_text(yaml.safe_dump(config))
    alliance.apply(load_federation_config(federation_path))
    alliance.federation.run_once()
    md_after = alliance.federation.state.links()["hub->md:alliance-indicators"]
    # Resumed from its checkpoint: it read only what came after, not the whole collection again.
    assert md_after.objects_seen - md_before.objects_seen == len(second)
    assert md_after.objects_stored - md_before.objects_stored == len(second)


def test_a_state_file_of_the_previous_version_is_upgraded_and_keeps_its_checkpoints(tmp_path):
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE links (name TEXT PRIMARY KEY, checkpoint TEXT, objects_seen INTEGER NOT NULL DEFAULT 0,
            objects_stored INTEGER NOT NULL DEFAULT 0, last_success REAL, last_error TEXT, last_error_at REAL,
            caught_up_at REAL);
        CREATE TABLE held_back (link TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
            PRIMARY KEY (link, reason));
        INSERT INTO links (name, checkpoint, objects_seen, objects_stored) VALUES
            ('ua->hub:alliance-indicators', '2026-01-01T00:00:00.000001Z', 10, 9);
        """
    )
    old.close()
    state = FederationState(path)
    try:
        link = state.links()[INBOUND]
        assert (link.checkpoint, link.objects_seen, link.objects_stored, link.errors) == (
            "2026-01-01T00:00:00.000001Z", 10, 9, 0,
        )  # fmt: skip
        state.record_error(INBOUND, "ua: cannot reach it")
        from collections import Counter

        state.advance(INBOUND, "2026-01-01T00:00:01.000000Z", 5, 5, Counter(), caught_up=True)
        assert state.links()[INBOUND].errors == 1
        assert sum(state.stored_per_minute(time.time() - 60)[INBOUND].values()) == 5
    finally:
        state.close()
    assert FederationState(path).links()[INBOUND].checkpoint == "2026-01-01T00:00:01.000000Z"


def test_links_advancing_at_once_each_keep_their_checkpoints_counts_and_held_back(tmp_path):
    # Thirty links that carried the same page advance together, as the hub's links to thirty members do:
    # their writes share commits, and each returns only once its own progress is in the file.
    from collections import Counter

    state, reader = FederationState(tmp_path / "state.db"), FederationState(tmp_path / "state.db")
    links = [f"hub->m{number:02d}:alliance-indicators" for number in range(30)]
    start = threading.Barrier(len(links))

    def advance(link: str) -> None:
        start.wait(timeout=30)
        for page in range(1, 21):
            state.advance(link, f"2026-01-01T00:00:{page:02d}.000000Z", 3, 2, Counter(red=1), page == 20)
            assert reader.links()[link].objects_seen == 3 * page  # committed: seen from another connection

    try:
        with ThreadPoolExecutor(len(links)) as pool:
            for future in [pool.submit(advance, link) for link in links]:
                future.result(timeout=120)
        recorded = reader.links()
    finally:
        state.close()
    last = "2026-01-01T00:00:20.000000Z"
    assert {name: recorded[name].checkpoint for name in links} == dict.fromkeys(links, last)
    totals = [(recorded[n].objects_seen, recorded[n].objects_stored, recorded[n].held_back) for n in links]
    assert totals == [(60, 40, {"red": 20})] * len(links)


def test_a_hub_under_serve_shows_the_links_that_mirror_runs_in_another_process(tmp_path):
    """The real deployment: the hub's node under `taxii-fed serve` (its config names the federation file),
    the links under `taxii-fed mirror`, the two sharing only the state file."""
    from dataclasses import replace
    from urllib.parse import urlsplit

    from taxii_federation.server.config import load_node_config
    from taxii_federation.server.serve import start_node
    from tests.conftest import PASSWORDS
    from tests.processes import start_listening_server

    path = write_federation_files(tmp_path / "fed", [SHARED_INDICATORS])
    federation = yaml.safe_load(path.read_text())
    members = federation["members"]
    hub_config = tmp_path / "fed" / "hub" / "node.yaml"
    hub_yaml = yaml.safe_load(hub_config.read_text())
    hub_yaml["federation"] = "../federation.yaml"
    hub_config.write_text(yaml.safe_dump(hub_yaml))
    national = {
        name: start_node(
            replace(load_node_config(members[name]["node_config"]), port=urlsplit(members[name]["url"]).port)
        )
        for name in ("ua", "ro", "md")
    }
    hub_port = urlsplit(members["hub"]["url"]).port
    hub = start_listening_server(
        [*CLI, "serve", "--config", str(hub_config), "--port", str(hub_port)],
        hub_port,
        tmp_path / "hub.log",
        "hub",
    )
    try:
        objects = load_bundle("oasis-examples/apt1.json")
        post_envelope(national["ua"].url, objects)
        once = taxii_fed("mirror", "--once", "--config", str(path))
        assert once.returncode == 0, once.stdout + once.stderr
        hub_url = members["hub"]["url"]
        samples = _scrape_until(hub_url, "taxii_fed_link_objects_stored_total", len(objects), link=INBOUND)
        assert sample(samples, "taxii_fed_link_objects_stored_total", link=INBOUND) == len(objects)
        assert sample(samples, "taxii_fed_link_lag_objects", link=INBOUND) == 0
        browser = requests.Session()
        first = browser.get(f"{hub_url}dashboard/", timeout=30)
        assert first.url.endswith("/dashboard/login")  # redirected: login required
        page = browser.post(
            f"{hub_url}dashboard/login", data={"user": "ops", "password": PASSWORDS["ops"]}, timeout=30
        )
        assert page.status_code == 200
        assert 'data-link="ua-&gt;hub:alliance-indicators" data-state="ok"' in page.text
        assert requests.get(f"{hub_url}readyz", timeout=30).status_code == 200
    finally:
        hub.terminate()
        hub.wait(timeout=30)
        for node in national.values():
            node.stop()
