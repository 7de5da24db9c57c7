"""Nothing is learned without a grant, and guessing passwords does not pay: status resources belong to their
poster, a write-only user cannot probe objects through DELETE (TAXII 2.1 §5.7), an unknown user costs the
same password check as a known one, and failed logins lock out a user or an address for a while."""

import concurrent.futures
import statistics
import time

import pytest
import requests

from tests.conftest import PASSWORDS, TAXII, load_bundle

OBJECT = load_bundle("oasis-examples/apt1.json")[0]


@pytest.fixture
def storage_url(tmp_path) -> str:
    return f"sqlite:{tmp_path / 'node.db'}"


def _get(node, path: str, auth: tuple[str, str]) -> requests.Response:
    return requests.get(node.url + path, auth=auth, headers={"Accept": TAXII}, timeout=30)


def test_a_status_is_readable_by_its_poster_and_node_admins_only(node):
    status_id = node.post([OBJECT], user="writer")["id"]
    path = f"alliance/status/{status_id}/"
    assert _get(node, path, ("writer", PASSWORDS["writer"])).json()["success_count"] == 1
    assert _get(node, path, ("admin", PASSWORDS["admin"])).status_code == 200
    for other in ("cert", "soc", "mirror"):
        response = _get(node, path, (other, PASSWORDS[other]))
        assert response.status_code == 404, other
        assert OBJECT["id"] not in response.text and "9a0f6b1e" not in response.text  # no collection named


def test_a_write_only_user_gets_403_on_delete_and_the_object_stays(node):
    node.post([OBJECT])
    url = node.objects_url() + OBJECT["id"] + "/"
    for object_url in (url, node.objects_url() + "indicator--00000000-0000-4000-8000-000000000000/"):
        response = node.session("writer").delete(object_url)
        assert response.status_code == 403  # the same for an object that exists and one that does not
    assert node.session("soc").get(url).json()["objects"][0]["id"] == OBJECT["id"]


def _login_seconds(node, user: str, password: str, rounds: int = 7) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert _get(node, "taxii2/", (user, password)).status_code == 401
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def test_timing_does_not_tell_an_unknown_user_from_a_known_one(node_factory):
    node = node_factory(login_throttle={"max_failures": 1000})
    known = _login_seconds(node, "cert", "wrong-password")
    unknown = _login_seconds(node, "no-such-user", "wrong-password")
    # Without the dummy check an unknown user is answered ~40 ms (one scrypt) sooner: a ratio near 0.05.
    assert 0.5 < unknown / known < 2, (known, unknown)


def test_failed_logins_lock_out_the_user_and_the_address_without_checking_passwords(node_factory):
    node = node_factory(login_throttle={"max_failures": 3, "lockout_seconds": 6})
    verified = node.session("soc")
    assert verified.get(node.url + "taxii2/").status_code == 200  # soc logged in before the guessing
    for _ in range(3):
        assert _get(node, "taxii2/", ("cert", "guess")).status_code == 401
    locked = _get(node, "taxii2/", ("cert", PASSWORDS["cert"]))
    assert locked.status_code == 429 and locked.headers["Content-Type"] == TAXII
    assert 1 <= int(locked.headers["Retry-After"]) <= 6
    assert "too many failed logins" in locked.json()["description"]
    # The address is locked too: a first login of another user from it waits as well...
    assert _get(node, "taxii2/", ("writer", PASSWORDS["writer"])).status_code == 429
    # ...but a client whose credentials were verified before is served as usual.
    assert verified.get(node.url + "taxii2/").status_code == 200
    # Locked-out guesses are held on the node's event loop and answered late, without a password check or a
    # worker: twenty at once do not delay a verified client.
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        started = time.perf_counter()
        guesses = [pool.submit(_get, node, "taxii2/", ("cert", "guess")) for _ in range(20)]
        time.sleep(0.3)
        served = time.perf_counter()
        assert verified.get(node.url + "taxii2/").status_code == 200
        assert time.perf_counter() - served < 1.0
        assert {guess.result().status_code for guess in guesses} == {429}
        assert time.perf_counter() - started >= 1.5  # each guess was held before its answer
    deadline = time.monotonic() + 10
    while _get(node, "taxii2/", ("cert", PASSWORDS["cert"])).status_code == 429:
        assert time.monotonic() < deadline, "the lockout did not end"
        time.sleep(0.2)
    assert _get(node, "taxii2/", ("cert", PASSWORDS["cert"])).status_code == 200
