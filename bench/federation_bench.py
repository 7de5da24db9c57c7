"""Federation at scale: the shipped demo alliance and generated alliances of a hub and N members, each run
as one process per node (`taxii-fed serve` per node, `taxii-fed mirror` for the links) and all in one
process (`taxii-fed federation up`), measured from this process over HTTP:

- propagation: single-indicator publishes at the members in turn, under a background load of envelopes,
  each timed from just before its POST to when the last node of the alliance stored it (p50, p95);
- a burst: one envelope of 1,000 indicators at one member, until every node holds it;
- throughput: 20,000 indicators posted at one member in envelopes of 1,000, until every node holds them;
- idle: CPU (% of one core) and resident memory of every process, with nothing published;
- a returning member (one process per node only): a member's node is stopped, 1,000 indicators are published
  while it is down, and it is started again: when its first mirrored object arrives, and when it has all.

    python -m bench.federation_bench [--alliances demo,4,10,30] [--topologies process-per-node,one-process]
        [--baseline main] [--samples 40] [--background 50] [--objects 20000]

`--baseline REF` runs the same alliances with the code of git REF (today's main, which polls) in the same
run: its server/ and clients/ are exported to a temporary folder that comes first on the PYTHONPATH of the
processes under test. Times come from the nodes' own `date_added` (every node runs on this machine's clock):
the moment a node wrote the object, a commit's few milliseconds before a reader can see it.
"""

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from bench.report import machine_line, median_p95, write_section
from bench.servers import _cpu_seconds, _process_tree, _rss_mib
from bench.stix_data import REPO, indicator
from taxii_federation.server.auth import hash_password
from taxii_federation.server.media import TAXII_MEDIA_TYPE
from taxii_federation.server.timestamps import parse_micros
from tests.processes import free_port, wait_until_listening

HEADERS = {"Accept": TAXII_MEDIA_TYPE, "Content-Type": TAXII_MEDIA_TYPE}
CLI = [sys.executable, "-m", "taxii_federation.clients.cli"]
COLLECTION_ID = "5b0d8e4c-3d5e-4d1a-9b77-0c6f1f0a2e11"  # alliance-indicators on every generated node
REFERENCE_ID = "5b0d8e4c-3d5e-4d1a-9b77-0c6f1f0a2e12"  # alliance-reference
GENERATED_PASSWORDS = {"cert": "bench-cert", "soc": "bench-soc", "mirror": "bench-mirror"}
ENVELOPE = 1000
# Envelopes of this many objects or more are validated by a node's worker processes, which start on the first.
WARM_ENVELOPE = 256


@dataclass
class Alliance:
    """The files of one alliance and how to reach each node's shared collection."""

    label: str
    federation_path: Path
    node_paths: dict[str, Path]
    ports: dict[str, int]
    collection_urls: dict[str, str] = field(default_factory=dict)
    publisher: Callable[[str], tuple[str, str]] = lambda name: ("cert", GENERATED_PASSWORDS["cert"])
    reader: Callable[[str], tuple[str, str]] = lambda name: ("soc", GENERATED_PASSWORDS["soc"])

    @property
    def members(self) -> list[str]:
        """Every node but the hub, in order."""
        return [name for name in self.node_paths if name != "hub"]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/"


def demo_alliance(folder: Path) -> Alliance:
    """The shipped demo configs (config/*.yaml, collections/*.yaml), moved to free ports and `folder`."""
    federation = yaml.safe_load((REPO / "config" / "federation.yaml").read_text())
    node_paths, ports = {}, {}
    for name, member in federation["members"].items():
        node = yaml.safe_load((REPO / "config" / member["node_config"]).read_text())
        ports[name] = node["listen"]["port"] = free_port()
        node["storage"] = f"sqlite:{folder / name / 'node.db'}"
        node["catalogue"] = str(REPO / "config" / node["catalogue"])
        node["logs"] = {
            "access": str(folder / name / "access.log"),
            "audit": str(folder / name / "audit.log"),
        }
        node_paths[name] = folder / f"node-{name}.yaml"
        node_paths[name].write_text(yaml.safe_dump(node))
        member["node_config"] = str(node_paths[name])
        member["url"] = f"http://127.0.0.1:{ports[name]}/"
        member["credentials"]["password_file"] = str(REPO / "config" / member["credentials"]["password_file"])
    federation["agreements"] = str(REPO / "collections" / "agreements.yaml")
    federation["state"] = str(folder / "federation.db")
    path = folder / "federation.yaml"
    path.write_text(yaml.safe_dump(federation))
    return Alliance(
        "demo (hub + 3)",
        path,
        node_paths,
        ports,
        publisher=lambda name: (f"cert-{name}", f"demo-cert-{name}"),
        reader=lambda name: (f"soc-{name}", f"demo-soc-{name}"),
    )


