"""Held reads (server/held_reads.py): a federation account's empty GET objects/ waits for the next commit;
everyone else gets plain TAXII at once. Runs on both storage backends."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from taxii_federation.server.config import ConfigError, load_node_config
from taxii_federation.server.node import node_of
from taxii_federation.server.serve import start_node
from tests.conftest import STRICT_ID, NodeHandle, eventually, load_bundle, write_node_files

WAIT = "X-TAXII-Fed-Wait"


def _indicator(name: str) -> dict:
    template = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    return dict(template, id=f"indicator--{uuid.uuid4()}", name=name)


def _held(node: NodeHandle) -> int:
    return node_of(node.running.app).held_reads.held


def _start_node(folder: Path, storage_url: str, **settings) -> NodeHandle:
    """A node whose config differs from the test node's by `settings`."""
    path = write_node_files(folder, storage_url=storage_url)
    data = yaml.safe_load(path.read_text())
    data.update(settings)
    path.write_text(yaml.safe_dump(data))
    return NodeHandle(start_node(load_node_config(path)), path)


def _last_added(node: NodeHandle) -> str:
    """The collection's newest date_added, as a mirror's checkpoint would hold it."""
    response = node.session("cert").get(node.objects_url(), params={"limit": 1000})
    return response.headers["X-TAXII-Date-Added-Last"]


def test_a_mirrors_empty_read_is_held_until_a_commit_and_answered_with_it(node):
    node.post([_indicator("before")])
    checkpoint = _last_added(node)
    mirror = node.session("mirror")
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            mirror.get,
            node.objects_url(),
            params={"added_after": checkpoint},
            headers={WAIT: "20"},
            timeout=60,
        )
        eventually(lambda: _held(node) == 1)
        fresh = _indicator("after")
        published = time.monotonic()
        node.post([fresh])
        response = held.result(timeout=30)
        answered = time.monotonic() - published
    assert response.status_code == 200
    assert [o["id"] for o in response.json()["objects"]] == [fresh["id"]]
    assert response.headers[WAIT] == "20"
    assert answered < 5, f"the held read answered {answered:.1f} s after the commit"
    assert _held(node) == 0


def test_a_held_read_that_sees_no_commit_ends_as_an_empty_taxii_page(node):
    started = time.monotonic()
    response = node.session("mirror").get(node.objects_url(), headers={WAIT: "1"}, timeout=30)
    assert time.monotonic() - started >= 0.9
    assert response.status_code == 200
    assert response.json() == {"more": False}
    assert response.headers[WAIT] == "1"
    assert "X-TAXII-Date-Added-Last" not in response.headers


def test_standard_accounts_get_plain_taxii_at_once_whatever_they_send(node):
    started = time.monotonic()
    response = node.session("soc").get(node.objects_url(), headers={WAIT: "20"}, timeout=30)
    assert time.monotonic() - started < 5
    assert response.json() == {"more": False}
    assert WAIT not in response.headers


def test_a_read_with_news_is_answered_at_once_without_the_header(node):
    node.post([_indicator("present")])
    started = time.monotonic()
    response = node.session("mirror").get(node.objects_url(), headers={WAIT: "20"}, timeout=30)
    assert time.monotonic() - started < 5
    assert len(response.json()["objects"]) == 1
    assert WAIT not in response.headers


def test_beyond_max_held_reads_a_read_is_answered_at_once_and_normal_requests_are_served(
    tmp_path, storage_url
):
    node = _start_node(tmp_path / "bounded", storage_url, max_held_reads=2)
    try:
        _at_most_two_held(node)
    finally:
        node.stop()


