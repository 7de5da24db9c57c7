"""The node's HTTP layer against slow and hostile clients: idle, half-sent and silent connections cost no
worker, TLS handshakes have a deadline off the accept path, and every limit answers with a TAXII error."""

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from taxii_federation.clients.federation.pki import LocalCA
from taxii_federation.server.config import load_node_config
from taxii_federation.server.http_server import HTTPServer
from taxii_federation.server.serve import RunningNode, build_server, start_node
from tests.conftest import COLLECTION_ID, PASSWORDS, TAXII, write_node_files

SOCKETS = 200
# Generous against a loaded 2-core machine; a worker held by a slow client would cost seconds.
ANSWER_SECONDS = 1.0


@pytest.fixture(autouse=True)
def _no_ca_bundle_from_the_environment(monkeypatch):
    # requests lets these variables override a Session's own `verify` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def pki(tmp_path) -> LocalCA:
    return LocalCA.create(tmp_path / "pki")


def _config(tmp_path: Path, pki: LocalCA | None = None, **extra):
    if pki is not None:
        server = pki.issue_server(tmp_path / "pki", "node", ["127.0.0.1", "localhost"])
        extra["tls"] = {"cert": str(server.cert), "key": str(server.key), **extra.get("tls", {})}
    path = write_node_files(tmp_path / "node", storage_url=f"sqlite:{tmp_path / 'node.db'}", **extra)
    return load_node_config(path)


@pytest.fixture
def started(tmp_path) -> Iterator:
    nodes: list[RunningNode] = []

    def start(config) -> RunningNode:
        nodes.append(start_node(config))
        return nodes[-1]

    yield start
    for node in nodes:
        node.stop()


