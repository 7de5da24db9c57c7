"""Federation: propagation latency from a publish at ua to visibility at md (two hops, through the hub),
and mirror throughput for 20,000 objects.

    python -m bench.federation_bench [--samples 60] [--objects 20000] [--poll 1]

Runs the shipped demo alliance (config/*.yaml, collections/*.yaml) on free ports and in a temporary
data folder, once under `taxii-fed federation up` (one process) and once as one `taxii-fed serve`
process per node plus `taxii-fed mirror`, and measures from this process over HTTP.
"""

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

from bench.report import machine_line, median_p95, write_section
from bench.stix_data import REPO, indicator
from taxii_federation.server.media import TAXII_MEDIA_TYPE
from tests.processes import free_port

HEADERS = {"Accept": TAXII_MEDIA_TYPE, "Content-Type": TAXII_MEDIA_TYPE}


def _demo_alliance(folder: Path, poll: float) -> tuple[Path, dict[str, str]]:
    """Copy the shipped demo configs, moving every node to a free port and its data into `folder`."""
    federation = yaml.safe_load((REPO / "config" / "federation.yaml").read_text())
    urls = {}
    for name, member in federation["members"].items():
        node = yaml.safe_load((REPO / "config" / member["node_config"]).read_text())
        port = free_port()
        node["listen"]["port"] = port
        node_path = folder / f"node-{name}.yaml"
        node["storage"] = f"sqlite:{folder / name / 'node.db'}"
        node["catalogue"] = str(REPO / "config" / node["catalogue"])
        node_path.write_text(yaml.safe_dump(node))
        member["node_config"] = str(node_path)
        member["url"] = urls[name] = f"http://127.0.0.1:{port}/"
        member["credentials"]["password_file"] = str(REPO / "config" / member["credentials"]["password_file"])
    federation["agreements"] = str(REPO / "collections" / "agreements.yaml")
    federation["state"] = str(folder / "federation.db")
    federation["poll_interval_seconds"] = poll
    path = folder / "federation.yaml"
    path.write_text(yaml.safe_dump(federation))
    return path, urls


def _collection_url(base: str, user: str, password: str) -> str:
    listing = requests.get(f"{base}alliance/collections/", auth=(user, password), headers=HEADERS, timeout=30)
    shared = next(c["id"] for c in listing.json()["collections"] if c["alias"] == "alliance-indicators")
    return f"{base}alliance/collections/{shared}/"


def _visible(session: requests.Session, collection_url: str, object_id: str) -> bool:
    response = session.get(collection_url + "objects/", params={"match[id]": object_id}, timeout=30)
    return bool(response.json().get("objects"))


def measure_latency(ua: str, md: str, samples: int) -> list[float]:
    publisher, reader = requests.Session(), requests.Session()
    publisher.auth, reader.auth = ("cert-ua", "demo-cert-ua"), ("soc-md", "demo-soc-md")
    publisher.headers.update(HEADERS)
    reader.headers.update(HEADERS)
    latencies = []
    for n in range(samples):
        obj = indicator(n, seed="latency")
        started = time.perf_counter()
        assert (
            publisher.post(ua + "objects/", data=json.dumps({"objects": [obj]}), timeout=30).status_code
            == 202
        )
        deadline = started + 30
        while not _visible(reader, md, obj["id"]):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{obj['id']} did not reach md within 30 s")
            time.sleep(0.01)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.25 + (n % 4) * 0.2)  # publish at different points of the poll cycle
    return latencies


def _count_at(session: requests.Session, collection_url: str) -> int:
    count, params = 0, {"limit": 1000, "match[version]": "all"}
    for _ in range(10_000):
        body = session.get(collection_url + "manifest/", params=params, timeout=60).json()
        count += len(body.get("objects", []))
        if not body["more"]:
            return count
        params["next"] = body["next"]
    raise RuntimeError("manifest did not end")


