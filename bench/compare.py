"""Our node beside medallion 3.0 and OpenTAXII 0.9.3, same machine, same run, same data.

    pip install -e '.[bench]'
    python -m bench.compare            # full: 1k, 10k, 100k objects per collection, and 1M for our node
    python -m bench.compare --quick    # 1k and 10k, fewer requests, no MongoDB pair: under two minutes
    python -m bench.compare --servers ours,medallion   # a subset

Our node and medallion each run twice: on SQLite (medallion: its memory backend) and on MongoDB (both against
secantusdb, up to 10,000 objects, 1,000 with --quick); each is compared with its counterpart on the same kind
of storage.

Each server gets a fresh collection per size, filled over HTTP with the real ATT&CK ICS release plus generated
indicators (bench/stix_data.py), then the read and polling workloads run against it. Every request has a time
budget: a server that exceeds it is reported "over budget" at that size instead of being waited for. Results
(medians, p95, ratios to each peer, peak RSS) are printed and written to docs/benchmarks.md with a plot.
"""

import argparse
import tempfile
import time
from pathlib import Path

import requests

from bench.compare_report import plot, table, targets
from bench.report import DOCS, machine_line, write_section
from bench.servers import MONGODB_LARGEST, SERVERS, Server
from bench.stix_data import envelopes, middle_id
from bench.workloads import READS, OverBudget, Refused, failure_cell, polling, reads
from taxii_federation.server.media import TAXII_MEDIA_TYPE

# The MongoDB pair takes longer than the rest of a quick run together; --servers adds it back.
QUICK_SERVERS = "ours,medallion,opentaxii"


def ingest(server: Server, count: int, envelope: int, seed: str, budget: float) -> float:
    bodies = envelopes(count, envelope, seed)
    headers = {**server.headers, "Content-Type": TAXII_MEDIA_TYPE}
    started = time.perf_counter()
    with requests.Session() as session:
        for body in bodies:
            try:
                response = session.post(
                    server.collection_url + "objects/", data=body, headers=headers, timeout=budget * 30
                )
            except requests.Timeout:
                raise OverBudget from None
            if response.status_code != 202:
                raise Refused(server, response.status_code, response.text)
            if time.perf_counter() - started > budget * 30:
                raise OverBudget
    return count / (time.perf_counter() - started)


def run_size(key: str, size: int, options, folder: Path) -> dict:
    server_folder = folder / f"{key}-{size}"
    server_folder.mkdir(parents=True)
    server = SERVERS[key](server_folder)
    result: dict = {"server": server.name}
    try:
        small = min(size, 2000)
        try:
            result["ingest_100"] = ingest(server, small, 100, f"{size}-a", options.budget)
            result["ingest_1000"] = (
                ingest(server, size - small, 1000, f"{size}-b", options.budget) if size > small else None
            )
        except (OverBudget, Refused) as error:
            reason = "over budget" if isinstance(error, OverBudget) else str(error)
            print(f"{server.name} at {size:,}: ingest stopped: {reason}")
            result["ingest_100"] = result.get("ingest_100", failure_cell(error))
            result["ingest_1000"] = failure_cell(error)
            result["reads"] = dict.fromkeys(READS, "not filled")
            return result
        # match[id] asks for an object the first envelopes stored.
        result["reads"] = reads(server, options.requests, options.budget, middle_id(small, f"{size}-a"))
        result["polling"] = {
            n: polling(server, n, options.poll_pages, options.budget) for n in options.pollers
        }
        result["rss_mib"] = server.peak_rss_mib()
    finally:
        server.stop()
    return result


def _largest(server: type[Server], quick: bool) -> int:
    return server.largest_quick if quick else server.largest


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1k and 10k objects, fewer requests (< 2 minutes)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds a single read may take (default 10, or 2 with --quick)",
    )
    parser.add_argument(
        "--servers",
        default=None,
        help=f"comma-separated, of {', '.join(SERVERS)} (default: all; with --quick: {QUICK_SERVERS})",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    options.default_servers = QUICK_SERVERS if options.quick else ",".join(SERVERS)
    options.servers = options.servers or options.default_servers
    requested = options.servers.split(",")
    if unknown := set(requested) - set(SERVERS):
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}: choose from {', '.join(SERVERS)}")
    options.chosen = [key for key in SERVERS if key in requested]
    options.budget = options.budget or (2.0 if options.quick else 10.0)
    options.sizes = [1000, 10_000] if options.quick else [1000, 10_000, 100_000, 1_000_000]
    options.requests = 15 if options.quick else 50
    options.pollers = (1, 8) if options.quick else (1, 8, 32)
    options.poll_pages = 10 if options.quick else 20
    return options