def _timed_get(node: RunningNode, pki: LocalCA | None = None) -> float:
    started = time.perf_counter()
    response = requests.get(
        f"{node.url}alliance/collections/{COLLECTION_ID}/objects/",
        auth=("soc", PASSWORDS["soc"]),
        headers={"Accept": TAXII},
        verify=str(pki.files.cert) if pki else True,
        timeout=10,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed


def _connect(node: RunningNode, pki: LocalCA | None = None) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    if pki is None:
        return raw
    context = ssl.create_default_context(cafile=str(pki.files.cert))
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _read_until_closed(connection: socket.socket, seconds: float = 10) -> bytes:
    connection.settimeout(seconds)
    received = b""
    with contextlib.suppress(ConnectionResetError, ssl.SSLError):
        for _ in range(1000):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


SLOW_STARTS = {
    "idle": b"",
    "half-sent header": b"GET /taxii2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/taxii+json",
    "half-sent body": (
        f"POST /alliance/collections/{COLLECTION_ID}/objects/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {TAXII}\r\nContent-Length: 100000\r\n\r\n"
        '{"objects": ['
    ).encode(),
}


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("kind", list(SLOW_STARTS))
def test_slow_clients_do_not_delay_a_normal_request(tmp_path, started, pki, scheme, kind):
    # Four workers: under a server where a waiting connection holds a worker, the fifth would wait.
    node = started(_config(tmp_path, pki if scheme == "https" else None, threads=4))
    tls = pki if scheme == "https" else None
    slow = []
    try:
        for _ in range(SOCKETS):
            connection = _connect(node, tls)
            connection.sendall(SLOW_STARTS[kind])
            slow.append(connection)
        assert _timed_get(node, tls) < ANSWER_SECONDS
        assert _timed_get(node, tls) < ANSWER_SECONDS
    finally:
        for connection in slow:
            connection.close()


def test_silent_and_half_finished_tls_handshakes_do_not_block_new_clients(tmp_path, started, pki):
    node = started(_config(tmp_path, pki, threads=4))
    client_hello_start = bytes.fromhex("16030100c8010000c40303") + b"\x00" * 16  # a ClientHello, cut short
    stalled = []
    try:
        for index in range(SOCKETS):
            connection = socket.create_connection(("127.0.0.1", node.port), timeout=10)
            if index % 2:
                connection.sendall(client_hello_start)
            stalled.append(connection)
        assert _timed_get(node, pki) < ANSWER_SECONDS
    finally:
        for connection in stalled:
            connection.close()


def test_a_handshake_that_never_finishes_is_dropped_at_its_deadline(tmp_path, started, pki):
    node = started(_config(tmp_path, pki, tls={"handshake_seconds": 1}))
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as connection:
        started_at = time.monotonic()
        assert _read_until_closed(connection) == b""
        assert time.monotonic() - started_at < 5


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused(tmp_path, started, pki):
    node = started(_config(tmp_path, pki))
    context = ssl.create_default_context(cafile=str(pki.files.cert))
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass


def _refusal(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/taxii+json")
    body = response.json()
    assert body["http_status"] == str(status)
    return body


def test_headers_above_the_limits_get_431_with_a_taxii_error(tmp_path, started):
    node = started(_config(tmp_path, limits={"header_bytes": 8192, "headers": 20}))
    url = f"{node.url}taxii2/"
    large = requests.get(url, headers={"X-Large": "a" * 20_000}, timeout=10)
    assert "limits.header_bytes" in _refusal(large, 431)["description"]
    many = requests.get(url, headers={f"X-Header-{n}": "x" for n in range(30)}, timeout=10)
    _refusal(many, 431)
    huge = requests.get(url, headers={"X-Huge": "a" * 4_000_000}, timeout=10)  # one line the parser holds
    _refusal(huge, 431)
    assert _timed_get(node) < ANSWER_SECONDS


def test_a_request_line_above_the_limit_gets_414(tmp_path, started):
    node = started(_config(tmp_path, limits={"request_line_bytes": 2048}))
    ids = ",".join(f"indicator--{n:036d}" for n in range(100))
    response = requests.get(
        f"{node.url}alliance/collections/{COLLECTION_ID}/objects/",
        params={"match[id]": ids},
        auth=("soc", PASSWORDS["soc"]),
        headers={"Accept": TAXII},
        timeout=10,
    )
    assert "limits.request_line_bytes" in _refusal(response, 414)["description"]


def test_malformed_requests_get_400_with_a_taxii_error(tmp_path, started):
    node = started(_config(tmp_path))
    with _connect(node) as connection:
        connection.sendall(
            b"GET /taxii2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        )
        reply = _read_until_closed(connection).decode()
    assert reply.startswith("HTTP/1.1 400 ")
    assert '"http_status": "400"' in reply


def test_an_idle_keep_alive_connection_is_closed_after_keep_alive_seconds(tmp_path, started):
    node = started(_config(tmp_path, limits={"keep_alive_seconds": 1}))
    with _connect(node) as connection:
        connection.sendall(b"GET /taxii2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started_at = time.monotonic()
        reply = _read_until_closed(connection)
        assert reply.startswith(b"HTTP/1.1 401 ")  # answered, kept open, then closed when idle
        assert 0.5 < time.monotonic() - started_at < 5


def test_a_request_not_finished_in_request_seconds_gets_408(tmp_path, started):
    node = started(_config(tmp_path, limits={"request_seconds": 1}))
    with _connect(node) as connection:
        connection.sendall(b"GET /taxii2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing
        started_at = time.monotonic()
        for _ in range(3):  # trickling bytes does not extend the deadline
            time.sleep(0.3)
            connection.sendall(b"X-Slow: 1\r\n")
        reply = _read_until_closed(connection).decode()
        assert reply.startswith("HTTP/1.1 408 ")
        assert '"http_status": "408"' in reply
        assert time.monotonic() - started_at < 5


def test_pipelined_requests_are_answered_in_order(tmp_path, started):
    node = started(_config(tmp_path))
    request = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {taxii}\r\n{close}\r\n"
    pipeline = request.format(path="/taxii2/", taxii=TAXII, close="") + request.format(
        path="/no-such-path/", taxii=TAXII, close="Connection: close\r\n"
    )
    with _connect(node) as connection:
        connection.sendall(pipeline.encode())
        reply = _read_until_closed(connection).decode()
    assert reply.count("HTTP/1.1 ") == 2
    assert reply.index("HTTP/1.1 401 ") < reply.index('"http_status": "401"')


def test_expect_100_continue_gets_continue_before_the_body(tmp_path, started):
    node = started(_config(tmp_path))
    body = json.dumps({"objects": []}).encode()
    head = (
        f"POST /alliance/collections/{COLLECTION_ID}/objects/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Accept: {TAXII}\r\nContent-Type: {TAXII}\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n"
    )
    with _connect(node) as connection:
        connection.sendall(head.encode())
        assert connection.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.sendall(body)
        assert _read_until_closed(connection).startswith(b"HTTP/1.1 401 ")


def test_a_chunked_post_is_stored(tmp_path, started):
    node = started(_config(tmp_path))
    indicator = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
    }
    response = requests.post(
        f"{node.url}alliance/collections/{COLLECTION_ID}/objects/",
        data=iter([json.dumps({"objects": [indicator]}).encode()]),  # no Content-Length: chunked
        auth=("cert", PASSWORDS["cert"]),
        headers={"Accept": TAXII, "Content-Type": TAXII},
        timeout=10,
    )
    assert response.status_code == 202 and response.json()["success_count"] == 1


def test_requests_that_hold_workers_leave_the_others_served(tmp_path):
    """What issue-15's long-poll does to a worker: hold it while the app waits. With `threads` above the
    number held, everyone else is still answered."""
    config = _config(tmp_path, threads=4)
    release = threading.Event()
    node_app = None

    def holding_app(environ, start_response):
        if environ["PATH_INFO"] == "/hold/":
            release.wait(20)
            start_response("204 No Content", [])
            return [b""]
        return node_app(environ, start_response)

    from taxii_federation.server.app import create_app

    node_app = create_app(config)
    server: HTTPServer = build_server(config, holding_app)
    server.start()
    node = RunningNode(config, node_app, server)
    held = [_connect(node) for _ in range(3)]
    try:
        for connection in held:
            connection.sendall(b"GET /hold/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.2)  # let the three reach their workers
        assert _timed_get(node) < ANSWER_SECONDS
    finally:
        release.set()
        for connection in held:
            assert connection.recv(100).startswith(b"HTTP/1.1 204 ")
            connection.close()
        node.stop()


def test_stop_ends_open_connections_at_once(tmp_path):
    node = start_node(_config(tmp_path))
    idle = [_connect(node) for _ in range(20)]
    started_at = time.monotonic()
    node.stop()
    assert time.monotonic() - started_at < 3
    for connection in idle:
        assert _read_until_closed(connection, 5) == b""
        connection.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{node.url}taxii2/", timeout=5)
