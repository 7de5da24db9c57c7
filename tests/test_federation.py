"""Federation between real nodes: the hub and three national nodes on 127.0.0.1 (DESIGN.md, "Federation")."""

import copy
import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from taxii_federation.clients.federation.alliance import start_alliance
from taxii_federation.clients.federation.config import load_federation_config
from taxii_federation.clients.federation.policy import TLP_MARKINGS
from taxii_federation.server.node import node_of
from tests.conftest import (
    COLLECTION_ID,
    PASSWORDS,
    SHARED_INDICATORS,
    STRICT_ID,
    TAXII,
    load_bundle,
    post_envelope,
    walk,
    write_federation_files,
)

TLP = {name: ref for ref, name in reversed(list(TLP_MARKINGS.items()))}  # TLP 1.0 ids win for clear..red
TLP2_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
TLP2_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"


@pytest.fixture
def alliance_factory(tmp_path):
    started = []

    def start(agreements=(SHARED_INDICATORS,), run_links=False, poll_interval=0.2, node_settings=None):
        path = write_federation_files(tmp_path / f"fed-{len(started)}", list(agreements), poll_interval)
        for member in yaml.safe_load(path.read_text())["members"].values():
            node_config = Path(member["node_config"])
            node_config.write_text(
                yaml.safe_dump({**yaml.safe_load(node_config.read_text()), **(node_settings or {})})
            )
        alliance = start_alliance(load_federation_config(path), run_links=run_links)
        started.append(alliance)
        return alliance

    yield start
    for alliance in started:
        alliance.stop()


def publish(alliance, member: str, objects: list[dict], collection_id: str = COLLECTION_ID) -> dict:
    return post_envelope(alliance.nodes[member].url, objects, collection_id)


def holdings(alliance, member: str, collection_id: str = COLLECTION_ID) -> list[dict]:
    """Every version a member holds."""
    return walk(
        alliance.nodes[member].url, collection_id=collection_id, limit=1000, **{"match[version]": "all"}
    )


def _key(obj: dict) -> tuple:
    return obj["id"], obj.get("modified") or obj.get("created")


def _by_key(objects: list[dict]) -> dict:
    keyed = {_key(obj): obj for obj in objects}
    assert len(keyed) == len(objects), "a version is held twice"
    return keyed


def _marked(obj: dict, marking: str) -> dict:
    marked = copy.deepcopy(obj)
    marked["id"] = f"{obj['type']}--{uuid.uuid4()}"
    marked["object_marking_refs"] = [marking]
    return marked


def test_a_publication_at_ua_reaches_every_member_once_with_identical_content(alliance_factory):
    alliance = alliance_factory()
    published = load_bundle("attack/ics-attack-18.1.json") + load_bundle("oasis-examples/apt1.json")
    publish(alliance, "ua", published)
    first = alliance.federation.run_once()
    assert all(not isinstance(result, Exception) for result in first.values()), first
    expected = _by_key(published)
    for member in ("hub", "ro", "md"):
        assert _by_key(holdings(alliance, member)) == expected, member
    assert _by_key(holdings(alliance, "ua")) == expected  # nothing came back to ua as a duplicate
    assert first["hub->ua:alliance-indicators"].echoes == len(expected)
    second = alliance.federation.run_once()
    # ro and md read what the hub brought them, and send none of it back.
    assert sum(run.stored + run.already_present + sum(run.held.values()) for run in second.values()) == 0
    third = alliance.federation.run_once()
    assert sum(run.seen for run in third.values()) == 0


