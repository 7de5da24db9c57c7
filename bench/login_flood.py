"""A flood of wrong passwords beside a logged-in SOC poller: `python -m bench.login_flood [--seconds S]`.

The node (`taxii-fed serve`, SQLite, 1,000 ATT&CK objects) is polled by one client whose credentials it has
verified: a page of 100 objects after another, on one keep-alive connection. Its latency is measured alone,
then while attackers send wrong passwords as fast as they are answered, in two ways:
- from one address (127.0.0.1, the poller's own), each guess with a new connection;
- from many addresses (127.0.x.y, every guess from another one, under every per-address limit), as a botnet
  would, with unknown user names, so that only the cap on concurrent password checks stands in the way.
The figures (poller median and p95 alone and under each flood, their ratio, guesses answered per second and
how) go to docs/robustness.md. Target: the poller's median rises by no more than 2x.
"""

import argparse
import base64
import json
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.http_client import ReadClient
from bench.report import machine_line, median_p95, write_section
from bench.servers import NodeProcess
from tests.conftest import COLLECTION_ID, PASSWORDS, TAXII, load_bundle, write_node_files

DOCS = Path(__file__).resolve().parents[1] / "docs" / "robustness.md"


def _poll(url: str, seconds: float) -> list[float]:
    credentials = base64.b64encode(f"soc:{PASSWORDS['soc']}".encode()).decode()
    client = ReadClient(url, {"Accept": TAXII, "Authorization": f"Basic {credentials}"}, timeout=30)
    client.get(url, {"limit": 100})  # logs in: the node verifies the password once
    timings, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        reply = client.get(url, {"limit": 100})
        timings.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.text[:200]
    client.close()
    return timings


def _guess(port: int, source: str, user: str) -> int:
    credentials = base64.b64encode(f"{user}:not-the-password".encode()).decode()
    request = (
        f"GET /taxii2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {TAXII}\r\n"
        f"Authorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as connection:
        connection.sendall(request)
        head = connection.recv(4096)
    return int(head.split(b" ", 2)[1])


def _flood(port: int, many_addresses: bool, stop: threading.Event, answers: Counter, worker: int) -> None:
    for attempt in range(10_000_000):
        if stop.is_set():
            return
        if many_addresses:
            number = worker * 1_000_000 + attempt
            source, user = (
                f"127.{1 + number // 65536 % 250}.{number // 256 % 256}.{1 + number % 254}",
                f"u{number}",
            )
        else:
            source, user = "127.0.0.1", "cert"
        try:
            answers[_guess(port, source, user)] += 1
        except OSError:
            answers["connection error"] += 1


def _measure(url: str, port: int, seconds: float, flood: str | None, attackers: int) -> dict:
    stop, answers = threading.Event(), Counter()
    threads = [
        threading.Thread(target=_flood, args=(port, flood == "many addresses", stop, answers, index))
        for index in range(attackers if flood else 0)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0 if flood else 0)  # the flood in full swing (and the first lockouts taken) before timing
    started = time.monotonic()
    timings = _poll(url, seconds)
    elapsed = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join(60)
    median, p95 = median_p95(timings)
    return {
        "median": median,
        "p95": p95,
        "answers": dict(answers),
        "guesses_per_second": sum(answers.values()) / (elapsed + 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--attackers", type=int, default=16, help="concurrent guessing connections")
    parser.add_argument("--folder", type=Path, default=Path("var/login-flood"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    config = write_node_files(args.folder / str(int(time.time())), "flood", validation_workers=2)
    node = NodeProcess(config)
    url = f"{node.url}alliance/collections/{COLLECTION_ID}/objects/"
    try:
        import requests

        objects = load_bundle("attack/ics-attack-18.1.json")[:1000]
        requests.post(
            url,
            data=json.dumps({"objects": objects}),
            auth=("cert", PASSWORDS["cert"]),
            headers={"Accept": TAXII, "Content-Type": TAXII},
            timeout=120,
        ).raise_for_status()
        results = {
            mode: _measure(url, node.port, args.seconds, mode, args.attackers)
            for mode in (None, "one address", "many addresses")
        }
    finally:
        node.stop()
    alone = results[None]["median"]
    lines = [
        f"Command: `python -m bench.login_flood {' '.join(sys.argv[1:])}`",
        "",
        machine_line(),
        "",
        f"A verified poller reading pages of 100 objects for {args.seconds:g} s, alone and beside "
        f"{args.attackers} connections guessing passwords as fast as they are answered.",
        "",
        "| flood | poller median | poller p95 | median vs alone | guesses answered/s | answers to guesses |",
        "|---|---|---|---|---|---|",
    ]
    for mode, result in results.items():
        answers = ", ".join(
            f"{status} x{count}" for status, count in sorted(result["answers"].items(), key=str)
        )
        lines.append(
            f"| {mode or 'none'} | {result['median'] * 1000:.2f} ms | {result['p95'] * 1000:.2f} ms |"
            f" {result['median'] / alone:.2f}x | {result['guesses_per_second']:.0f} | {answers or '-'} |"
        )
    worst = max(result["median"] / alone for result in results.values())
    verdict = "met" if worst <= 2 else "missed"
    lines += ["", f"Target: the poller's median at most 2x alone under any flood: {verdict} ({worst:.2f}x)."]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        write_section(
            "login-flood", "Wrong passwords beside a logged-in poller", report, DOCS, "# Robustness"
        )


if __name__ == "__main__":
    main()