def _at_most_two_held(node: NodeHandle) -> None:
    mirror_sessions = [node.session("mirror") for _ in range(3)]
    with ThreadPoolExecutor(2) as pool:
        held = [
            pool.submit(s.get, node.objects_url(), headers={WAIT: "20"}, timeout=60)
            for s in mirror_sessions[:2]
        ]
        eventually(lambda: _held(node) == 2)
        started = time.monotonic()
        declined = mirror_sessions[2].get(node.objects_url(), headers={WAIT: "20"}, timeout=30)
        assert declined.headers[WAIT] == "0" and declined.json() == {"more": False}
        assert node.session("soc").get(node.collection_url(), timeout=30).status_code == 200
        assert time.monotonic() - started < 5
        node.post([_indicator("wakes both")])
        assert all(len(future.result(timeout=30).json()["objects"]) == 1 for future in held)


def test_a_held_read_leaves_the_password_check_to_other_logins(node):
    # One password check at a time (login_throttle.concurrent_checks defaults to 1): a mirror's first,
    # still unverified login that is then held must not keep every other login waiting.
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(node.session("mirror").get, node.objects_url(), headers={WAIT: "20"}, timeout=60)
        eventually(lambda: _held(node) == 1)
        started = time.monotonic()
        response = node.session("soc").get(node.collection_url(), timeout=30)
        answered = time.monotonic() - started
        node.post([_indicator("ends the hold")])
        assert held.result(timeout=30).status_code == 200
    assert response.status_code == 200
    assert answered < 2, f"a new login waited {answered:.1f} s behind a held read"


def test_stopping_a_node_answers_its_held_reads_at_once(tmp_path, storage_url):
    node = _start_node(tmp_path / "stopping", storage_url)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(node.session("mirror").get, node.objects_url(), headers={WAIT: "60"}, timeout=90)
        eventually(lambda: _held(node) == 1)
        started = time.monotonic()
        node.stop()
        response = held.result(timeout=30)
    assert time.monotonic() - started < 10
    assert response.json() == {"more": False}


def test_a_commit_through_another_node_process_on_the_same_store_wakes_a_held_read(node, tmp_path):
    # A second node on the same store has its own commit notifications, as another process would.
    storage = yaml.safe_load(node.config_path.read_text())["storage"]
    other = _start_node(tmp_path / "other", storage)
    try:
        with ThreadPoolExecutor(1) as pool:
            mirror = node.session("mirror")
            held = pool.submit(mirror.get, node.objects_url(), headers={WAIT: "20"}, timeout=60)
            eventually(lambda: _held(node) == 1)
            fresh = _indicator("from the other process")
            published = time.monotonic()
            other.post([fresh])
            response = held.result(timeout=30)
            answered = time.monotonic() - published
    finally:
        other.stop()
    assert [o["id"] for o in response.json()["objects"]] == [fresh["id"]]
    assert answered < 5, f"seen {answered:.1f} s after the other process's commit"


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_wait_that_is_not_a_number_of_seconds_is_a_taxii_400(node, value):
    response = node.session("mirror").get(node.objects_url(), headers={WAIT: value}, timeout=30)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/taxii+json")
    assert WAIT in response.json()["description"]


def test_max_held_reads_above_half_the_threads_is_refused_with_the_key(tmp_path):
    path = write_node_files(tmp_path)
    data = yaml.safe_load(path.read_text())
    data.update(threads=8, max_held_reads=5)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"max_held_reads: must be between 0 .* \(4\), got 5"):
        load_node_config(path)


def test_a_commit_to_another_collection_leaves_a_held_read_waiting(node):
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(node.session("mirror").get, node.objects_url(), headers={WAIT: "2"}, timeout=60)
        eventually(lambda: _held(node) == 1)
        node.post([_indicator("elsewhere")], collection_id=STRICT_ID)
        response = held.result(timeout=30)
    assert response.json() == {"more": False}
    assert response.headers[WAIT] == "2"


NOT_NEWS = "X-TAXII-Fed-Not-News"
PASSED = "X-TAXII-Fed-Passed"
HUB_DELIVERY = "hub->test:alliance-indicators"


def _deliver_from_hub(node: NodeHandle, objects: list[dict]) -> None:
    """Objects as the hub's mirror delivers them to this node: through the link hub->test."""
    response = node.session("mirror").post(
        node.objects_url(),
        json={"objects": objects},
        headers={
            "Content-Type": "application/taxii+json;version=2.1",
            "X-TAXII-Fed-Origin": "ua",
            "X-TAXII-Fed-Link": HUB_DELIVERY,
        },
    )
    assert response.status_code == 202, response.text


