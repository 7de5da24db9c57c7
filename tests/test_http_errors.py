"""Content negotiation, body limits and error bodies (TAXII 2.1 §1.6.8, §3.6): never HTML, never a 500."""

import base64
import json
import socket

import pytest
import requests

from tests.conftest import PASSWORDS, TAXII, load_bundle


@pytest.mark.parametrize(
    "accept",
    [
        TAXII,
        "application/taxii+json",
        "application/taxii+json; version=2.1; q=0.9, text/html;q=0.1",
        "*/*",
        "application/*",
        "text/html;q=0.5, application/taxii+json;q=0.8",
    ],
)
def test_accept_headers_that_allow_taxii_21_are_served(node, accept):
    response = node.session().get(node.url + "taxii2/", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == TAXII


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/taxii+json;version=2.0", "application/xml", "application/taxii+json;q=0"],
)
def test_accept_headers_that_exclude_taxii_21_get_406(node, accept):
    response = node.session().get(node.url + "taxii2/", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.headers["Content-Type"] == TAXII
    assert response.json()["http_status"] == "406"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/stix+json;version=2.1", "application/taxii+json;version=2.0", None],
)
def test_post_with_another_content_type_gets_415(node, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = node.session().post(node.objects_url(), data=json.dumps({"objects": []}), headers=headers)
    assert response.status_code == 415
    assert response.json()["title"] == "Unsupported Media Type"


def test_post_without_version_parameter_is_accepted(node):
    objects = load_bundle("oasis-examples/apt1.json")[:2]
    response = node.session().post(
        node.objects_url(),
        data=json.dumps({"objects": objects}),
        headers={"Content-Type": "application/taxii+json"},
    )
    assert response.status_code == 202 and response.json()["success_count"] == 2


def test_a_body_above_max_content_length_gets_413_before_it_is_read(node_factory):
    node = node_factory(max_content_length=10_000)
    host, port = node.running.server.bind_addr[:2]
    credentials = base64.b64encode(f"cert:{PASSWORDS['cert']}".encode()).decode()
    head = (
        f"POST /alliance/collections/{node.objects_url().split('/collections/')[1]} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAuthorization: Basic {credentials}\r\nAccept: {TAXII}\r\n"
        f"Content-Type: {TAXII}\r\nContent-Length: 50000000\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(head.encode())  # the 50 MB body is never sent
        received = b""
        for _ in range(100):  # the node closes the connection after its answer
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    reply = received.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413")
    assert '"http_status": "413"' in reply


def test_a_chunked_body_above_max_content_length_gets_413(node_factory):
    node = node_factory(max_content_length=10_000)
    objects = load_bundle("oasis-examples/apt1.json")
    chunks = iter([json.dumps({"objects": objects}).encode()])
    response = node.session().post(node.objects_url(), data=chunks, headers={"Content-Type": TAXII})
    assert response.status_code == 413
    assert node.session().get(node.objects_url()).json() == {"more": False}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"[]", 422),
        (b'{"objects": 5}', 422),
        (b'"text"', 422),
    ],
)
def test_malformed_envelopes_get_400_or_422_and_store_nothing(node, body, status):
    response = node.session().post(node.objects_url(), data=body, headers={"Content-Type": TAXII})
    assert response.status_code == status
    assert response.json()["http_status"] == str(status)
    assert node.session().get(node.objects_url()).json() == {"more": False}


def test_unknown_paths_and_methods_answer_with_taxii_errors(node):
    session = node.session()
    missing = session.get(node.url + "no-such-root/collections/")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == TAXII
    wrong_method = session.put(node.objects_url(), data="{}")
    assert wrong_method.status_code == 405 and wrong_method.json()["http_status"] == "405"
    unknown_collection = session.get(node.url + "alliance/collections/not-a-collection/objects/")
    assert (
        unknown_collection.status_code == 404
        and "not-a-collection" in unknown_collection.json()["description"]
    )


def test_unauthenticated_requests_get_401_with_www_authenticate(node):
    response = requests.get(node.url + "taxii2/", headers={"Accept": TAXII}, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.json()["title"] == "Unauthorized"