def _run(options: argparse.Namespace) -> dict[int, dict[str, dict]]:
    all_results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in options.sizes:
            keys = [key for key in options.chosen if _largest(SERVERS[key], options.quick) >= size]
            all_results[size] = {}
            for key in keys:
                started = time.perf_counter()
                all_results[size][key] = run_size(key, size, options, Path(folder))
                print(
                    f"{size:>9,} {SERVERS[key].name:<18} done in {time.perf_counter() - started:6.1f} s",
                    flush=True,
                )
            print("\n".join(table(size, all_results[size], options.requests)), flush=True)
    return all_results


def _report_text(options: argparse.Namespace, all_results: dict, plot_name: str) -> str:
    command = (
        "python -m bench.compare"
        + (" --quick" if options.quick else "")
        + f" --budget {options.budget:g}"
        + (f" --servers {options.servers}" if options.servers != options.default_servers else "")
    )
    setup = (
        "Our node under `taxii-fed serve`, on SQLite and on MongoDB; medallion 3.0.0 (its Werkzeug server)"
        " on its memory backend and on its MongoDB backend; OpenTAXII 0.9.3 (TAXII 2.1 on SQLite, gunicorn"
        " with 2 workers, JWT auth, with the one fix it needs to answer TAXII 2.1 at all: its JSON writer"
        " given a `default` for UUIDs, upstream PR #289). The MongoDB server is secantusdb 0.7 (a MongoDB"
        " wire-protocol server, one per server under test, on the same machine), and the MongoDB pair is"
        f" measured up to {MONGODB_LARGEST:,} objects (1,000 with --quick): secantusdb scans the whole"
        " collection for most query shapes, so what that pair shows is how each server uses MongoDB, not"
        " how fast MongoDB is (docs/mongodb.md)."
        " The peers are installed from PyPI into `.bench-venv/` by the harness."
    )
    method = (
        "Data: the ATT&CK ICS 18.1 release interleaved with generated indicators. Read figures are"
        f" milliseconds over {options.requests} requests, median (p95), timed on one keep-alive connection"
        " per client, written and read on a plain socket as wrk does (http.client would add ~0.2 ms to"
        " every figure and requests ~0.7 ms, see bench/http_client.py);"
        " each workload starts with untimed warm-up requests (half a second's worth, at least one:"
        " bench/workloads.py says why). Ingest posts with requests. Each request has a"
        f" {options.budget:g} s budget, and a server that exceeds it is 'over budget' at that size."
        " Ratios: how many times faster our node is than the peer on the same kind of storage"
        " (medians; for ingest and requests/s, our rate over theirs). Peak RSS counts each server's whole"
        " process tree: gunicorn's workers, our node's validation workers, a MongoDB server's secantusdb."
        " medallion's `next` is a one-shot"
        " in-memory session, so its deep-page repeats walk on. A workload that would have taken longer"
        " than six request budgets in all was measured on fewer requests (at least 5, shown as n). After a"
        " request is given up on, the harness waits until the server is idle again before the next"
        " workload; a server still busy three budgets later is over budget for the rest of that size."
    )
    report = [
        f"Command: `{command}`  ",
        f"{machine_line()} {setup}",
        "",
        method,
        "",
        f"![read latency against collection size]({plot_name})",
        "",
        *targets(all_results),
        "",
    ]
    for size, results in all_results.items():
        report += table(size, results, options.requests) + [""]
    return "\n".join(report)


def main() -> None:
    options = _options()
    all_results = _run(options)
    plot_path = DOCS.parent / "bench-read-latency.png"
    text = _report_text(options, all_results, plot_path.name)
    print(text)
    if not options.no_write:
        plot(all_results, plot_path)
        write_section("compare", "Side by side: medallion and OpenTAXII", text)


if __name__ == "__main__":
    main()
