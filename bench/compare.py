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
import json
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

import requests

from bench.http_client import ReadClient, ReadTimeout, Reply
from bench.report import DOCS, machine_line, median_p95, write_section
from bench.servers import MONGODB_LARGEST, SERVERS, Server
from bench.stix_data import objects

OVER = "over budget"
# The MongoDB pair takes longer than the rest of a quick run together; --servers adds it back.
QUICK_SERVERS = "ours,medallion,opentaxii"
READS = (
    "first page",
    "deep page by next",
    "added_after near the end",
    "match[type]",
    "match[id]",
    "manifest",
)


class OverBudget(Exception):
    pass


class Refused(Exception):
    """The server answered with an unexpected status: reported as such, never as a timing."""

    def __init__(self, server: Server, status: int, text: str):
        super().__init__(f"{server.name}: HTTP {status} {text[:200]}")
        self.cell = f"HTTP {status}"


def _client(server: Server, budget: float) -> ReadClient:
    return ReadClient(server.collection_url, server.headers, budget)


def _get(client: ReadClient, server: Server, url: str, params: dict, budget: float) -> tuple[Reply, float]:
    """One timed GET, on the client's keep-alive connection (bench/http_client.py says why that client)."""
    if server.saturated:
        raise OverBudget  # still working on requests given up on: over budget for the rest of this size
    started = time.perf_counter()
    try:
        response = client.get(url, params)
    except ReadTimeout:
        raise OverBudget from None
    elapsed = time.perf_counter() - started
    if elapsed > budget:
        raise OverBudget
    if response.status_code != 200:
        raise Refused(server, response.status_code, response.text)
    return response, elapsed * 1000


def ingest(server: Server, count: int, envelope: int, seed: str, budget: float) -> float:
    stream = list(objects(count, seed))
    bodies = [json.dumps({"objects": stream[i : i + envelope]}) for i in range(0, count, envelope)]
    headers = {**server.headers, "Content-Type": "application/taxii+json;version=2.1"}
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


MIN_REQUESTS = 5


def _repeat(
    client: ReadClient, server: Server, url: str, params: dict, repeats: int, budget: float
) -> list[float]:
    """`repeats` timings, or fewer (at least MIN_REQUESTS) when a slow server would take longer than
    6 request budgets in all."""
    timings, started = [], time.perf_counter()
    for _ in range(repeats):
        timings.append(_get(client, server, url, params, budget)[1])
        if len(timings) >= MIN_REQUESTS and time.perf_counter() - started > budget * 6:
            break
    return timings


def _deep_position(client: ReadClient, server: Server, budget: float) -> tuple[str | None, str | None]:
    """Walk to about 90% of the collection with `next`; return that page's next token and its first
    date_added."""
    objects_url, params, pages = server.collection_url + "objects/", {"limit": 1000}, []
    for _ in range(10_000):
        response, _ = _get(client, server, objects_url, params, budget)
        body = response.json()
        pages.append((params.get("next"), response.headers.get("X-TAXII-Date-Added-First")))
        if not body.get("more") or not body.get("next"):
            break
        params = {"limit": 1000, "next": body["next"]}
    return pages[int(len(pages) * 0.9)]


def reads(server: Server, repeats: int, budget: float, stored_id: str) -> dict[str, list[float] | str]:
    client = _client(server, budget)
    try:
        return _reads(client, server, repeats, budget, stored_id)
    finally:
        client.close()


def _reads(client: ReadClient, server: Server, repeats: int, budget: float, stored_id: str) -> dict:
    """Each workload measured on its own: a server over budget on one is still measured on the others (after
    it has finished the requests given up on, see Server.wait_until_idle)."""
    objects_url = server.collection_url + "objects/"
    results = _measure(
        client,
        server,
        {
            "first page": (objects_url, {"limit": 100}),
            "match[type]": (objects_url, {"limit": 100, "match[type]": "relationship"}),
            "match[id]": (objects_url, {"match[id]": stored_id}),
            "manifest": (server.collection_url + "manifest/", {"limit": 100}),
        },
        repeats,
        budget,
    )
    try:
        token, deep_date = _deep_position(client, server, budget)
    except (OverBudget, Refused) as error:
        # Without the walk to the end there is no deep cursor or late date to start from.
        failure = _failure_cell(error)
        server.wait_until_idle(limit=3 * budget)
        return {**results, "deep page by next": failure, "added_after near the end": failure}
    deep_plans = {
        # A stateless cursor can be replayed; medallion's next is a one-shot in-memory session, so for it
        # every repeat walks on (each a deep page all the same).
        "deep page by next": (objects_url, {"limit": 100, **({"next": token} if token else {})}),
        "added_after near the end": (
            objects_url,
            {"limit": 100, **({"added_after": deep_date} if deep_date else {})},
        ),
    }
    return {**results, **_measure(client, server, deep_plans, repeats, budget)}


