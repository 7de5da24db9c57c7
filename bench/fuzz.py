"""Fuzzing a real node from outside, as an attacker would: `python -m bench.fuzz [--requests N] [--seed S]`.

It starts `taxii-fed serve` on 127.0.0.1 (SQLite, the validation worker pool on) and sends generated hostile
requests from several connections at once: every endpoint, every role, and the input classes of
bench/fuzz_inputs.py. Each answer is judged as a SOC client or a CERT tool would meet it:
- a 5xx, a hang (no answer within 5 s to a request that was sent whole), a crash of the node;
- an error (4xx) that is not a TAXII error message (`application/taxii+json;version=2.1`, a JSON object with
  `title` and `http_status`), e.g. HTML or plain text from the HTTP layer or a redirect page;
- a success whose body is not strict JSON (NaN, Infinity) or not UTF-8;
- a connection closed without an answer to a request that was sent whole;
- an error the node wrote to its log (a traceback), even when the client got a fine answer.
It prints counts by status code and by input class, the problems with examples, and with --write puts them in
docs/robustness.md. The exit code is 1 when there was any problem. The run is bounded by --requests and
--seconds and is repeatable from --seed. Written for this project rather than taken from a fuzzing
library: the probes are whole requests down to the framing bytes, which schemathesis and hypothesis's HTTP
strategies do not write, and a seeded generator keeps a 50,000-request run reproducible.
"""

import argparse
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from requests.structures import CaseInsensitiveDict

from bench.fuzz_inputs import Probe, Target, next_probe
from bench.http_client import ReadClient, ReadTimeout, Reply
from bench.report import machine_line, write_section
from bench.servers import NodeProcess
from tests.conftest import TAXII, write_node_files

DOCS = Path(__file__).resolve().parents[1] / "docs" / "robustness.md"
HANG_SECONDS = 5.0
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
PROBLEMS = (
    "5xx",
    "hang",
    "crash",
    "non-TAXII error body",
    "invalid JSON answer",
    "closed without an answer",
    "error in the node's log",
    "fuzzer error",
)


class NodeUnderTest:
    """The node in its own process; restarted if it dies, and each death is counted as a crash."""

    def __init__(self, folder: Path, max_content_length: int):
        self.config = write_node_files(
            folder, "fuzz", max_content_length=max_content_length, validation_workers=2
        )
        self.crashes = 0
        self._lock = threading.Lock()
        self.node = NodeProcess(self.config)
        self.port = self.node.port
        self.log = self.config.parent / "node.log"

    def restarted_after_crash(self) -> bool:
        """True when the node had died (it is running again when this returns)."""
        with self._lock:
            if self.node.process.poll() is None:
                return False
            self.crashes += 1
            self.node = NodeProcess(self.config, self.port)
            return True

    def stop(self) -> None:
        self.node.stop()


def _strict_json(body: bytes):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    value = json.loads(body.decode("utf-8"), parse_constant=refuse)
    if _LONE_SURROGATE_ESCAPE.search(body):
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


def judge(reply: Reply) -> str | None:
    """The problem with an answer, or None when a client could use it."""
    if reply.status_code >= 500:
        return "5xx"
    content_type = reply.headers.get("Content-Type", "")
    if reply.status_code >= 300:
        if content_type != TAXII:
            return "non-TAXII error body"
        try:
            body = _strict_json(reply.body)
        except ValueError:
            return "non-TAXII error body"
        if not isinstance(body, dict) or not isinstance(body.get("title"), str):
            return "non-TAXII error body"
        if body.get("http_status") != str(reply.status_code):
            return "non-TAXII error body"
        return None
    if reply.body:
        if content_type != TAXII:
            return "invalid JSON answer"
        try:
            _strict_json(reply.body)
        except (ValueError, UnicodeError):
            return "invalid JSON answer"
    return None


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_class: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    problems: Counter = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    left_waiting: int = 0
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, probe: Probe, outcome: str, problem: str | None, elapsed: float, snippet: str) -> None:
        with self.lock:
            self.requests += 1
            self.by_status[outcome] += 1
            self.by_class[probe.input_class][outcome] += 1
            self.slowest = max(self.slowest, elapsed)
            if problem:
                self.problems[problem] += 1
                self.by_class[probe.input_class][problem] += 1
                examples = self.examples[(probe.input_class, problem)]
                if len(examples) < 3:
                    examples.append(f"{probe.summary} -> {outcome} {snippet[:160]!r}")


def _learn(target: Target, reply: Reply) -> None:
    """Status ids and next cursors from good answers feed later probes."""
    if reply.status_code not in (200, 202) or b'"' not in reply.body[:2]:
        return
    try:
        body = json.loads(reply.body)
    except ValueError:
        return
    if reply.status_code == 202 and isinstance(body.get("id"), str) and len(target.status_ids) < 200:
        target.status_ids.append(body["id"])
    if isinstance(body.get("next"), str) and len(target.next_tokens) < 200:
        target.next_tokens.append(body["next"])


