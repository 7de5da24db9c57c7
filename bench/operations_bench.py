"""Hub operations: the time for an operator to add a member (from `federation add-member` until a publish at
the new member is visible at every other member), and what a /metrics scrape costs.

    python -m bench.operations_bench [--samples 3] [--objects 100000] [--scrapes 50]

Add a member: the shipped demo configs (config/, collections/) are copied into a temporary folder, moved
to free ports, and run under `taxii-fed federation up`; then, timed, the README's steps: `federation
add-member pl --url ...`, `users add cert-pl`, `federation check`, and a publish at pl of 10 indicators,
until `match[id]` finds the last of them at ua, ro and md (the running federation applies the change by
itself). Scrapes: a node holding `--objects` indicators, /metrics asked `--scrapes` times (warm: the
collection sizes are cached, as between writes) and with its collection sizes counted afresh (cold: after
a write); the hub's /metrics of the running demo (with the link collector) beside it.
"""

import argparse
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.report import machine_line, median_p95, write_section
from bench.stix_data import REPO, indicator
from taxii_federation.clients.federation.monitor import CACHE_SECONDS
from taxii_federation.server.media import TAXII_MEDIA_TYPE
from tests.processes import free_port, wait_until_listening

HEADERS = {"Accept": TAXII_MEDIA_TYPE, "Content-Type": TAXII_MEDIA_TYPE}
CLI = [sys.executable, "-m", "taxii_federation.clients.cli"]
DEMO_PORTS = {"hub": 6100, "ua": 6101, "ro": 6102, "md": 6103}


def copy_demo(folder: Path) -> dict[str, int]:
    """config/ and collections/ as shipped, each node on a free port (data goes to folder/var/)."""
    shutil.copytree(REPO / "config", folder / "config")
    shutil.copytree(REPO / "collections", folder / "collections")
    ports = {name: free_port() for name in DEMO_PORTS}
    for path in (folder / "config").glob("*.yaml"):
        text = path.read_text()
        for name, port in DEMO_PORTS.items():
            text = text.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{ports[name]}/")
            text = re.sub(rf"(\n  port: ){port}\n", rf"\g<1>{ports[name]}\n", text)
        path.write_text(text)
    return ports


def _run(*args: str, stdin: str | None = None, cwd: Path) -> None:
    result = subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"taxii-fed {' '.join(args)} failed: {result.stdout}{result.stderr}")


def _collection_url(base: str, user: str, password: str) -> str:
    for _ in range(600):
        try:
            listing = requests.get(
                f"{base}alliance/collections/", auth=(user, password), headers=HEADERS, timeout=5
            )
            if listing.status_code == 200:
                shared = next(c for c in listing.json()["collections"] if c["alias"] == "alliance-indicators")
                return f"{base}alliance/collections/{shared['id']}/"
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{base} did not serve {user}'s collections within 30 s")


def _visible(url: str, user: str, password: str, object_id: str) -> bool:
    response = requests.get(
        url + "objects/", params={"match[id]": object_id}, auth=(user, password), headers=HEADERS, timeout=30
    )
    return bool(response.json().get("objects"))


