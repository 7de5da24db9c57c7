"""The servers a benchmark compares, each started on 127.0.0.1 as a separate process with one empty
collection: our node (`taxii-fed serve`) on SQLite and on MongoDB, medallion 3.0 on its memory and its MongoDB
backends, and OpenTAXII 0.9.3 (TAXII 2.1 on SQLite, gunicorn). The MongoDB server is secantusdb (a MongoDB
wire-protocol server from PyPI, the one the tests use), one per server. The peers come from PyPI into
`.bench-venv/`, which this module creates; none of their code is in this repository. See ../shared/PEERS.md
for what running them takes."""

import base64
import os
import sys
import time
import uuid
from pathlib import Path

import requests
import yaml

from taxii_federation.server.auth import hash_password
from taxii_federation.server.media import TAXII_MEDIA_TYPE
from tests.medallion_member import MedallionMember
from tests.mongodb_server import MongoTestServer
from tests.opentaxii_member import OpenTaxiiMember
from tests.peer_venv import ensure_peer_venv
from tests.processes import free_port, start_listening_server

REPO = Path(__file__).resolve().parents[1]

USER, PASSWORD = "bench", "bench-password"


def write_node_config(folder: Path, collection_ids: list[str], storage_url: str | None = None) -> Path:
    catalogue = {
        "api_roots": {
            "bench": {
                "title": "Benchmark",
                "max_content_length": 64 * 1024 * 1024,
                "collections": [{"id": cid, "title": f"bench {cid[:8]}"} for cid in collection_ids],
            }
        }
    }
    (folder / "catalogue.yaml").write_text(yaml.safe_dump(catalogue))
    config = {
        "node": {"name": "bench", "title": "Benchmark node"},
        "storage": storage_url or f"sqlite:{folder / 'node.db'}",
        "catalogue": "catalogue.yaml",
        "max_page_size": 1000,
        "users": {
            USER: {
                "password_hash": hash_password(PASSWORD),
                "grants": [{"api_root": "bench", "collections": "*", "access": "read-write"}],
            }
        },
    }
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class NodeProcess:
    """`taxii-fed serve` with a config, in its own process; its log is node.log beside the config."""

    def __init__(self, config_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.process = start_listening_server(
            [
                sys.executable,
                "-m",
                "taxii_federation.clients.cli",
                "serve",
                "--config",
                str(config_path),
                "--port",
                str(self.port),
            ],
            self.port,
            config_path.parent / "node.log",
            "taxii-fed serve",
        )
        self.url = f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), None once it has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_tree(root: int) -> list[int]:
    """`root` and every process below it: gunicorn's workers, our node's validation workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, waiting = [], [root]
    while waiting:
        pid = waiting.pop()
        tree.append(pid)
        waiting += children.get(pid, [])
    return tree


def _rss_mib(pids: list[int], field: str = "VmHWM") -> float:
    """Resident memory of the processes: their peak (VmHWM), or now (VmRSS)."""
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        if fields := _stat_fields(pid):
            total += int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Server:
    """What a benchmark needs of a server: where its collection is, how to authenticate, its memory.
    `largest` is the biggest collection it is filled to (`largest_quick` with --quick); `counterpart` the
    server of ours it is compared with (None for ours)."""

    name: str
    largest: int = 100_000
    largest_quick: int = 10_000
    counterpart: str | None = None
    collection_url: str
    headers: dict

    def root_pids(self) -> list[int]:
        """The processes the server was started as; their descendants count as the server too."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        return [pid for root in self.root_pids() for pid in _process_tree(root)]

    def peak_rss_mib(self) -> float:
        return _rss_mib(self.pids())

    saturated = False  # still busy `limit` seconds after a request was given up on

    def wait_until_idle(self, limit: float, quiet: float = 0.5) -> None:
        """Return once the server has used no CPU for `quiet` seconds: a request the benchmark gave up on
        goes on running in the server, and should not slow the next workload. After `limit` seconds the
        server is marked saturated instead."""
        if self.saturated:
            return
        pids, deadline = self.pids(), time.monotonic() + limit
        used = _cpu_seconds(pids)
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = _cpu_seconds(pids)
            if now - used < 0.05 * quiet:
                return
            used = now
        self.saturated = True

    def stop(self) -> None:
        raise NotImplementedError


