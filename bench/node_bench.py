"""Our node alone: ingest rate and page-read latency at two collection sizes, per storage backend.

    python -m bench.node_bench [--small 1000] [--large 100000] [--requests 60] [--backends sqlite,mongodb]

Starts `taxii-fed serve` as a separate process per collection size (so client and server do not share a
GIL), fills its collection over HTTP in envelopes of 1,000 objects, then times the read workloads that
bench.compare runs too (bench/workloads.py). Prints medians and p95, the large/small ratio, and writes the
figures to docs/benchmarks.md. The mongodb backend runs against secantusdb (docs/mongodb.md says what that
server does and does not show).
"""

import argparse
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.report import machine_line, median_p95, write_section
from bench.servers import OurNode, OurNodeOnMongoDB
from bench.stix_data import envelopes, middle_id
from bench.workloads import READS, reads
from taxii_federation.server.media import TAXII_MEDIA_TYPE

READ_BUDGET = 60.0  # seconds: far beyond any of our reads, so every request is measured
SERVER_FOR_BACKEND = {"sqlite": OurNode, "mongodb": OurNodeOnMongoDB}


def ingest(
    session: requests.Session,
    objects_url: str,
    count: int,
    seed: str,
    envelope_size: int,
    publishers: int = 1,
) -> float:
    """Objects per second, validated and durable: every envelope's status is complete when its POST returns.
    Envelopes are serialised before the clock starts (stix_data.envelopes)."""
    bodies = envelopes(count, envelope_size, seed)
    stored = []

    def publish(share: list[str]) -> None:
        for body in share:
            response = session.post(objects_url, data=body, headers={"Content-Type": TAXII_MEDIA_TYPE})
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


def run_backend(backend: str, options: argparse.Namespace, folder: Path) -> str:
    sizes = [options.small, options.large]
    results, ingest_rates = {}, {}
    for size in sizes:
        server_folder = folder / f"{backend}-{size}"
        server_folder.mkdir()
        server = SERVER_FOR_BACKEND[backend](server_folder)
        try:
            session = requests.Session()
            session.headers.update(server.headers)
            seed = f"s{size}"
            objects_url = server.collection_url + "objects/"
            ingest_rates[size] = ingest(session, objects_url, size, seed, options.envelope)
            print(f"{backend}: ingest {size:>9,} objects: {ingest_rates[size]:8,.0f} objects/s", flush=True)
            results[size] = reads(server, options.requests, READ_BUDGET, middle_id(size, seed))
            if size == sizes[-1]:
                concurrent_rate = ingest(session, objects_url, 20_000, "concurrent", options.envelope, 2)
                print(f"{backend}: ingest 20,000 objects from 2 publishers: {concurrent_rate:,.0f} objects/s")
                rss = server.peak_rss_mib()
        finally:
            server.stop()
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
        f"{machine_line()} Node on {store}, served by `taxii-fed serve` (server/http_server/); pages of 100,"
        " reads timed on one keep-alive connection by the harness's own plain-socket client"
        " (bench/http_client.py).",
        "",
        f"| read workload | median at {small:,} (ms) | p95 at {small:,} | median at {large:,} (ms) "
        f"| p95 at {large:,} | median ratio {large:,}/{small:,} |",
        "|---|---|---|---|---|---|",
    ]
    for workload in READS:
        small_median, small_p95 = median_p95(results[small][workload])
        large_median, large_p95 = median_p95(results[large][workload])
        lines.append(
            f"| {workload} | {small_median:.2f} | {small_p95:.2f} | {large_median:.2f} | {large_p95:.2f}"
            f" | {large_median / small_median:.2f} |"
        )
    small_rate, large_rate = ingest_rates[small], ingest_rates[large]
    rss_extra = " (and its secantusdb)" if backend == "mongodb" else ""
    lines += [
        "",
        f"Ingest, envelopes of {options.envelope:,}, STIX 2.1 validation, durable commit,"
        " status complete on return:"
        f" {large_rate:,.0f} objects/s from one publisher filling the {large:,} collection"
        f" ({small_rate:,.0f} objects/s for the first {small:,}, which includes starting the validation"
        " workers);"
        f" {concurrent_rate:,.0f} objects/s for 20,000 more from two concurrent publishers."
        f" Peak RSS of the node and its validation workers{rss_extra}: {rss:.0f} MiB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