def add_member_once(seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        ports = copy_demo(folder)
        up = subprocess.Popen(
            [*CLI, "federation", "up"],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            up.stdout.readline()
            readers = {
                m: _collection_url(f"http://127.0.0.1:{ports[m]}/", f"soc-{m}", f"demo-soc-{m}")
                for m in ("ua", "ro", "md")
            }
            pl = f"http://127.0.0.1:{free_port()}/"
            phases, started = {}, time.perf_counter()
            _run("federation", "add-member", "pl", "--url", pl, cwd=folder)
            phases["add-member"] = time.perf_counter() - started
            _run("users", "add", "cert-pl", "--config", "config/pl.yaml", "--grant", "alliance:*:read-write",
                 "--password-stdin", stdin="demo-cert-pl\n", cwd=folder)  # fmt: skip
            _run("federation", "check", cwd=folder)
            phases["users add + check"] = time.perf_counter() - started - phases["add-member"]
            collection = _collection_url(pl, "cert-pl", "demo-cert-pl")
            phases["new node serving"] = time.perf_counter() - started - sum(phases.values())
            objects = [indicator(n, seed=f"add-member-{seed}") for n in range(10)]
            response = requests.post(
                collection + "objects/",
                data=json.dumps({"objects": objects}),
                auth=("cert-pl", "demo-cert-pl"),
                headers=HEADERS,
                timeout=60,
            )
            assert response.status_code == 202, response.text
            deadline = time.perf_counter() + 120
            while not all(
                _visible(url, f"soc-{m}", f"demo-soc-{m}", objects[-1]["id"]) for m, url in readers.items()
            ):
                if time.perf_counter() > deadline:
                    raise RuntimeError("the new member's publish did not reach ua, ro and md within 120 s")
                time.sleep(0.02)
            phases["publish reaches ua, ro, md"] = time.perf_counter() - started - sum(phases.values())
            phases["total"] = time.perf_counter() - started
            return phases
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)


def _scrape_seconds(url: str, auth: tuple[str, str], count: int, cold: callable = None) -> tuple[float, int]:
    session = requests.Session()
    session.auth = auth
    session.get(url, timeout=60)  # warm-up
    timings, size = [], 0
    for _ in range(count):
        if cold:
            cold()
        started = time.perf_counter()
        response = session.get(url, timeout=60)
        timings.append(time.perf_counter() - started)
        size = len(response.content)
    return statistics.median(timings), size


def scrape_costs(objects: int, scrapes: int) -> list[str]:
    from taxii_federation.server.config import load_node_config
    from taxii_federation.server.serve import start_node
    from tests.conftest import COLLECTION_ID, PASSWORDS, write_node_files

    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        node = start_node(load_node_config(write_node_files(Path(temporary) / "node", "bench")))
        try:
            session = requests.Session()
            session.auth = ("cert", PASSWORDS["cert"])
            url = f"{node.url}alliance/collections/{COLLECTION_ID}/objects/"
            for start in range(0, objects, 1000):
                body = {
                    "objects": [indicator(n, seed="scrape") for n in range(start, min(objects, start + 1000))]
                }
                assert (
                    session.post(url, data=json.dumps(body), headers=HEADERS, timeout=300).status_code == 202
                )
            metrics, ops = f"{node.url}metrics", ("ops", PASSWORDS["ops"])
            warm, size = _scrape_seconds(metrics, ops, scrapes)
            sizes = node.app.extensions["taxii_observability"].metrics.collection_sizes
            cold, _ = _scrape_seconds(metrics, ops, max(5, scrapes // 5), cold=sizes.invalidate)
            rows.append(f"| node, {objects:,} objects, sizes cached | {warm * 1000:.1f} ms | {size:,} B |")
            rows.append(
                f"| node, {objects:,} objects, sizes counted afresh | {cold * 1000:.1f} ms | {size:,} B |"
            )
        finally:
            node.stop()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        ports = copy_demo(folder)
        up = subprocess.Popen(
            [*CLI, "federation", "up"], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            up.stdout.readline()
            hub = f"http://127.0.0.1:{ports['hub']}/"
            wait_until_listening(ports["hub"], up, "federation up")
            warm, size = _scrape_seconds(f"{hub}metrics", ("ops-hub", "demo-ops-hub"), scrapes)
            # After the cache's 5 s: each scrape measures 9 lags and probes 4 members (in parallel).
            cold, _ = _scrape_seconds(
                f"{hub}metrics", ("ops-hub", "demo-ops-hub"), 5, cold=lambda: time.sleep(CACHE_SECONDS + 0.2)
            )
            rows.append(
                f"| hub of the demo, 9 links and 4 members (lag and reachability cached 5 s) "
                f"| {warm * 1000:.1f} ms | {size:,} B |"
            )
            rows.append(
                f"| hub of the demo, lag and reachability measured afresh | {cold * 1000:.1f} ms | {size:,} B"
                " |"
            )
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3]
    runs = []
    for sample in range(options.samples):
        phases = add_member_once(sample)
        print("add a member: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()), flush=True)
        runs.append(phases)
    rows = ["| step (from `federation add-member` on) | median | slowest |", "|---|---|---|"]
    for phase in runs[0]:
        median, slowest = median_p95([run[phase] for run in runs])[0], max(run[phase] for run in runs)
        rows.append(f"| {phase} | {median:.2f} s | {slowest:.2f} s |")
    scrape_rows = [
        "| /metrics of | median scrape | body |",
        "|---|---|---|",
        *scrape_costs(options.objects, options.scrapes),
    ]
    for row in scrape_rows[2:]:
        print(row, flush=True)
    command = (
        f"python -m bench.operations_bench --samples {options.samples} --objects {options.objects}"
        f" --scrapes {options.scrapes}"
    )
    report = "\n".join(
        [
            f"Command: `{command}`  ",
            machine_line() + f" Load average at start: {' '.join(load)}.",
            "",
            f"Adding a member to the running demo alliance ({options.samples} runs):",
            "",
            *rows,
            "",
            "Scrape cost (median time to answer one GET /metrics, timed from the client, keep-alive):",
            "",
            *scrape_rows,
        ]
    )
    print(report)
    if not options.no_write:
        write_section("operations", "Hub operations: adding a member, scraping /metrics", report)


if __name__ == "__main__":
    main()
