"""Every endpoint against every kind of caller: anonymous, wrong password, no grant, read-only,
write-only and read-write (TAXII 2.1 §5: no grant is 404, a grant without the needed right is 403; §5.7:
DELETE needs read and write). The status resource is the poster's (here 'cert', the read-write caller):
nobody else learns from it what went into a collection."""

import json

import pytest
import requests

from tests.conftest import PASSWORDS, TAXII, load_bundle

OBJECT = load_bundle("oasis-examples/apt1.json")[0]
CALLERS = {
    "anonymous": None,
    "wrong-password": ("cert", "not-the-password"),
    "no-grant": ("nogrant", PASSWORDS["nogrant"]),
    "read-only": ("soc", PASSWORDS["soc"]),
    "write-only": ("writer", PASSWORDS["writer"]),
    "read-write": ("cert", PASSWORDS["cert"]),
}
# endpoint -> expected status per caller, in the order of CALLERS
EXPECTED = {
    "discovery": (401, 401, 200, 200, 200, 200),
    "api_root": (401, 401, 404, 200, 200, 200),
    "collections": (401, 401, 404, 200, 200, 200),
    "collection": (401, 401, 404, 200, 200, 200),
    "get_objects": (401, 401, 404, 200, 403, 200),
    "post_objects": (401, 401, 404, 403, 202, 202),
    "get_object": (401, 401, 404, 200, 403, 200),
    "versions": (401, 401, 404, 200, 403, 200),
    "manifest": (401, 401, 404, 200, 403, 200),
    "status": (401, 401, 404, 404, 404, 200),
    "delete_object": (401, 401, 404, 403, 403, 200),
}


def _request(node, endpoint: str, status_id: str) -> tuple[str, str, bytes | None]:
    objects, object_url = node.objects_url(), node.objects_url() + OBJECT["id"] + "/"
    body = json.dumps({"objects": [OBJECT]}).encode()
    return {
        "discovery": ("GET", node.url + "taxii2/", None),
        "api_root": ("GET", node.url + "alliance/", None),
        "collections": ("GET", node.url + "alliance/collections/", None),
        "collection": ("GET", node.collection_url(), None),
        "get_objects": ("GET", objects, None),
        "post_objects": ("POST", objects, body),
        "get_object": ("GET", object_url, None),
        "versions": ("GET", object_url + "versions/", None),
        "manifest": ("GET", node.collection_url() + "manifest/", None),
        "status": ("GET", node.url + f"alliance/status/{status_id}/", None),
        "delete_object": ("DELETE", object_url, None),
    }[endpoint]


@pytest.mark.parametrize("endpoint", list(EXPECTED))
def test_auth_matrix(node, endpoint):
    for caller, expected in zip(CALLERS, EXPECTED[endpoint], strict=True):
        status_id = node.post([OBJECT])["id"]  # (re)creates the object each round
        method, url, body = _request(node, endpoint, status_id)
        response = requests.request(
            method,
            url,
            data=body,
            auth=CALLERS[caller],
            headers={"Accept": TAXII, "Content-Type": TAXII},
            timeout=30,
        )
        assert response.status_code == expected, (
            f"{caller} on {endpoint}: {response.status_code} {response.text}"
        )
        if expected >= 400:
            error = response.json()
            assert error["http_status"] == str(expected)
            # Nothing about the object leaks into an error.
            assert OBJECT["id"] not in response.text or expected == 404


def test_a_user_without_read_learns_nothing_about_objects(node):
    node.post([OBJECT])
    for user in ("writer", "nogrant"):
        response = node.session(user).get(node.collection_url() + "manifest/")
        assert response.status_code in (403, 404)
        assert OBJECT["id"] not in response.text