def generated_alliance(folder: Path, size: int) -> Alliance:
    """A hub and `size` members m01..mNN with the demo's agreements: alliance-indicators both ways,
    alliance-reference from the hub."""
    hashes = {user: hash_password(password) for user, password in GENERATED_PASSWORDS.items()}
    catalogue = {
        "default_api_root": "alliance",
        "api_roots": {
            "alliance": {
                "title": "Alliance collections",
                "collections": [
                    {"id": COLLECTION_ID, "alias": "alliance-indicators", "title": "Alliance indicators"},
                    {"id": REFERENCE_ID, "alias": "alliance-reference", "title": "Alliance reference"},
                ],
            }
        },
    }
    (folder / "catalogue.yaml").write_text(yaml.safe_dump(catalogue))
    (folder / "mirror-password.txt").write_text(GENERATED_PASSWORDS["mirror"])
    names = ["hub", *(f"m{number:02d}" for number in range(1, size + 1))]
    grants = [{"api_root": "alliance", "collections": "*", "access": "read-write"}]
    node_paths, ports, members = {}, {}, {}
    for name in names:
        ports[name] = free_port()
        node = {
            "node": {"name": name, "title": f"Generated node {name}"},
            "listen": {"host": "127.0.0.1", "port": ports[name]},
            "storage": f"sqlite:{folder / name / 'node.db'}",
            "catalogue": str(folder / "catalogue.yaml"),
            "users": {
                "cert": {"password_hash": hashes["cert"], "grants": grants},
                "soc": {"password_hash": hashes["soc"], "grants": [dict(grants[0], access="read")]},
                "mirror": {"password_hash": hashes["mirror"], "grants": grants, "roles": ["federation"]},
            },
        }
        node_paths[name] = folder / f"node-{name}.yaml"
        node_paths[name].write_text(yaml.safe_dump(node))
        members[name] = {
            "url": f"http://127.0.0.1:{ports[name]}/",
            "api_root": "alliance",
            "node_config": str(node_paths[name]),
            "credentials": {"user": "mirror", "password_file": str(folder / "mirror-password.txt")},
        }
    shared = {"members": names[1:], "max_tlp": "amber", "unmarked": "share"}
    agreements = [
        {"collection": "alliance-indicators", "direction": "both", **shared},
        {"collection": "alliance-reference", "direction": "from-hub", **shared},
    ]
    (folder / "agreements.yaml").write_text(yaml.safe_dump({"agreements": agreements}))
    federation = {
        "hub": "hub",
        "poll_interval_seconds": 1,
        "agreements": str(folder / "agreements.yaml"),
        "state": str(folder / "federation.db"),
        "members": members,
    }
    path = folder / "federation.yaml"
    path.write_text(yaml.safe_dump(federation))
    alliance = Alliance(f"hub + {size}", path, node_paths, ports)
    alliance.collection_urls = {
        name: f"{alliance.url(name)}alliance/collections/{COLLECTION_ID}/" for name in names
    }
    return alliance