def measure_throughput(ua: str, md: str, total: int, already_at_md: int) -> float:
    publisher, reader = requests.Session(), requests.Session()
    publisher.auth, reader.auth = ("cert-ua", "demo-cert-ua"), ("soc-md", "demo-soc-md")
    publisher.headers.update(HEADERS)
    reader.headers.update(HEADERS)
    bodies = [
        json.dumps({"objects": [indicator(n, seed="throughput") for n in range(s, min(total, s + 1000))]})
        for s in range(0, total, 1000)
    ]
    started = time.perf_counter()
    for body in bodies:
        assert publisher.post(ua + "objects/", data=body, timeout=120).status_code == 202
    deadline = started + 600
    while _count_at(reader, md) < already_at_md + total:
        if time.perf_counter() > deadline:
            raise RuntimeError("the objects did not all reach md within 600 s")
        time.sleep(0.2)
    return total / (time.perf_counter() - started)


def _start(topology: str, config: Path, folder: Path) -> list[subprocess.Popen]:
    """`one-process`: `taxii-fed federation up` (the demo). `process-per-node`: each node under
    `taxii-fed serve` and the links under `taxii-fed mirror`, as members running their own machines would."""
    cli = [sys.executable, "-m", "taxii_federation.clients.cli"]
    if topology == "one-process":
        process = subprocess.Popen(
            [*cli, "federation", "up", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        process.stdout.readline()  # the banner's first line: every node is listening
        return [process]
    nodes = [
        subprocess.Popen(
            [*cli, "serve", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for path in sorted(folder.glob("node-*.yaml"))
    ]
    for node in nodes:
        node.stdout.readline()  # "node NAME: URL" once it listens
    mirror = subprocess.Popen(
        [*cli, "mirror", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return [*nodes, mirror]


def run(topology: str, options: argparse.Namespace) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as folder:
        config, urls = _demo_alliance(Path(folder), options.poll)
        processes = _start(topology, config, Path(folder))
        try:
            ua = _collection_url(urls["ua"], "cert-ua", "demo-cert-ua")
            md = _collection_url(urls["md"], "soc-md", "demo-soc-md")
            latencies = measure_latency(ua, md, options.samples)
            p50, p95 = median_p95(latencies)
            print(f"{topology}: latency ua -> md p50 {p50:.2f} s, p95 {p95:.2f} s", flush=True)
            throughput = measure_throughput(ua, md, options.objects, options.samples)
            print(f"{topology}: throughput ua -> hub -> md {throughput:,.0f} objects/s", flush=True)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)
    return latencies, throughput


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--poll", type=float, default=1.0, help="poll interval of the links, seconds")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    rows = ["| topology | latency p50 | latency p95 | throughput |", "|---|---|---|---|"]
    for topology, label in (
        ("one-process", "`taxii-fed federation up`: 4 nodes and the mirror in one process"),
        ("process-per-node", "`taxii-fed serve` per node, `taxii-fed mirror` for the links"),
    ):
        latencies, throughput = run(topology, options)
        p50, p95 = median_p95(latencies)
        rows.append(f"| {label} | {p50:.2f} s | {p95:.2f} s | {throughput:,.0f} objects/s |")
    command = (
        f"python -m bench.federation_bench --samples {options.samples} --objects {options.objects}"
        f" --poll {options.poll:g}"
    )
    method = (
        f"The shipped demo alliance (hub, ua, ro, md on SQLite), on one machine. Latency: {options.samples}"
        " single-indicator publishes at ua, each timed until `match[id]` finds it at md (two hops, through"
        f" the hub; md polled every 10 ms), with a {options.poll:g} s link poll interval. Throughput:"
        f" {options.objects:,} indicators posted at ua in envelopes of 1,000; the clock runs from the first"
        " post until md's manifest holds them all. Every object is stored durably four times (ua, hub, ro,"
        " md), all on the same 2 cores; it is fully validated with stix2 at ua, and the hops after it check"
        " its structure only (the mirror says `X-TAXII-Fed-Validated` for objects read from a"
        " taxii-federation node)."
    )
    report = "\n".join([f"Command: `{command}`  ", machine_line(), "", *rows, "", method])
    print(report)
    if not options.no_write:
        write_section("federation_bench", "Federation: propagation latency and mirror throughput", report)


if __name__ == "__main__":
    main()