def test_policy_keeps_red_and_amber_strict_home_and_counts_what_it_held(alliance_factory):
    alliance = alliance_factory()
    base = [o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator"][:6]
    red, red2, strict = (
        _marked(base[0], TLP["red"]),
        _marked(base[1], TLP2_RED),
        _marked(base[2], TLP2_AMBER_STRICT),
    )
    amber, green = _marked(base[3], TLP["amber"]), _marked(base[4], TLP["green"])
    granular_red = copy.deepcopy(load_bundle("oasis-examples/using-granular-markings.json"))
    publish(alliance, "ua", [red, red2, strict, amber, green, *granular_red])
    alliance.federation.run_once()
    shared_ids = {obj["id"] for obj in holdings(alliance, "md")}
    assert amber["id"] in shared_ids and green["id"] in shared_ids
    assert not {red["id"], red2["id"], strict["id"]} & shared_ids
    red_in_granular = [o for o in granular_red if "5e57c739" in json.dumps(o)]
    assert red_in_granular and not {o["id"] for o in red_in_granular} & shared_ids
    held = alliance.federation.state.links()["ua->hub:alliance-indicators"].held_back
    assert held["tlp:red never leaves its node"] == 2 + len(red_in_granular)
    assert held["tlp:amber+strict never crosses nodes"] == 1


def test_max_tlp_and_unmarked_rules_of_an_agreement(alliance_factory):
    agreement = dict(SHARED_INDICATORS, max_tlp="green", unmarked="hold")
    alliance = alliance_factory([agreement])
    base = [o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator"][:3]
    amber, green, unmarked = (
        _marked(base[0], TLP["amber"]),
        _marked(base[1], TLP["green"]),
        copy.deepcopy(base[2]),
    )
    unmarked.pop("object_marking_refs", None)
    publish(alliance, "ua", [amber, green, unmarked])
    alliance.federation.run_once()
    assert {o["id"] for o in holdings(alliance, "ro")} == {green["id"]}
    held = alliance.federation.state.links()["ua->hub:alliance-indicators"].held_back
    assert held == {
        "tlp:amber is above the agreement's max_tlp green": 1,
        "unmarked, and the agreement holds unmarked objects": 1,
    }


def test_an_agreement_that_excludes_md_keeps_md_empty_of_that_collection(alliance_factory):
    strict_agreement = dict(SHARED_INDICATORS, collection="strict", members=["ua", "ro"])
    alliance = alliance_factory([SHARED_INDICATORS, strict_agreement])
    objects = load_bundle("oasis-examples/apt1.json")[:10]
    publish(alliance, "ua", objects, collection_id=STRICT_ID)
    alliance.federation.run_once()
    assert _by_key(holdings(alliance, "ro", STRICT_ID)) == _by_key(objects)
    assert holdings(alliance, "md", STRICT_ID) == []


def test_marking_definitions_travel_with_the_objects_that_reference_them(alliance_factory):
    alliance = alliance_factory()
    bundle = load_bundle("attack/ics-attack-18.1.json")
    copyright_marking = next(o for o in bundle if o["type"] == "marking-definition")
    technique = next(o for o in bundle if o["type"] == "attack-pattern")
    publish(alliance, "ua", [copyright_marking])
    alliance.federation.run_once()
    # The marking definition was mirrored on its own; publish the referencing object now, and delete the
    # definition at md so that only travelling-with can bring it back.
    md = alliance.nodes["md"]
    requests.delete(
        f"{md.url}alliance/collections/{COLLECTION_ID}/objects/{copyright_marking['id']}/",
        auth=("cert", PASSWORDS["cert"]),
        headers={"Accept": TAXII},
        timeout=30,
    )
    fresh = alliance_factory()
    publish(fresh, "ua", [copyright_marking, technique])
    # ua holds both; a link that sees only the technique on its page still brings the definition.
    fresh.federation.run_once()
    ids = {o["id"] for o in holdings(fresh, "md")}
    assert {copyright_marking["id"], technique["id"]} <= ids


def test_provenance_is_recorded_and_invisible_to_standard_clients(alliance_factory):
    alliance = alliance_factory()
    objects = load_bundle("oasis-examples/apt1.json")[:3]
    publish(alliance, "ro", objects)
    alliance.federation.run_once()
    hub = alliance.nodes["hub"]
    url = f"{hub.url}alliance/collections/{COLLECTION_ID}/objects/"
    plain = requests.get(url, auth=("soc", PASSWORDS["soc"]), headers={"Accept": TAXII}, timeout=30).json()
    assert set(plain) == {"more", "objects"}
    mirror = requests.get(
        url,
        auth=("mirror", PASSWORDS["mirror"]),
        headers={"Accept": TAXII, "X-TAXII-Fed-Provenance": "include"},
        timeout=30,
    ).json()
    assert mirror["x_taxii_fed_origins"] == ["ro", "ro", "ro"]
    assert mirror["x_taxii_fed_links"] == ["ro->hub:alliance-indicators"] * 3
    # A standard user asking for provenance does not get it.
    asked = requests.get(
        url,
        auth=("soc", PASSWORDS["soc"]),
        headers={"Accept": TAXII, "X-TAXII-Fed-Provenance": "include"},
        timeout=30,
    ).json()
    assert "x_taxii_fed_origins" not in asked


def test_all_three_national_nodes_publishing_at_once_converge(alliance_factory):
    alliance = alliance_factory(run_links=True, poll_interval=0.2)
    template = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    batches = {
        m: [dict(template, id=f"indicator--{uuid.uuid4()}", name=f"{m} {n}") for n in range(300)]
        for m in ("ua", "ro", "md")
    }
    threads = [threading.Thread(target=publish, args=(alliance, m, objs)) for m, objs in batches.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = {_key(o) for objs in batches.values() for o in objs}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all({_key(o) for o in holdings(alliance, m)} == expected for m in ("hub", "ua", "ro", "md")):
            break
        time.sleep(0.2)
    for member in ("hub", "ua", "ro", "md"):
        assert set(_by_key(holdings(alliance, member))) == expected, member
    alliance.federation.stop()
    again = alliance.federation.run_once()
    assert sum(run.stored for run in again.values()) == 0


def _wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout} s")


def test_a_member_that_is_down_catches_up_at_once_when_back_and_delays_no_one_else(alliance_factory):
    # A poll interval of 2 s makes the backoff after two failures 4-8 s: only the probe can beat it.
    alliance = alliance_factory(run_links=True, poll_interval=2)
    ro = alliance.nodes["ro"]
    ro_config, ro_port = ro.config, ro.port
    ro.stop()
    objects = load_bundle("oasis-examples/poisonivy.json")
    publish(alliance, "ua", objects)
    expected = _by_key(objects)
    seconds = _wait_for(lambda: set(_by_key(holdings(alliance, "md"))) == set(expected), timeout=30)
    assert seconds < 5, f"md waited {seconds:.1f} s while ro was down"
    errors = set()

    def failed_twice() -> bool:
        errors.add(alliance.federation.state.links()["hub->ro:alliance-indicators"].last_error_at)
        return len(errors - {None}) >= 2

    _wait_for(failed_twice, timeout=30)
    alliance.nodes["ro"] = _restart_on(ro_config, ro_port)
    seconds = _wait_for(lambda: set(_by_key(holdings(alliance, "ro"))) == set(expected), timeout=90)
    assert seconds < 4, f"ro caught up {seconds:.1f} s after it came back"
    assert _by_key(holdings(alliance, "ro")) == expected


def test_links_between_our_nodes_wake_on_commit_not_on_the_poll_interval(alliance_factory):
    alliance = alliance_factory(run_links=True, poll_interval=30)
    _wait_for(lambda: _held_at(alliance, "hub") == 1, timeout=30)
    objects = load_bundle("oasis-examples/apt1.json")[:5]
    publish(alliance, "ro", objects)
    seconds = _wait_for(
        lambda: all(len(holdings(alliance, m)) == len(objects) for m in ("hub", "ua", "md")), timeout=30
    )
    assert seconds < 5, f"a publication at ro took {seconds:.1f} s to reach every member"


def _held_at(alliance, member: str) -> int:
    return node_of(alliance.nodes[member].app).held_reads.held


def test_idle_links_make_no_requests_and_the_hub_holds_one_read_per_collection(alliance_factory):
    reference = dict(SHARED_INDICATORS, collection="strict", direction="from-hub")
    alliance = alliance_factory([SHARED_INDICATORS, reference], run_links=True, poll_interval=0.2)
    publish(alliance, "ua", load_bundle("oasis-examples/apt1.json")[:5])
    assert _wait_for(lambda: len(holdings(alliance, "md")) == 5, timeout=30) < 5
    # Six links read the hub (three members, two collections): one held read per collection serves them.
    _wait_for(lambda: [_held_at(alliance, m) for m in ("hub", "ua", "ro", "md")] == [2, 1, 1, 1], timeout=30)
    passes = {name: state.last_success for name, state in alliance.federation.state.links().items()}
    time.sleep(2)  # ten poll intervals: a polling link would have passed ten times by now
    assert {name: state.last_success for name, state in alliance.federation.state.links().items()} == passes


def test_the_hubs_deliveries_to_a_member_do_not_wake_its_link_back_to_the_hub(alliance_factory):
    alliance = alliance_factory(run_links=True, poll_interval=0.2)
    _wait_for(lambda: [_held_at(alliance, m) for m in ("hub", "ua", "ro", "md")] == [1, 1, 1, 1], timeout=30)
    passes = {name: state.last_success for name, state in alliance.federation.state.links().items()}
    publish(alliance, "ua", load_bundle("oasis-examples/apt1.json")[:5])
    _wait_for(lambda: all(len(holdings(alliance, m)) == 5 for m in ("hub", "ro", "md")), timeout=30)
    time.sleep(1)  # a woken link would have passed by now
    after = {name: state.last_success for name, state in alliance.federation.state.links().items()}
    ran = sorted(name for name in after if after[name] != passes.get(name))
    # The publication went up from ua and down to ro and md; the links from ro and md had nothing to carry.
    assert ran == [
        "hub->md:alliance-indicators",
        "hub->ro:alliance-indicators",
        "hub->ua:alliance-indicators",
        "ua->hub:alliance-indicators",
    ]


def test_a_members_link_to_the_hub_skips_the_hubs_deliveries_unread(alliance_factory):
    alliance = alliance_factory(run_links=True, poll_interval=0.2)
    objects = load_bundle("oasis-examples/apt1.json")
    _wait_for(lambda: [_held_at(alliance, m) for m in ("hub", "ua", "ro", "md")] == [1, 1, 1, 1], timeout=30)
    publish(alliance, "ua", objects[:5])
    _wait_for(lambda: all(len(holdings(alliance, m)) == 5 for m in ("hub", "ro", "md")), timeout=30)
    seen_before = alliance.federation.state.links()["ro->hub:alliance-indicators"].objects_seen
    publish(alliance, "ro", objects[5:6])
    _wait_for(lambda: all(len(holdings(alliance, m)) == 6 for m in ("hub", "ua", "md")), timeout=30)
    # ro's link read its own publication only: the source passed the five echoes before it, unread.
    link = alliance.federation.state.links()["ro->hub:alliance-indicators"]
    assert link.objects_seen - seen_before == 1


def test_sources_that_hold_no_reads_are_polled(alliance_factory):
    alliance = alliance_factory(run_links=True, poll_interval=0.2, node_settings={"max_held_reads": 0})
    objects = load_bundle("oasis-examples/apt1.json")[:5]
    publish(alliance, "ua", objects)
    seconds = _wait_for(lambda: len(holdings(alliance, "md")) == len(objects), timeout=30)
    assert seconds < 5
    assert _held_at(alliance, "hub") == 0


def _restart_on(config, port):
    """Bring a node back at the same address (the port may take a moment to be released)."""
    from taxii_federation.server.serve import start_node

    deadline = time.monotonic() + 30
    while True:
        try:
            return start_node(config, port=port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_revocation_at_the_origin_reaches_every_member_as_a_new_version(alliance_factory):
    alliance = alliance_factory()
    technique = next(o for o in load_bundle("attack/ics-attack-18.1.json") if o["type"] == "attack-pattern")
    publish(alliance, "ua", [technique])
    alliance.federation.run_once()
    revoked = dict(technique, revoked=True, modified="2026-01-01T00:00:00.000Z")
    publish(alliance, "ua", [revoked])
    alliance.federation.run_once()
    for member in ("hub", "ro", "md"):
        node = alliance.nodes[member]
        latest = requests.get(
            f"{node.url}alliance/collections/{COLLECTION_ID}/objects/{technique['id']}/",
            auth=("soc", PASSWORDS["soc"]),
            headers={"Accept": TAXII},
            timeout=30,
        ).json()["objects"]
        assert latest == [revoked], member
        assert len([o for o in holdings(alliance, member) if o["id"] == technique["id"]]) == 2
