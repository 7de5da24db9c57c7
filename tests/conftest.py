"""Real nodes on 127.0.0.1 with ephemeral ports and SQLite files on disk, driven by real clients."""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import requests
import yaml

from taxii_federation.server.auth import hash_password
from taxii_federation.server.config import load_node_config
from taxii_federation.server.serve import RunningNode, start_node
from tests.mongodb_server import MongoTestServer
from tests.processes import free_port

DATA = Path(__file__).parent / "data"
TAXII = "application/taxii+json;version=2.1"
HEADERS = {"Accept": TAXII, "Content-Type": TAXII}

COLLECTION_ID = "9a0f6b1e-5a54-4c3e-8a52-4f6f0e4d2a01"  # alliance-indicators, read-write for 'cert'
STRICT_ID = "9a0f6b1e-5a54-4c3e-8a52-4f6f0e4d2a02"  # no custom content allowed
SECRET_ID = "9a0f6b1e-5a54-4c3e-8a52-4f6f0e4d2a03"  # in the 'national' API root
PASSWORDS = {
    "cert": "cert-pass",
    "soc": "soc-pass",
    "writer": "writer-pass",
    "nogrant": "nogrant-pass",
    "mirror": "mirror-pass",
    "ops": "ops-pass",
    "admin": "admin-pass",
}


@cache
def _password_hash(password: str) -> str:
    return hash_password(password)


