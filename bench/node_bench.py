"""Our node alone: ingest rate and page-read latency at two collection sizes, per storage backend.

    python -m bench.node_bench [--small 1000] [--large 100000] [--requests 60] [--backends sqlite,mongodb]

Starts `taxii-fed serve` as a separate process (so client and server do not share a GIL), fills one
collection per size over HTTP in envelopes of 1,000 objects, then times the read workloads. Prints
medians and p95, the large/small ratio, and writes the figures to docs/benchmarks.md. The mongodb backend
runs against secantusdb (docs/mongodb.md says what that server does and does not show).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

from bench.report import machine_line, median_p95, write_section
from bench.stix_data import objects
from server.auth import hash_password
from tests.mongodb_server import MongoTestServer
from tests.processes import free_port, wait_until_listening

TAXII = "application/taxii+json;version=2.1"
USER, PASSWORD = "bench", "bench-password"


def _write_config(folder: Path, collection_ids: list[str], storage_url: str | None = None) -> Path:
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
    def __init__(self, config_path: Path):
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--config",
                str(config_path),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}/"
        wait_until_listening(self.port, self.process, "taxii-fed serve", 60)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def ingest(
    session: requests.Session,
    objects_url: str,
    count: int,
    seed: str,
    envelope_size: int,
    publishers: int = 1,
) -> float:
    """Objects per second, validated and durable: every envelope's status is complete when its POST returns.
    Envelopes are serialised before the clock starts, so the figure is the node's, not the client's."""
    stream = list(objects(count, seed))
    bodies = [json.dumps({"objects": stream[i : i + envelope_size]}) for i in range(0, count, envelope_size)]
    stored = []

    def publish(share: list[str]) -> None:
        for body in share:
            response = session.post(objects_url, data=body, headers={"Content-Type": TAXII})
            status = response.json()
            assert response.status_code == 202 and status["failure_count"] == 0, response.text[:500]
            stored.append(status["success_count"])

    threads = [threading.Thread(target=publish, args=(bodies[p::publishers],)) for p in range(publishers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert sum(stored) == count
    return count / elapsed


def _time(session: requests.Session, url: str, params: dict, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = session.get(url, params=params)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
    return timings


def read_workloads(session: requests.Session, collection_url: str, repeats: int) -> dict[str, list[float]]:
    objects_url = collection_url + "objects/"
    deep_next, last_header, some_id, params = None, None, None, {"limit": 1000}
    for _ in range(10_000):  # walk to the end once, remembering a cursor ~90% deep
        response = session.get(objects_url, params=params).json()
        some_id = some_id or response["objects"][len(response["objects"]) // 2]["id"]
        if not response["more"]:
            break
        params = {"limit": 1000, "next": response["next"]}
        deep_next = response["next"]
    last_header = session.get(
        objects_url, params={"limit": 1000, **({"next": deep_next} if deep_next else {})}
    ).headers["X-TAXII-Date-Added-First"]
    return {
        "first page (limit=100)": _time(session, objects_url, {"limit": 100}, repeats),
        "deep page by next (limit=100)": _time(
            session, objects_url, {"limit": 100, **({"next": deep_next} if deep_next else {})}, repeats
        ),
        "added_after near the end": _time(
            session, objects_url, {"limit": 100, "added_after": last_header}, repeats
        ),
        "match[type]=relationship (limit=100)": _time(
            session, objects_url, {"limit": 100, "match[type]": "relationship"}, repeats
        ),
        "match[id]": _time(session, objects_url, {"match[id]": some_id}, repeats),
        "manifest (limit=100)": _time(session, collection_url + "manifest/", {"limit": 100}, repeats),
    }


def run_backend(backend: str, options: argparse.Namespace, folder: Path) -> str:
    sizes = [options.small, options.large]
    collection_ids = [f"00000000-0000-4000-8000-{size:012d}" for size in sizes]
    mongodb = None
    storage_url = None
    if backend == "mongodb":
        mongodb = MongoTestServer(folder / "secantusdb", free_port())
        storage_url = mongodb.url("bench")
    node = NodeProcess(_write_config(folder, collection_ids, storage_url))
    try:
        session = requests.Session()
        session.auth = (USER, PASSWORD)
        session.headers["Accept"] = TAXII
        results, ingest_rates = {}, {}
        for size, cid in zip(sizes, collection_ids, strict=True):
            collection_url = f"{node.url}bench/collections/{cid}/"
            ingest_rates[size] = ingest(
                session, collection_url + "objects/", size, f"s{size}", options.envelope
            )
            print(f"{backend}: ingest {size:>9,} objects: {ingest_rates[size]:8,.0f} objects/s", flush=True)
            results[size] = read_workloads(session, collection_url, options.requests)
        concurrent_url = f"{node.url}bench/collections/{collection_ids[-1]}/objects/"
        concurrent_rate = ingest(
            session, concurrent_url, 20_000, "concurrent", options.envelope, publishers=2
        )
        print(
            f"{backend}: ingest 20,000 objects from 2 publishers: {concurrent_rate:,.0f} objects/s",
            flush=True,
        )
        rss = node.peak_rss_mib()
    finally:
        node.stop()
        if mongodb:
            mongodb.stop()
    return _report(backend, sizes, results, ingest_rates, concurrent_rate, rss, options)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--envelope", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite", help="comma-separated: sqlite, mongodb (secantusdb)")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    for backend in options.backends.split(","):
        with tempfile.TemporaryDirectory() as folder:
            report = run_backend(backend, options, Path(folder))
        print(report)
        if not options.no_write:
            # One section per backend and size, so a MongoDB run beside SQLite keeps the 100k figures.
            default = (backend, options.large) == ("sqlite", 100_000)
            key = "node_bench" if default else f"node_bench_{backend}_{options.large}"
            sizes = f"{options.small:,} and {options.large:,} objects"
            write_section(key, f"Our node alone on {backend}: ingest and page reads, {sizes}", report)


def _report(backend, sizes, results, ingest_rates, concurrent_rate, rss, options) -> str:
    small, large = sizes
    store = "SQLite" if backend == "sqlite" else "MongoDB (pymongo) against secantusdb, see docs/mongodb.md"
    lines = [
        f"Command: `python -m bench.node_bench --small {small} --large {large} --requests {options.requests}"
        f" --envelope {options.envelope} --backends {options.backends}`  ",
        f"{machine_line()} Node on {store}, served by `taxii-fed serve` (cheroot).",
        "",
        f"| read workload | median at {small:,} (ms) | p95 at {small:,} | median at {large:,} (ms) "
        f"| p95 at {large:,} | median ratio {large:,}/{small:,} |",
        "|---|---|---|---|---|---|",
    ]
    for workload in results[small]:
        small_median, small_p95 = median_p95(results[small][workload])
        large_median, large_p95 = median_p95(results[large][workload])
        lines.append(
            f"| {workload} | {small_median:.2f} | {small_p95:.2f} | {large_median:.2f} | {large_p95:.2f}"
            f" | {large_median / small_median:.2f} |"
        )
    small_rate, large_rate = ingest_rates[small], ingest_rates[large]
    lines += [
        "",
        f"Ingest, envelopes of {options.envelope:,}, STIX 2.1 validation, durable commit,"
        " status complete on return:"
        f" {large_rate:,.0f} objects/s from one publisher filling the {large:,} collection"
        f" ({small_rate:,.0f} objects/s for the first {small:,}, which includes starting the validation"
        " workers);"
        f" {concurrent_rate:,.0f} objects/s for 20,000 more from two concurrent publishers."
        f" Peak RSS of the node: {rss:.0f} MiB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