def export_code(ref: str, folder: Path) -> Path:
    """server/ and clients/ of git `ref` as taxii_federation.server and .clients under `folder`, for the
    PYTHONPATH of a baseline run."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "server", "clients"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder / "taxii_federation", filter="data")
    env = {**os.environ, "PYTHONPATH": str(folder)}
    probe = "import taxii_federation.clients.cli as cli; print(cli.__file__)"
    where = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    if not where.stdout.startswith(str(folder)):
        raise RuntimeError(f"the baseline code is not the one imported: {where.stdout.strip()}")
    return folder


class Processes:
    """The processes of one alliance run: one per node and the mirror, or one for everything."""

    def __init__(self, alliance: Alliance, topology: str, folder: Path, code: Path | None):
        self.alliance, self.topology, self.folder = alliance, topology, folder
        self.env = dict(os.environ)
        if code is not None:
            self.env["PYTHONPATH"] = f"{code}{os.pathsep}{self.env.get('PYTHONPATH', '')}"
        self.running: dict[str, subprocess.Popen] = {}
        if topology == "one-process":
            self.running["federation up"] = self._spawn(
                "federation-up", "federation", "up", "--config", str(alliance.federation_path)
            )
        else:
            for name in alliance.node_paths:
                self.start_node(name, wait=False)
        for name, port in alliance.ports.items():
            process = self.running.get(name) or self.running["federation up"]
            wait_until_listening(port, process, name, 300)
        if topology == "process-per-node":
            config = str(alliance.federation_path)
            self.running["mirror"] = self._spawn("mirror", "mirror", "--config", config)

    def _spawn(self, log_name: str, *arguments: str) -> subprocess.Popen:
        with open(self.folder / f"{log_name}.log", "ab") as log:
            return subprocess.Popen([*CLI, *arguments], stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def start_node(self, name: str, wait: bool = True) -> None:
        self.running[name] = self._spawn(name, "serve", "--config", str(self.alliance.node_paths[name]))
        if wait:
            wait_until_listening(self.alliance.ports[name], self.running[name], name, 120)

    def stop_node(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    def stop(self) -> None:
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


class Observer:
    """Reads the nodes: when each stored an object (its date_added), from this process."""

    def __init__(self, alliance: Alliance):
        self.alliance = alliance
        self.sessions: dict[str, requests.Session] = {}
        for name in alliance.node_paths:
            session = requests.Session()
            session.auth = alliance.reader(name)
            session.headers.update(HEADERS)
            self.sessions[name] = session
            if name not in alliance.collection_urls:
                listing = session.get(f"{alliance.url(name)}alliance/collections/", timeout=30).json()
                shared = next(c for c in listing["collections"] if c["alias"] == "alliance-indicators")
                alliance.collection_urls[name] = f"{alliance.url(name)}alliance/collections/{shared['id']}/"

    def stored_at(self, name: str, object_ids: list[str]) -> dict[str, float]:
        """The date_added (seconds since the epoch) at node `name` of those of `object_ids` it holds."""
        found = {}
        for start in range(0, len(object_ids), 50):
            chunk = object_ids[start : start + 50]
            response = self.sessions[name].get(
                self.alliance.collection_urls[name] + "manifest/",
                params={"match[id]": ",".join(chunk), "match[version]": "all", "limit": 1000},
                timeout=60,
            )
            for record in response.json().get("objects", []):
                found[record["id"]] = parse_micros(record["date_added"]) / 1e6
        return found

    def wait_everywhere(self, object_ids: list[str], nodes: list[str], timeout: float) -> dict[str, dict]:
        """Wait until every node in `nodes` holds every object; returns node -> id -> date_added. Looks
        every half second (the figures come from date_added, so looking more often would only add load)."""
        arrived: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while True:
            for name in nodes:
                if len(arrived.get(name, ())) < len(object_ids):
                    arrived[name] = self.stored_at(name, object_ids)
            if all(len(arrived[name]) == len(object_ids) for name in nodes):
                return arrived
            if time.monotonic() > deadline:
                missing = {name: len(object_ids) - len(arrived[name]) for name in nodes}
                raise RuntimeError(f"objects did not reach every node within {timeout:g} s: {missing}")
            time.sleep(0.5)

    def publish(self, name: str, objects: list[dict] | str) -> None:
        body = objects if isinstance(objects, str) else json.dumps({"objects": objects})
        response = requests.post(
            self.alliance.collection_urls[name] + "objects/",
            data=body,
            auth=self.alliance.publisher(name),
            headers=HEADERS,
            timeout=300,
        )
        assert response.status_code == 202, response.text[:300]


@dataclass
class RunFigures:
    alliance: str
    topology: str
    code: str
    processes: int
    latency_p50: float
    latency_p95: float
    burst_seconds: float
    throughput: float
    idle_cpu_percent: float
    rss_mib: float
    idle_detail: str
    load_before: float
    load_after: float
    noticed_seconds: float | None = None
    caught_up_seconds: float | None = None


class Background:
    """An envelope of `size` indicators every second at the members in turn, while propagation is timed."""

    def __init__(self, observer: Observer, members: list[str], size: int, seed: str):
        self.observer, self.members, self.size, self.seed = observer, members, size, seed
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _run(self) -> None:
        number = 0
        while self.size and not self.stopped.wait(1.0):
            batch = [indicator(number * self.size + k, seed=self.seed) for k in range(self.size)]
            self.observer.publish(self.members[number % len(self.members)], batch)
            self.sent += len(batch)
            number += 1

    def __enter__(self) -> "Background":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=60)


def measure_latency(observer: Observer, alliance: Alliance, options, seed: str) -> list[float]:
    published: dict[str, float] = {}
    with Background(observer, alliance.members, options.background, f"{seed}-background"):
        for number in range(options.samples):
            obj = indicator(number, seed=f"{seed}-latency")
            published[obj["id"]] = time.time()
            observer.publish(alliance.members[number % len(alliance.members)], [obj])
            time.sleep(0.3 + (number % 5) * 0.1)  # publish at different points of any cycle
    arrived = observer.wait_everywhere(list(published), list(alliance.node_paths), 300)
    return [max(arrived[name][oid] for name in arrived) - sent for oid, sent in published.items()]


def measure_burst(observer: Observer, alliance: Alliance, count: int, seed: str) -> float:
    """Seconds from posting `count` indicators at the first member until every node stored the last one
    (mirrors keep date_added order, so the last one to arrive anywhere is the envelope's last)."""
    envelopes = [
        json.dumps({"objects": [indicator(n, seed=seed) for n in range(s, min(count, s + ENVELOPE))]})
        for s in range(0, count, ENVELOPE)
    ]
    last = indicator(count - 1, seed=seed)["id"]
    started = time.time()
    for body in envelopes:
        observer.publish(alliance.members[0], body)
    arrived = observer.wait_everywhere([last], list(alliance.node_paths), 1800)
    return max(times[last] for times in arrived.values()) - started


def measure_idle(processes: Processes, seconds: float) -> tuple[float, float, str]:
    """CPU (% of one core) and resident memory of every process (with its children) over `seconds` with
    nothing published; and a line per kind of process."""
    trees = {name: _process_tree(process.pid) for name, process in processes.running.items()}
    before = {name: _cpu_seconds(pids) for name, pids in trees.items()}
    time.sleep(seconds)
    cpu = {name: 100 * (_cpu_seconds(pids) - before[name]) / seconds for name, pids in trees.items()}
    rss = {name: _rss_mib(pids, "VmRSS") for name, pids in trees.items()}
    members = [name for name in cpu if name not in ("hub", "mirror", "federation up")]
    kinds = [name for name in ("federation up", "hub", "mirror") if name in cpu]
    parts = [f"{name} {cpu[name]:.1f}% {rss[name]:.0f} MiB" for name in kinds]
    if members:
        parts.append(
            f"members median {statistics.median(cpu[m] for m in members):.1f}%"
            f" (max {max(cpu[m] for m in members):.1f}%),"
            f" {statistics.median(rss[m] for m in members):.0f} MiB each"
        )
    return sum(cpu.values()), sum(rss.values()), "; ".join(parts)


def measure_return(
    observer: Observer, processes: Processes, alliance: Alliance, seed: str, down_seconds: float
) -> tuple[float, float]:
    """Stop the last member's node, publish 1,000 at the first member, start it again: seconds from its
    start until its first mirrored object, and until its last."""
    member = alliance.members[-1]
    processes.stop_node(member)
    time.sleep(down_seconds)  # its links fail a few times and back off
    objects = [indicator(n, seed=seed) for n in range(ENVELOPE)]
    first, last = objects[0]["id"], objects[-1]["id"]
    observer.publish(alliance.members[0], objects)
    others = [name for name in alliance.node_paths if name != member]
    observer.wait_everywhere([last], others, 600)
    processes.start_node(member)
    back = time.time()
    arrived = observer.wait_everywhere([first, last], [member], 600)[member]
    return arrived[first] - back, arrived[last] - back


def run(alliance: Alliance, topology: str, code_label: str, code: Path | None, folder: Path, options):
    load_before = os.getloadavg()[0]
    processes = Processes(alliance, topology, folder, code)
    seed = f"{folder.name}-{time.time_ns()}"
    try:
        observer = Observer(alliance)
        # Steady state, as in an alliance that has run for a while: every link has made its first pass,
        # and every node has checked its publisher's password (scrypt, once a process) and validated an
        # indicator of each pattern shape, once the objects published at every member reached every node;
        # the first member, where the bursts are published, has started its validation workers.
        warm = [_publish_warm_up(observer, name, f"{seed}-warm-{name}", 4) for name in alliance.members[1:]]
        warm.append(_publish_warm_up(observer, alliance.members[0], f"{seed}-warm", WARM_ENVELOPE))
        observer.wait_everywhere(warm, list(alliance.node_paths), 300)
        latencies = measure_latency(observer, alliance, options, seed)
        p50, p95 = median_p95(latencies)
        burst = measure_burst(observer, alliance, options.burst, f"{seed}-burst")
        throughput = options.objects / measure_burst(observer, alliance, options.objects, f"{seed}-volume")
        time.sleep(5)  # let the last passes and checkpoints settle
        idle_cpu, rss, detail = measure_idle(processes, options.idle)
        figures = RunFigures(
            alliance.label,
            topology,
            code_label,
            len(processes.running),
            p50,
            p95,
            burst,
            throughput,
            idle_cpu,
            rss,
            detail,
            load_before,
            0.0,
        )
        if topology == "process-per-node":
            figures.noticed_seconds, figures.caught_up_seconds = measure_return(
                observer, processes, alliance, f"{seed}-return", options.down
            )
        figures.load_after = os.getloadavg()[0]
    except Exception:
        _print_log_tails(folder)  # the folder is deleted with the run: say what the processes said first
        raise
    finally:
        processes.stop()
    print(_row(figures), flush=True)
    return figures


def _print_log_tails(folder: Path, lines: int = 40) -> None:
    for log in sorted(folder.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last {len(tail)} lines of {log.name} ---", *tail, sep="\n", file=sys.stderr, flush=True)


def _publish_warm_up(observer: Observer, member: str, seed: str, count: int) -> str:
    objects = [indicator(n, seed=seed) for n in range(count)]  # every pattern shape (bench.stix_data)
    observer.publish(member, objects)
    return objects[-1]["id"]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _row(f: RunFigures) -> str:
    return (
        f"| {f.alliance} | {f.topology} | {f.code} | {f.processes} | {f.latency_p50:.2f} s"
        f" | {f.latency_p95:.2f} s | {f.burst_seconds:.2f} s | {f.throughput:,.0f}"
        f" | {f.idle_cpu_percent:.1f}% | {f.rss_mib:,.0f} MiB"
        f" | {_seconds(f.noticed_seconds)} / {_seconds(f.caught_up_seconds)}"
        f" | {f.load_before:.1f} / {f.load_after:.1f} |"
    )


TABLE_HEAD = [
    "| alliance | topology | code | processes | propagation p50 | p95 | 1,000 at every node"
    " | throughput (objects/s to every node) | idle CPU (all processes, % of one core) | idle RSS (all)"
    " | returning member: first object / caught up | load before / after |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def targets(figures: list[RunFigures]) -> list[str]:
    ours = [f for f in figures if f.code == "this branch"]
    demo = [f for f in ours if f.alliance.startswith("demo")]
    thirty = [f for f in ours if f.alliance == "hub + 30"]
    rows = ["| target | this run | met |", "|---|---|---|"]

    def check(label: str, runs: list[RunFigures], value: Callable[[RunFigures], float | None], limit: float):
        values = [value(f) for f in runs if value(f) is not None]
        if not values:
            rows.append(f"| {label} | not measured | - |")
            return
        worst = max(values)
        detail = ", ".join(f"{f.topology} {value(f):.2f}" for f in runs if value(f) is not None)
        rows.append(f"| {label} | worst {worst:.2f} ({detail}) | {'yes' if worst <= limit else 'no'} |")

    check("demo alliance: p95 publish -> every member <= 0.3 s", demo, lambda f: f.latency_p95, 0.3)
    check("30 members: p95 <= 1 s", thirty, lambda f: f.latency_p95, 1.0)
    check("30 members: 1,000 objects at every member <= 2 s", thirty, lambda f: f.burst_seconds, 2.0)
    check("30 members: idle CPU of everything <= 5% of one core", thirty, lambda f: f.idle_cpu_percent, 5.0)
    check("a returning member caught up <= 3 s", ours, lambda f: f.caught_up_seconds, 3.0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alliances", default="demo,4,10,30", help="demo and/or member counts")
    parser.add_argument("--topologies", default="process-per-node,one-process")
    parser.add_argument("--baseline", help="also run the code of this git ref (e.g. main) in the same run")
    parser.add_argument("--samples", type=int, default=40, help="single publishes timed per run")
    parser.add_argument("--background", type=int, default=50, help="objects a second published meanwhile")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=20_000, help="objects of the throughput run")
    parser.add_argument("--idle", type=float, default=20, help="seconds of the idle measurement")
    parser.add_argument("--down", type=float, default=10, help="seconds the returning member is down")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    figures: list[RunFigures] = []
    print("\n".join(TABLE_HEAD), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        codes: list[tuple[str, Path | None]] = [("this branch", None)]
        if options.baseline:
            codes.append((options.baseline, export_code(options.baseline, Path(scratch) / "baseline")))
        for size in options.alliances.split(","):
            for topology in options.topologies.split(","):
                for label, code in codes:
                    folder = Path(tempfile.mkdtemp(dir=scratch))
                    if size == "demo":
                        alliance = demo_alliance(folder)
                    else:
                        alliance = generated_alliance(folder, int(size))
                    figures.append(run(alliance, topology, label, code, folder, options))
    command = "python -m bench.federation_bench " + " ".join(sys.argv[1:])
    method = (
        "Every node on SQLite, on this one machine (2 cores shared by every process of the alliance and by"
        " this harness). Propagation: "
        f"{options.samples} single-indicator publishes at the members in turn, {options.background} more"
        " indicators a second published meanwhile as envelopes at the members in turn; each timed from just"
        " before its POST to the date_added of the last node to store it (every node uses this machine's"
        " clock; a reader sees it a commit later, milliseconds). '1,000 at every node': one envelope of"
        f" {options.burst:,} at the first member, until the last node stored its last object. Throughput:"
        f" {options.objects:,} indicators at the first member in envelopes of 1,000, until every node holds"
        f" them. Idle: CPU and resident memory of each process and its children over {options.idle:g} s with"
        " nothing published (summed in the table, by kind below). Returning member: the last member's node"
        f" is stopped for {options.down:g} s while 1,000 indicators are published at the first member, then"
        " started again: seconds from its start until its first and its last mirrored object. Load: the"
        " 1-minute load average before and after each run (other work shares the machine)."
        + (
            f" `{options.baseline}` is the code of that git ref, run the same way in the same run (the"
            " federation files set `poll_interval_seconds: 1`, as in the shipped demo: the interval of links"
            " that read from a server that does not hold reads)."
            if options.baseline
            else ""
        )
    )
    details = [f"- {f.alliance}, {f.topology}, {f.code}: {f.idle_detail}" for f in figures]
    report = "\n".join(
        [
            f"Command: `{command}`  ",
            machine_line(),
            "",
            *TABLE_HEAD,
            *(_row(f) for f in figures),
            "",
            "Targets, checked against this run:",
            "",
            *targets(figures),
            "",
            method,
            "",
            "Idle CPU and resident memory by process:",
            "",
            *details,
        ]
    )
    print(report)
    if not options.no_write:
        write_section("federation_bench", "Federation: propagation, throughput, idle cost at scale", report)


if __name__ == "__main__":
    main()