def _measure(client: ReadClient, server: Server, plans: dict, repeats: int, budget: float) -> dict:
    results: dict[str, list[float] | str] = {}
    for workload, (url, params) in plans.items():
        try:
            results[workload] = _repeat(client, server, url, params, repeats, budget)
        except (OverBudget, Refused) as error:
            results[workload] = _failure_cell(error)
            server.wait_until_idle(limit=3 * budget)
    return results


def _failure_cell(error: Exception) -> str:
    return error.cell if isinstance(error, Refused) else OVER


def polling(server: Server, pollers: int, pages_each: int, budget: float) -> dict | str:
    """`pollers` clients each walk `pages_each` pages of 100 with `next`, all at once."""
    latencies: list[float] = []
    started = time.perf_counter()
    failures: list[Exception] = []

    def walk() -> None:
        params = {"limit": 100}
        client = _client(server, budget)  # one connection per poller, as each would hold its own
        try:
            for _ in range(pages_each):
                if time.perf_counter() - started > budget * 6:
                    break  # a slow server is measured on what it served in the time it had
                url = server.collection_url + "objects/"
                response, elapsed = _get(client, server, url, params, budget)
                latencies.append(elapsed)
                body = response.json()
                # At the end, start the walk again, as a poller's next cycle would.
                params = {"limit": 100, "next": body["next"]} if body.get("more") else {"limit": 100}
        except (OverBudget, Refused) as error:
            failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=walk) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=budget * pages_each + 60)
    elapsed = time.perf_counter() - started
    if failures:
        server.wait_until_idle(limit=3 * budget)
        return _failure_cell(failures[0])
    if not latencies:
        return OVER
    return {"requests_per_s": len(latencies) / elapsed, "p95_ms": median_p95(latencies)[1]}


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
            result["ingest_100"] = result.get("ingest_100", _failure_cell(error))
            result["ingest_1000"] = _failure_cell(error)
            result["reads"] = dict.fromkeys(READS, "not filled")
            return result
        # An object stored by the first envelopes, for match[id] (the middle of the first envelopes' objects).
        stored_id = next(islice(objects(small, f"{size}-a"), small // 2, None))["id"]
        result["reads"] = reads(server, options.requests, options.budget, stored_id)
        result["polling"] = {
            n: polling(server, n, options.poll_pages, options.budget) for n in options.pollers
        }
        result["rss_mib"] = server.peak_rss_mib()
    finally:
        server.stop()
    return result


def _cell(value, requested: int | None = None) -> str:
    if isinstance(value, str):  # over budget, an HTTP error, not filled
        return value
    if isinstance(value, list):
        median, p95 = median_p95(value)
        return f"{median:.1f} ({p95:.1f})" + (
            f", n={len(value)}" if requested and len(value) < requested else ""
        )
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def _ratio(ours, theirs, higher_is_better: bool = False) -> str:
    """How many times better we are; read latencies compare medians."""
    if isinstance(ours, str | None) or isinstance(theirs, str | None):
        return "peer over budget" if theirs == OVER and not isinstance(ours, str | None) else "-"
    ours_value = median_p95(ours)[0] if isinstance(ours, list) else ours
    theirs_value = median_p95(theirs)[0] if isinstance(theirs, list) else theirs
    if not ours_value or not theirs_value:
        return "-"
    return f"{(ours_value / theirs_value) if higher_is_better else (theirs_value / ours_value):,.1f}x"


def _largest(server: type[Server], quick: bool) -> int:
    return server.largest_quick if quick else server.largest


def _ours_label(key: str) -> str:
    return "ours" if key == "ours" else "ours on MongoDB"


def table(size: int, results: dict[str, dict], requested: int | None = None) -> list[str]:
    keys = [key for key in SERVERS if key in results]
    peers = [key for key in keys if SERVERS[key].counterpart in results]

    def cells(first: str, columns: list[str]) -> str:
        return "| " + " | ".join([first, *columns]) + " |"

    lines = [
        f"### {size:,} objects in the collection",
        "",
        cells(
            "workload",
            [results[k]["server"] for k in keys]
            + [f"{_ours_label(SERVERS[k].counterpart)} vs {results[k]['server']}" for k in peers],
        ),
        "|" + "---|" * (1 + len(keys) + len(peers)),
    ]

    def row(label: str, values: dict, better_high: bool = False) -> None:
        # A read cell shows n when fewer requests than asked fitted in the time budget.
        measured = [_cell(values.get(k), requested) for k in keys]
        ratios = [_ratio(values.get(SERVERS[k].counterpart), values.get(k), better_high) for k in peers]
        lines.append(cells(label, measured + ratios))

    row("ingest, envelopes of 100 (objects/s)", {k: results[k].get("ingest_100") for k in keys}, True)
    row("ingest, envelopes of 1,000 (objects/s)", {k: results[k].get("ingest_1000") for k in keys}, True)
    for workload in READS:
        row(f"{workload}: median (p95) ms", {k: results[k]["reads"].get(workload) for k in keys})
    for pollers in sorted({n for k in keys for n in (results[k].get("polling") or {})}):
        values = {k: (results[k].get("polling") or {}).get(pollers) for k in keys}
        row(
            f"{pollers} concurrent pollers: requests/s",
            {k: v["requests_per_s"] if isinstance(v, dict) else v for k, v in values.items()},
            True,
        )
        row(
            f"{pollers} concurrent pollers: p95 ms",
            {k: v["p95_ms"] if isinstance(v, dict) else v for k, v in values.items()},
        )
    row("peak RSS (MiB)", {k: results[k].get("rss_mib") for k in keys})
    return lines


def _median(value) -> float | None:
    return median_p95(value)[0] if isinstance(value, list) else None


def _read_ratios(all_results: dict[int, dict[str, dict]], ours: str, peer: str, sizes) -> list[tuple]:
    """(peer median / our median, size, workload) for every read both servers finished."""
    ratios = []
    for size in sizes:
        results = all_results.get(size, {})
        if ours not in results or peer not in results:
            continue
        for workload in READS:
            mine, theirs = (_median(results[key]["reads"].get(workload)) for key in (ours, peer))
            if mine and theirs:
                ratios.append((theirs / mine, size, workload))
    return ratios


def _poller_ratios(results: dict[str, dict], peer: str) -> list[tuple]:
    """(ratio, label) for each polling figure both servers finished; higher is better for us."""
    ratios = []
    for pollers, mine in (results["ours"].get("polling") or {}).items():
        theirs = (results[peer].get("polling") or {}).get(pollers)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            rate = mine["requests_per_s"] / theirs["requests_per_s"]
            ratios.append((rate, f"{pollers} pollers requests/s"))
            ratios.append((theirs["p95_ms"] / mine["p95_ms"], f"{pollers} pollers p95"))
    return ratios


def _versus_medallion(all_results: dict, ours: str, peer: str) -> tuple[str, str, bool | None]:
    ratios = _read_ratios(all_results, ours, peer, sorted(all_results))
    target = f"{SERVERS[ours].name} at least 100x {SERVERS[peer].name} on page reads wherever it finishes"
    if not any(ours in results and peer in results for results in all_results.values()):
        return target, "not run", None
    if not ratios:
        return target, "the peer finished no read within its budget", None
    worst = min(ratios)
    return target, f"lowest {worst[0]:,.0f}x ({worst[2]}, {worst[1]:,} objects)", worst[0] >= 100


def _versus_opentaxii(all_results: dict) -> tuple[str, str, bool | None]:
    target = "at least 3x OpenTAXII on every read workload at 100,000 objects"
    results = all_results.get(100_000, {})
    if "ours" not in results or "opentaxii" not in results:
        return target, "not run (full mode only)", None
    ratios = [(r, w) for r, _, w in _read_ratios(all_results, "ours", "opentaxii", [100_000])]
    ratios += _poller_ratios(results, "opentaxii")
    # A workload the peer did not finish within its budget is one we beat by more than budget / our time.
    over = [w for w in READS if results["opentaxii"]["reads"].get(w) == OVER]
    measured = f"lowest {min(ratios)[0]:,.0f}x ({min(ratios)[1]})" if ratios else "no shared figure"
    measured += f"; OpenTAXII over budget on: {', '.join(over)}" if over else ""
    return target, measured, all(r >= 3 for r, _ in ratios)


def _flat_at_a_million(all_results: dict) -> tuple[str, str, bool | None]:
    target = "our read latency at 1,000,000 objects within 1.5x of 1,000"
    small, large = all_results.get(1000, {}).get("ours"), all_results.get(1_000_000, {}).get("ours")
    if not small or not large:
        return target, "not run (full mode only)", None
    growth = [
        (_median(large["reads"][w]) / _median(small["reads"][w]), w)
        for w in READS
        if _median(large["reads"].get(w)) and _median(small["reads"].get(w))
    ]
    worst = max(growth)
    return target, f"highest {worst[0]:.2f}x ({worst[1]})", worst[0] <= 1.5


def _ingest_rate(all_results: dict) -> tuple[str, str, bool | None]:
    target = "ingest at least 5,000 objects/s"
    largest = max((size for size, results in all_results.items() if "ours" in results), default=0)
    rate = all_results[largest]["ours"].get("ingest_1000") if largest else None
    if not isinstance(rate, float):
        return target, "not measured", None
    return target, f"{rate:,.0f} objects/s (envelopes of 1,000, filling {largest:,})", rate >= 5000


def targets(all_results: dict[int, dict[str, dict]]) -> list[str]:
    """The targets the benchmark holds us to (issue 5), each checked against this run's figures."""
    checks = [
        _versus_medallion(all_results, "ours", "medallion"),
        _versus_medallion(all_results, "ours-mongodb", "medallion-mongodb"),
        _versus_opentaxii(all_results),
        _flat_at_a_million(all_results),
        _ingest_rate(all_results),
    ]
    lines = ["### Targets, checked against this run", "", "| target | this run | met |", "|---|---|---|"]
    for target, measured, met in checks:
        lines.append(f"| {target} | {measured} | {'-' if met is None else ('yes' if met else 'no')} |")
    return lines


def plot(all_results: dict[int, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key in SERVERS:
        points = [
            (size, median_p95(r[key]["reads"]["first page"])[0])
            for size, r in sorted(all_results.items())
            if key in r and isinstance(r[key].get("reads", {}).get("first page"), list)
        ]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=SERVERS[key].name)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("objects in the collection")
    axes.set_ylabel("first page (limit=100), median ms")
    axes.set_title("Read latency against collection size (missing points: over budget)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1k and 10k objects, fewer requests (~2 minutes)"
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
    default_servers = QUICK_SERVERS if options.quick else ",".join(SERVERS)
    options.servers = options.servers or default_servers
    requested = options.servers.split(",")
    if unknown := set(requested) - set(SERVERS):
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}: choose from {', '.join(SERVERS)}")
    chosen = [key for key in SERVERS if key in requested]
    options.budget = options.budget or (2.0 if options.quick else 10.0)
    sizes = [1000, 10_000] if options.quick else [1000, 10_000, 100_000, 1_000_000]
    options.requests = 15 if options.quick else 50
    options.pollers = (1, 8) if options.quick else (1, 8, 32)
    options.poll_pages = 10 if options.quick else 20
    all_results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            keys = [key for key in chosen if _largest(SERVERS[key], options.quick) >= size]
            all_results[size] = {}
            for key in keys:
                started = time.perf_counter()
                all_results[size][key] = run_size(key, size, options, Path(folder))
                print(
                    f"{size:>9,} {SERVERS[key].name:<18} done in {time.perf_counter() - started:6.1f} s",
                    flush=True,
                )
            print("\n".join(table(size, all_results[size], options.requests)), flush=True)
    command = (
        "python -m bench.compare"
        + (" --quick" if options.quick else "")
        + f" --budget {options.budget:g}"
        + (f" --servers {options.servers}" if options.servers != default_servers else "")
    )
    plot_path = DOCS.parent / "bench-read-latency.png"
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
        " per client from Python's http.client (requests would add ~0.5 ms to every figure, see"
        " bench/http_client.py); ingest posts with requests. Each request has a"
        f" {options.budget:g} s budget, and a server that exceeds it is 'over budget' at that size."
        " Ratios: how many times faster our node is than the peer on the same kind of storage"
        " (medians; for ingest and requests/s, our rate over theirs); peak RSS of a MongoDB server includes"
        " its secantusdb process. medallion's `next` is a one-shot"
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
        f"![read latency against collection size]({plot_path.name})",
        "",
    ]
    report += targets(all_results) + [""]
    for size, results in all_results.items():
        report += table(size, results, options.requests) + [""]
    text = "\n".join(report)
    print(text)
    if not options.no_write:
        plot(all_results, plot_path)
        write_section("compare", "Side by side: medallion and OpenTAXII", text)


if __name__ == "__main__":
    main()