def test_deliveries_a_mirror_calls_not_news_keep_its_read_held_until_an_object_that_is(node):
    # A member's watch for its link to the hub: what the hub delivered here would only go back to the hub.
    node.post([_indicator("before")])
    checkpoint = _last_added(node)
    headers = {WAIT: "20", NOT_NEWS: f"hub, {HUB_DELIVERY}"}
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            node.session("mirror").get,
            node.objects_url(),
            params={"added_after": checkpoint, "limit": 100},
            headers=headers,
            timeout=60,
        )
        eventually(lambda: _held(node) == 1)
        _deliver_from_hub(node, [_indicator("from the hub")])
        echo_added = _last_added(node)
        time.sleep(0.5)  # the commit woke the read, which looked and held on
        assert _held(node) == 1 and not held.done()
        fresh = _indicator("published here")
        node.post([fresh])
        response = held.result(timeout=30)
    # Answered from past the echo, and how far it was passed, so the mirror's checkpoint skips it unread.
    assert [o["name"] for o in response.json()["objects"]] == ["published here"]
    assert response.headers[PASSED] == echo_added


def test_more_than_a_page_of_what_is_not_news_keeps_the_read_held_until_news_follows_it(node):
    # The hub delivering a burst to this member: the member's watch is not woken for it, only for news,
    # which may come after more echoes than one page holds.
    node.post([_indicator("before")])
    checkpoint = _last_added(node)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            node.session("mirror").get,
            node.objects_url(),
            params={"added_after": checkpoint, "limit": 2},
            headers={WAIT: "20", NOT_NEWS: HUB_DELIVERY},
            timeout=60,
        )
        eventually(lambda: _held(node) == 1)
        _deliver_from_hub(node, [_indicator(name) for name in ("one", "two", "three")])
        _deliver_from_hub(node, [_indicator("four")])
        echo_added = _last_added(node)
        time.sleep(0.5)  # both commits woke the read, which looked past them and held on
        assert _held(node) == 1 and not held.done()
        started = time.monotonic()
        node.post([_indicator("news")])
        response = held.result(timeout=30)
    assert time.monotonic() - started < 5
    assert [o["name"] for o in response.json()["objects"]] == ["news"]
    assert response.headers[PASSED] == echo_added


def test_news_behind_more_than_a_page_of_what_is_not_news_is_answered_at_once(node):
    node.post([_indicator("before")])
    checkpoint = _last_added(node)
    _deliver_from_hub(node, [_indicator(name) for name in ("one", "two", "three")])
    echo_added = _last_added(node)
    node.post([_indicator("news")])
    started = time.monotonic()
    response = node.session("mirror").get(
        node.objects_url(),
        params={"added_after": checkpoint, "limit": 2},
        headers={WAIT: "20", NOT_NEWS: HUB_DELIVERY},
        timeout=60,
    )
    assert time.monotonic() - started < 5
    assert [o["name"] for o in response.json()["objects"]] == ["news"]
    assert response.headers[PASSED] == echo_added


def test_a_held_read_that_saw_only_what_is_not_news_says_how_far_when_the_time_is_up(node):
    node.post([_indicator("before")])
    checkpoint = _last_added(node)
    _deliver_from_hub(node, [_indicator("from the hub")])
    echo_added = _last_added(node)
    started = time.monotonic()
    response = node.session("mirror").get(
        node.objects_url(),
        params={"added_after": checkpoint},
        headers={WAIT: "1", NOT_NEWS: HUB_DELIVERY},
        timeout=30,
    )
    assert time.monotonic() - started >= 0.9  # held: nothing in it is news
    assert response.json() == {"more": False}
    assert response.headers[PASSED] == echo_added  # so the checkpoint moves past the echo unread
    assert response.headers[WAIT] == "1"