def _send_incomplete(target: Target, probe: Probe) -> Reply | None:
    """A request the server must wait on: send it, wait a little for an answer, then give up."""
    with socket.create_connection((target.host, target.port), timeout=1.0) as connection:
        connection.sendall(probe.request)
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                data = connection.recv(65536)
                if not data:
                    break
                received += data
        except TimeoutError:
            return None
    if not received:
        return None
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = CaseInsensitiveDict(
        (name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)
    )
    # The body may not have arrived whole in the short wait: judge the head, and the body only when it is
    # an error message that fits in what was received.
    if int(status_line.split(" ")[1]) < 300:
        body = b""
    return Reply(int(status_line.split(" ")[1]), headers, body)


def _exchange(target: Target, client: ReadClient, probe: Probe) -> tuple[Reply | None, str | None]:
    """The answer and, when there is none, the problem."""
    if probe.incomplete:
        try:
            reply = _send_incomplete(target, probe)
        except OSError:
            return None, None
        return reply, None
    try:
        return client.send(probe.request), None
    except ReadTimeout:
        return None, "hang"
    except (ConnectionError, OSError):
        client.close()
        return None, "closed without an answer"


def _worker(
    target: Target, node: NodeUnderTest, tally: Tally, seed: int, deadline: float, budget: int
) -> None:
    rng = random.Random(seed)
    client = ReadClient(f"http://{target.host}:{target.port}/", {}, timeout=HANG_SECONDS * 2)
    while time.monotonic() < deadline:
        with tally.lock:
            if tally.requests >= budget:
                return
        try:
            probe = next_probe(rng, target)
        except Exception as error:  # a fuzzer bug must show, not silently stop a connection's share
            tally.record(
                Probe("fuzzer", "generator failed", b""), "generator failed", "fuzzer error", 0, repr(error)
            )
            continue
        started = time.monotonic()
        reply, problem = _exchange(target, client, probe)
        elapsed = time.monotonic() - started
        if probe.input_class == "conflicting framing" or probe.incomplete:
            client.close()  # framing probes leave the connection in a state no later request should inherit
        if reply is None:
            if problem is None:
                with tally.lock:
                    tally.left_waiting += 1
                tally.record(probe, "no answer (client gave up)", None, elapsed, "")
                continue
            if node.restarted_after_crash():
                problem = "crash"
            tally.record(probe, problem, problem, elapsed, "")
            continue
        if elapsed > HANG_SECONDS and not probe.incomplete:
            problem = "hang"
        problem = problem or judge(reply)
        tally.record(probe, str(reply.status_code), problem, elapsed, reply.text if problem else "")
        _learn(target, reply)


def run(
    requests: int, seconds: float, seed: int, connections: int, folder: Path, max_content_length: int
) -> Tally:
    node = NodeUnderTest(folder, max_content_length)
    target = Target.with_real_objects("127.0.0.1", node.port)
    tally = Tally()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=_worker, args=(target, node, tally, seed * 1000 + index, deadline, requests), daemon=True
        )
        for index in range(connections)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 60)
        if node.restarted_after_crash():
            tally.problems["crash"] += 1
    finally:
        node.stop()
    # An exception the node only logged (a callback of its event loop, a worker) is a bug found all the same.
    tracebacks = node.log.read_text(errors="replace").count("Traceback (most recent call last)")
    if tracebacks:
        tally.problems["error in the node's log"] += tracebacks
        tally.examples[("node log", "error in the node's log")].append(f"see {node.log}")
    return tally


def report(tally: Tally, command: str) -> str:
    elapsed = time.monotonic() - tally.started
    lines = [
        f"Command: `{command}`",
        "",
        machine_line(),
        "",
        f"{tally.requests} requests in {elapsed:.0f} s; slowest answer {tally.slowest:.2f} s; "
        f"{tally.left_waiting} incomplete requests left waiting by the client (not counted as hangs).",
        "",
        "| problem | count |",
        "|---|---|",
        *[f"| {name} | {tally.problems.get(name, 0)} |" for name in PROBLEMS],
        "",
        "Answers by status: "
        + ", ".join(f"{status} x{count}" for status, count in sorted(tally.by_status.items())),
        "",
        "| input class | requests | answers | problems |",
        "|---|---|---|---|",
    ]
    for input_class, counts in sorted(tally.by_class.items()):
        answers = {k: v for k, v in counts.items() if k not in PROBLEMS}
        problems = {k: v for k, v in counts.items() if k in PROBLEMS}
        summary = ", ".join(f"{k} x{v}" for k, v in sorted(answers.items()))
        problem_text = ", ".join(f"{k} x{v}" for k, v in sorted(problems.items())) or "none"
        lines.append(f"| {input_class} | {sum(answers.values())} | {summary} | {problem_text} |")
    if tally.examples:
        lines += ["", "Examples of problems:", ""]
        for (input_class, problem), examples in sorted(tally.examples.items()):
            lines += [f"- {input_class}, {problem}: " + "; ".join(f"`{e}`" for e in examples)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--max-content-length", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--folder", type=Path, default=Path("var/fuzz"))
    parser.add_argument("--write", action="store_true", help="write the report to docs/robustness.md")
    args = parser.parse_args()
    folder = args.folder / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    tally = run(args.requests, args.seconds, args.seed, args.connections, folder, args.max_content_length)
    command = "python -m bench.fuzz " + " ".join(sys.argv[1:])
    text = report(tally, command)
    print(text)
    if args.write:
        write_section("fuzz", "Generated hostile requests against a real node", text, DOCS, "# Robustness")
    raise SystemExit(1 if sum(tally.problems.values()) else 0)


if __name__ == "__main__":
    main()
