"""The read workloads every benchmark of a running server shares: page reads (first, deep by `next`,
`added_after`, `match[type]`, `match[id]`, manifest) and concurrent pollers, each request timed against a
budget on a keep-alive connection (bench/http_client.py)."""

import threading
import time

from bench.http_client import ReadClient, ReadTimeout, Reply
from bench.report import median_p95
from bench.servers import Server

OVER = "over budget"
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


MIN_REQUESTS = 5
WARM_UP_SECONDS, WARM_UP_REQUESTS = 0.5, 50


def _warm_up(client: ReadClient, server: Server, url: str, params: dict, budget: float) -> None:
    """Untimed requests before the timed ones: as many as fit in WARM_UP_SECONDS (at least one, at most
    WARM_UP_REQUESTS). The timings should show a server in service, not one starting: each of our node's 16
    worker threads opens its own SQLite connection and page cache on first use (the first page at 1,000
    objects measured 3.6 ms cold against 1.7 ms warm), and a peer's workers open their database sessions."""
    started = time.perf_counter()
    for _ in range(WARM_UP_REQUESTS):
        _get(client, server, url, params, budget)
        if time.perf_counter() - started > WARM_UP_SECONDS:
            break


def _repeat(
    client: ReadClient, server: Server, url: str, params: dict, repeats: int, budget: float
) -> list[float]:
    """`repeats` timings after a warm-up, or fewer (at least MIN_REQUESTS) when a slow server would take
    longer than 6 request budgets in all."""
    _warm_up(client, server, url, params, budget)
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
            # The filter SOC tools use most; every collection size fills a page of them (relationships
            # would not at 1,000 objects: the ATT&CK release lists most of its relationships last).
            "match[type]": (objects_url, {"limit": 100, "match[type]": "indicator"}),
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
        failure = failure_cell(error)
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
            results[workload] = failure_cell(error)
            server.wait_until_idle(limit=3 * budget)
    return results


def failure_cell(error: Exception) -> str:
    return error.cell if isinstance(error, Refused) else OVER


def polling(server: Server, pollers: int, pages_each: int, budget: float) -> dict | str:
    """`pollers` clients each walk `pages_each` pages of 100 with `next`, all at once."""
    latencies: list[float] = []
    started = time.perf_counter()
    failures: list[Exception] = []

    objects_url = server.collection_url + "objects/"

    def walk() -> None:
        params = {"limit": 100}
        client = _client(server, budget)  # one connection per poller, as each would hold its own
        try:
            for _ in range(pages_each):
                if time.perf_counter() - started > budget * 6:
                    break  # a slow server is measured on what it served in the time it had
                response, elapsed = _get(client, server, objects_url, params, budget)
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
        return failure_cell(failures[0])
    if not latencies:
        return OVER
    return {"requests_per_s": len(latencies) / elapsed, "p95_ms": median_p95(latencies)[1]}