def eventually(predicate: Callable, seconds: float = 10, what: str = "the condition", interval: float = 0.05):
    """Poll `predicate` until it returns something true and return that; fail after `seconds`. For what a
    node applies on its own time (reloaded files, link passes), never as a sleep between two steps."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {seconds:g} s")
        time.sleep(interval)


def load_bundle(relative: str) -> list[dict]:
    return json.loads((DATA / relative).read_text(encoding="utf-8"))["objects"]


def write_node_files(
    folder: Path,
    name: str = "test",
    max_content_length: int = 10 * 1024 * 1024,
    max_page_size: int = 1000,
    validation_workers: int = 0,
    storage_url: str | None = None,
    extra_collections: list[dict] | None = None,
    **settings,
) -> Path:
    """A node config and catalogue; `extra_collections` go into the 'alliance' API root, `settings` are
    further top-level keys of the node config."""
    catalogue = {
        "default_api_root": "alliance",
        "api_roots": {
            "alliance": {
                "title": "Alliance",
                "max_content_length": max_content_length,
                "collections": [
                    {"id": COLLECTION_ID, "alias": "alliance-indicators", "title": "Alliance indicators"},
                    {"id": STRICT_ID, "alias": "strict", "title": "Strict STIX only", "allow_custom": False},
                    *(extra_collections or []),
                ],
            },
            "national": {
                "title": "National",
                "max_content_length": max_content_length,
                "collections": [
                    {"id": SECRET_ID, "alias": "national-incidents", "title": "National incidents"}
                ],
            },
        },
    }

    def user(password: str, grants: list[dict], roles: list[str] | None = None) -> dict:
        entry = {"password_hash": _password_hash(password), "grants": grants}
        if roles:
            entry["roles"] = roles
        return entry

    config = {
        "node": {"name": name, "title": f"Test node {name}"},
        "listen": {"host": "127.0.0.1", "port": 0},
        "storage": storage_url or f"sqlite:{folder / 'node.db'}",
        "catalogue": "catalogue.yaml",
        "max_page_size": max_page_size,
        "threads": 12,
        # Inline validation keeps each test node to one process; test_objects covers the worker pool.
        "validation_workers": validation_workers,
        "logs": {"access": "access.log", "audit": "audit.log"},
        "users": {
            "cert": user(
                PASSWORDS["cert"],
                [
                    {"api_root": "alliance", "collections": "*", "access": "read-write"},
                    {"api_root": "national", "collections": "*", "access": "read-write"},
                ],
            ),
            "soc": user(PASSWORDS["soc"], [{"api_root": "alliance", "collections": "*", "access": "read"}]),
            "writer": user(
                PASSWORDS["writer"],
                [{"api_root": "alliance", "collections": ["alliance-indicators"], "access": "write"}],
            ),
            "nogrant": user(PASSWORDS["nogrant"], []),
            "mirror": user(
                PASSWORDS["mirror"],
                [
                    {
                        "api_root": "alliance",
                        "collections": ["alliance-indicators", "strict"],
                        "access": "read-write",
                    }
                ],
                roles=["federation"],
            ),
            "ops": user(PASSWORDS["ops"], [], roles=["operator"]),
            "admin": user(
                PASSWORDS["admin"],
                [{"api_root": "alliance", "collections": "*", "access": "read"}],
                roles=["admin"],
            ),
        },
        **settings,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalogue.yaml").write_text(yaml.safe_dump(catalogue))
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class NodeHandle:
    """A running test node with URL helpers and an authenticated requests session per user."""

    running: RunningNode
    config_path: Path

    @property
    def url(self) -> str:
        return self.running.url

    def collection_url(self, collection_id: str = COLLECTION_ID, api_root: str = "alliance") -> str:
        return f"{self.url}{api_root}/collections/{collection_id}/"

    def objects_url(self, collection_id: str = COLLECTION_ID) -> str:
        return self.collection_url(collection_id) + "objects/"

    def session(self, user: str = "cert") -> requests.Session:
        session = requests.Session()
        session.auth = (user, PASSWORDS[user])
        session.headers.update({"Accept": TAXII})
        return session

    def post(self, objects: list[dict], collection_id: str = COLLECTION_ID, user: str = "cert") -> dict:
        response = self.session(user).post(
            self.objects_url(collection_id),
            data=json.dumps({"objects": objects}),
            headers={"Content-Type": TAXII},
        )
        assert response.status_code == 202, response.text
        return response.json()

    def restart(self) -> None:
        self.running.stop()
        self.running = start_node(load_node_config(self.config_path))

    def stop(self) -> None:
        self.running.stop()


@pytest.fixture(scope="session")
def mongodb_server(tmp_path_factory) -> Iterator[MongoTestServer]:
    server = MongoTestServer(tmp_path_factory.mktemp("secantusdb"), free_port())
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "mongodb"])
def storage_url(request, tmp_path) -> str:
    """Every test that asks for a node or a backend runs once per storage backend."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / f'node-{uuid.uuid4().hex[:8]}.db'}"
    return request.getfixturevalue("mongodb_server").url(f"taxii_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def node_factory(tmp_path: Path, storage_url: str) -> Iterator:
    started: list[NodeHandle] = []

    def start(name: str = "test", **options) -> NodeHandle:
        options.setdefault("storage_url", storage_url if not started else _second_storage(storage_url, name))
        config_path = write_node_files(tmp_path / f"{name}-{uuid.uuid4().hex[:6]}", name, **options)
        handle = NodeHandle(start_node(load_node_config(config_path)), config_path)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


def _second_storage(storage_url: str, name: str) -> str:
    """Another node of the same test gets its own file or database on the same backend."""
    suffix = uuid.uuid4().hex[:8]
    if storage_url.startswith("sqlite:"):
        return f"{storage_url[:-3]}-{name}-{suffix}.db"
    return f"{storage_url}_{suffix}"


@pytest.fixture
def node(node_factory) -> NodeHandle:
    return node_factory()


def write_federation_files(
    folder: Path,
    agreements: list[dict],
    poll_interval: float = 0.2,
    members: tuple[str, ...] = ("hub", "ua", "ro", "md"),
) -> Path:
    """Node configs for the hub and the national nodes on free ports, and a federation file over them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mirror-password.txt").write_text(PASSWORDS["mirror"])
    member_entries = {}
    for name in members:
        node_config = write_node_files(folder / name, name)
        member_entries[name] = {
            "url": f"http://127.0.0.1:{free_port()}/",
            "api_root": "alliance",
            "node_config": str(node_config),
            "credentials": {"user": "mirror", "password_file": "mirror-password.txt"},
        }
    (folder / "agreements.yaml").write_text(yaml.safe_dump({"agreements": agreements}))
    federation = {
        "hub": "hub",
        "poll_interval_seconds": poll_interval,
        "agreements": "agreements.yaml",
        "state": "state/federation.db",
        "members": member_entries,
    }
    path = folder / "federation.yaml"
    path.write_text(yaml.safe_dump(federation))
    return path


SHARED_INDICATORS = {
    "collection": "alliance-indicators",
    "members": ["ua", "ro", "md"],
    "direction": "both",
    "max_tlp": "amber",
    "unmarked": "share",
}


def post_envelope(
    base_url: str,
    objects: list[dict],
    collection_id: str = COLLECTION_ID,
    user: str = "cert",
    api_root: str = "alliance",
) -> dict:
    """POST objects to a node's collection as `user`; returns the status (asserting 202)."""
    response = requests.post(
        f"{base_url}{api_root}/collections/{collection_id}/objects/",
        data=json.dumps({"objects": objects}),
        auth=(user, PASSWORDS[user]),
        headers=HEADERS,
        timeout=120,
    )
    assert response.status_code == 202, response.text[:500]
    return response.json()


def walk(
    base_url: str,
    resource: str = "objects/",
    collection_id: str = COLLECTION_ID,
    api_root: str = "alliance",
    **params,
) -> list[dict]:
    """Every item of a paged resource, following `next` as a client does (always with `limit`, which
    medallion needs alongside `next`)."""
    items, params = [], {"limit": 100, **params}
    for _ in range(10_000):
        response = requests.get(
            f"{base_url}{api_root}/collections/{collection_id}/{resource}",
            params=params,
            auth=("soc", PASSWORDS["soc"]),
            headers={"Accept": TAXII},
            timeout=120,
        )
        assert response.status_code == 200, response.text[:500]
        body = response.json()
        items.extend(body.get("objects", []))
        if not body.get("more"):
            return items
        params["next"] = body["next"]
    raise AssertionError("pages did not end")