class OurNode(Server):
    name = "taxii-federation"
    largest = 1_000_000

    def __init__(self, folder: Path, storage_url: str | None = None):
        collection_id = str(uuid.uuid4())
        self.node = NodeProcess(write_node_config(folder, [collection_id], storage_url))
        self.collection_url = f"{self.node.url}bench/collections/{collection_id}/"
        self.headers = {"Authorization": _basic(USER, PASSWORD), "Accept": TAXII_MEDIA_TYPE}

    def root_pids(self) -> list[int]:
        return [self.node.process.pid]

    def stop(self) -> None:
        self.node.stop()


class Medallion(Server):
    name = "medallion 3.0"
    counterpart = "ours"

    def __init__(self, folder: Path, mongodb_uri: str | None = None):
        collection_id = str(uuid.uuid4())
        self.member = MedallionMember(
            folder,
            free_port(),
            collection_id,
            "bench",
            {USER: PASSWORD},
            python=str(ensure_peer_venv() / "python"),
            max_page_size=1000,
            mongodb_uri=mongodb_uri,
        ).start()
        self.collection_url = f"{self.member.url}alliance/collections/{collection_id}/"
        self.headers = {"Authorization": _basic(USER, PASSWORD), "Accept": TAXII_MEDIA_TYPE}

    def root_pids(self) -> list[int]:
        return [self.member.process.pid]

    def stop(self) -> None:
        self.member.stop()


# secantusdb scans the whole collection for most query shapes (docs/mongodb.md), so both servers on it are
# measured up to 10,000 objects: the pair shows how each server uses MongoDB, not how fast MongoDB is.
MONGODB_LARGEST = 10_000


class _OnOwnMongoDB:
    """Mixed into a server whose data lives in a secantusdb process of its own, started before it: that
    process counts as part of the server (memory, CPU) and stops with it."""

    mongodb: MongoTestServer

    def root_pids(self) -> list[int]:
        return [*super().root_pids(), self.mongodb.process.pid]

    def stop(self) -> None:
        super().stop()
        self.mongodb.stop()


class OurNodeOnMongoDB(_OnOwnMongoDB, OurNode):
    name = "taxii-federation on MongoDB"
    largest = MONGODB_LARGEST
    largest_quick = 1000

    def __init__(self, folder: Path):
        self.mongodb = MongoTestServer(folder / "secantusdb", free_port())
        super().__init__(folder, self.mongodb.url("bench"))


class MedallionOnMongoDB(_OnOwnMongoDB, Medallion):
    name = "medallion 3.0 on MongoDB"
    largest = MONGODB_LARGEST
    largest_quick = 1000
    counterpart = "ours-mongodb"

    def __init__(self, folder: Path):
        self.mongodb = MongoTestServer(folder / "secantusdb", free_port())
        super().__init__(folder, self.mongodb.url(""))


class OpenTaxii(Server):
    """Benchmarked with a JWT (`POST /management/auth`); with HTTP Basic it pays ~0.1 s of scrypt a call."""

    name = "OpenTAXII 0.9.3"
    counterpart = "ours"

    def __init__(self, folder: Path):
        self.member = OpenTaxiiMember(
            folder, free_port(), "bench", "bench", {USER: PASSWORD}, max_content_length=64 * 1024 * 1024
        ).start()
        deadline = time.monotonic() + 60
        while True:
            try:
                token = requests.post(
                    self.member.url + "management/auth",
                    json={"username": USER, "password": PASSWORD},
                    timeout=10,
                ).json()["token"]
                break
            except (requests.RequestException, ValueError, KeyError):
                if time.monotonic() > deadline:
                    raise RuntimeError("OpenTAXII did not start within 60 s") from None
                time.sleep(0.2)
        self.collection_url = self.member.collection_url
        self.headers = {"Authorization": f"Bearer {token}", "Accept": TAXII_MEDIA_TYPE}

    def root_pids(self) -> list[int]:
        return [self.member.process.pid]

    def stop(self) -> None:
        self.member.stop()


SERVERS = {
    "ours": OurNode,
    "ours-mongodb": OurNodeOnMongoDB,
    "medallion": Medallion,
    "medallion-mongodb": MedallionOnMongoDB,
    "opentaxii": OpenTaxii,
}
