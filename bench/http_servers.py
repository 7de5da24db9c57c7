"""The HTTP servers a node could run on, side by side: the same node app (one SQLite file of 1,000 objects)
under each candidate, each in a process of its own, measured on what issue 12 asks of the server:

    python -m bench.http_servers [--sockets 500] [--requests 300] [--servers ours,cheroot,...]

- per-request overhead: match[id] and a first page of 100, medians on one keep-alive connection
  (bench/http_client.py), after untimed warm-up requests;
- slow clients: `--sockets` connections left idle, with half a header sent, or with half a body sent, then
  the time a normal GET takes to be answered (10 s budget);
- TLS: `--sockets` silent connections to the TLS port (no ClientHello), then the time of an HTTPS GET;
- headers above 64 KiB and 4 MiB: what each answers.

Prints a table and writes it to docs/benchmarks.md. The candidates other than ours and cheroot come from
the bench extra (`pip install -e '.[bench]'`)."""

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from bench.http_client import ReadClient
from bench.report import machine_line, median_p95, write_section
from bench.servers import PASSWORD, USER, _basic, write_node_config
from bench.stix_data import envelopes, middle_id
from taxii_federation.clients.federation.pki import LocalCA
from taxii_federation.server.media import TAXII_MEDIA_TYPE
from tests.processes import free_port, start_listening_server

THREADS = 16  # every candidate gets the worker threads our node has by default
BUDGET = 10.0
SIZE = 1000

CANDIDATES = {
    "ours": "taxii-federation's server (asyncio + httptools, WSGI in worker threads)",
    "cheroot": "cheroot 11 as the node ran before (16 threads, timeout 30 s, builtin TLS adapter)",
    "waitress": "waitress 3 (16 threads, connection_limit raised to 2,000; no TLS)",
    "hypercorn": "hypercorn 0.18, WSGI mode (asyncio, h11; 16-thread executor)",
    "uvicorn": "uvicorn 0.54 with httptools + a2wsgi (16 threads)",
    "granian": "granian 2.8, WSGI (Rust I/O, 16 blocking threads, one worker process)",
}
NO_TLS = {"waitress"}
WHAT_EACH_LACKS = (
    "What each lacks, beyond the table: cheroot hands a new connection to a worker before it has sent a b"
    "yte and does the TLS handshake in its accept loop, and accepts headers of any size; waitress buffers"
    " well but has no TLS; hypercorn buffers and limits headers (h11, 16 KiB) but costs about twice ours "
    "per request and does not pass the client certificate to a WSGI app; uvicorn + a2wsgi and granian str"
    "eam the body to a worker (a half-sent body holds it), limit no header size (uvicorn) and pass no cli"
    "ent certificate; granian's WSGI interface cannot be embedded (a process per server, so no `start_nod"
    "e` in a test or `federation up` process). Ours receives every request whole, answers the limits with"
    " TAXII errors and passes the verified client certificate (DER) in the environ; per request it costs "
    "what cheroot did."
)


def serve(kind: str, config_path: Path, port: int, cert: str | None, key: str | None) -> None:
    """Run the node app under `kind` until terminated (the child process of a measurement)."""
    from taxii_federation.server.app import create_app
    from taxii_federation.server.config import load_node_config

    if kind == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        os.environ["BENCH_NODE_CONFIG"] = str(config_path)
        options = {"ssl_cert": Path(cert), "ssl_key": Path(key)} if cert else {}
        Granian(
            "bench.http_servers:granian_app",
            address="127.0.0.1",
            port=port,
            interface=Interfaces.WSGI,
            workers=1,
            blocking_threads=THREADS,
            factory=True,
            **options,
        ).serve()
        return
    app = create_app(load_node_config(config_path))
    if kind == "cheroot":
        from cheroot import wsgi
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        server = wsgi.Server(("127.0.0.1", port), app, numthreads=THREADS, request_queue_size=64, timeout=30)
        if cert:
            server.ssl_adapter = BuiltinSSLAdapter(cert, key)
        server.safe_start()
    elif kind == "waitress":
        import waitress

        waitress.serve(app, host="127.0.0.1", port=port, threads=THREADS, connection_limit=2000)
    elif kind == "hypercorn":
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = config.errorlog = None
        if cert:
            config.certfile, config.keyfile = cert, key

        async def main() -> None:
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(THREADS))
            await hypercorn_serve(app, config, mode="wsgi")

        asyncio.run(main())
    elif kind == "uvicorn":
        import uvicorn
        from a2wsgi import WSGIMiddleware

        options = {"ssl_certfile": cert, "ssl_keyfile": key} if cert else {}
        uvicorn.run(
            WSGIMiddleware(app, workers=THREADS),
            host="127.0.0.1",
            port=port,
            http="httptools",
            log_level="warning",
            **options,
        )
    else:
        raise SystemExit(f"unknown server {kind!r}")


def granian_app():
    from taxii_federation.server.app import create_app
    from taxii_federation.server.config import load_node_config

    return create_app(load_node_config(os.environ["BENCH_NODE_CONFIG"]))


class Candidate:
    """One candidate serving the node in its own process; `tls` serves HTTPS with the bench's CA."""

    def __init__(self, kind: str, config_path: Path, folder: Path, pki: tuple[LocalCA, Path, Path] | None):
        self.kind, self.port = kind, free_port()
        self.scheme = "https" if pki else "http"
        self.ca = str(pki[0].files.cert) if pki else None
        log = folder / f"{kind}-{self.scheme}.log"
        if kind == "ours":
            node_config = config_path
            if pki:
                node_config = config_path.with_name("node-tls.yaml")
                text = config_path.read_text() + f"tls: {{cert: '{pki[1]}', key: '{pki[2]}'}}\n"
                node_config.write_text(text)
            command = [
                sys.executable,
                "-m",
                "taxii_federation.clients.cli",
                "serve",
                "--config",
                str(node_config),
            ]
            command += ["--port", str(self.port)]
        else:
            command = [
                sys.executable,
                "-m",
                "bench.http_servers",
                "--serve",
                kind,
                "--config",
                str(config_path),
            ]
            command += ["--port", str(self.port)]
            if pki:
                command += ["--cert", str(pki[1]), "--key", str(pki[2])]
        self.process = start_listening_server(command, self.port, log, kind)
        self.base = f"{self.scheme}://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def _headers() -> dict:
    return {"Authorization": _basic(USER, PASSWORD), "Accept": TAXII_MEDIA_TYPE}


def _timed_get(candidate: Candidate, url: str) -> str:
    """Seconds a fresh client waits for the answer, or what went wrong."""
    started = time.perf_counter()
    try:
        response = requests.get(url, headers=_headers(), verify=candidate.ca or True, timeout=BUDGET)
    except requests.Timeout:
        return f"> {BUDGET:g} s"
    except requests.RequestException as error:
        return f"error ({type(error).__name__})"
    elapsed = time.perf_counter() - started
    return f"{elapsed:.3f} s" if response.status_code == 200 else f"HTTP {response.status_code}"


def _overhead(candidate: Candidate, collection_url: str, stored_id: str, repeats: int) -> dict[str, float]:
    client = ReadClient(collection_url, _headers(), BUDGET)
    results = {}
    try:
        for name, params in (("match[id]", {"match[id]": stored_id}), ("first page", {"limit": 100})):
            for _ in range(50):
                client.get(collection_url + "objects/", params)
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                reply = client.get(collection_url + "objects/", params)
                timings.append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, reply.text[:200]
            results[name] = median_p95(timings)[0]
    finally:
        client.close()
    return results


def _slow_starts(collection_path: str) -> dict[str, bytes]:
    """What each kind of slow client has sent. The half body goes where the app reads bodies (a POST of
    objects, authenticated), so a server that hands the app a request before its body is in holds a
    worker for it."""
    head = f"Host: 127.0.0.1\r\nAuthorization: {_basic(USER, PASSWORD)}\r\nAccept: {TAXII_MEDIA_TYPE}\r\n"
    return {
        "idle": b"",
        "half header": f"GET /taxii2/ HTTP/1.1\r\n{head}X-Unfinished: ".encode(),
        "half body": (
            f"POST /{collection_path}objects/ HTTP/1.1\r\n{head}Content-Type: {TAXII_MEDIA_TYPE}\r\n"
            'Content-Length: 100000\r\n\r\n{"objects": ['
        ).encode(),
    }


def _with_open_sockets(candidate: Candidate, count: int, start: bytes, url: str, tls_after: bool) -> str:
    import ssl

    opened: list[socket.socket] = []
    context = ssl.create_default_context(cafile=candidate.ca) if tls_after else None
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", candidate.port), timeout=BUDGET)
            if context is not None:
                connection = context.wrap_socket(connection, server_hostname="127.0.0.1")
            if start:
                connection.sendall(start)
            opened.append(connection)
    except OSError as error:
        return f"{len(opened)} opened, then {type(error).__name__}"
    finally:
        result = _timed_get(candidate, url) if len(opened) == count else None
        for connection in opened:
            with contextlib.suppress(OSError):
                connection.close()
    time.sleep(1)  # the server sees the closes before the next measurement
    return result


def _large_header(candidate: Candidate, url: str, size: int) -> str:
    try:
        response = requests.get(
            url, headers={**_headers(), "X-Large": "a" * size}, verify=candidate.ca or True, timeout=BUDGET
        )
    except requests.Timeout:
        return f"no answer in {BUDGET:g} s"
    except requests.RequestException as error:
        return f"connection error ({type(error).__name__})"
    return f"{response.status_code}"


def measure(
    kind: str, config_path: Path, collection_url_path: str, stored_id: str, folder: Path, options
) -> dict:
    result: dict = {"kind": kind}
    candidate = Candidate(kind, config_path, folder, None)
    try:
        collection_url = candidate.base + collection_url_path
        url = collection_url + "objects/"
        result["overhead"] = _overhead(candidate, collection_url, stored_id, options.requests)
        slow = _slow_starts(collection_url_path)
        for name, start in slow.items():
            result[name] = _with_open_sockets(candidate, options.sockets, start, url, False)
        result["64 KiB header"] = _large_header(candidate, url, 64 * 1024)
        result["4 MiB header"] = _large_header(candidate, url, 4 * 1024 * 1024)
        result["still answers"] = _timed_get(candidate, url)
    finally:
        candidate.stop()
    if kind in NO_TLS:
        result["tls silent"] = result["tls half header"] = "no TLS"
        return result
    candidate = Candidate(kind, config_path, folder, options.pki)
    try:
        url = candidate.base + collection_url_path + "objects/"
        _timed_get(candidate, url)  # one handshake before the clock, as a client's first would be
        result["tls silent"] = _with_open_sockets(candidate, options.sockets, b"", url, False)
        half_header = _slow_starts(collection_url_path)["half header"]
        result["tls half header"] = _with_open_sockets(candidate, options.sockets, half_header, url, True)
    finally:
        candidate.stop()
    return result


def report(results: list[dict], options) -> str:
    load = os.getloadavg()
    lines = [
        f"Command: `python -m bench.http_servers --sockets {options.sockets} --requests {options.requests} "
        f"--servers {options.servers}`  ",
        f"{machine_line()} Load average at the start: {options.load[0]:.2f}, at the end: {load[0]:.2f}.",
        "",
        f"The same node app (SQLite, {SIZE:,} objects) under each server, each in a process of its own with "
        f"{THREADS} worker threads. Overhead: medians of {options.requests} requests on one keep-alive "
        "connection (bench/http_client.py). Slow clients: the time a new client waits for a GET while "
        f"{options.sockets} connections are open in that state ({BUDGET:g} s budget); over TLS the silent "
        "connections sent no ClientHello, the half-header ones finished their handshake first.",
        "",
        WHAT_EACH_LACKS,
        "",
        "| server | match[id] ms | first page ms | idle | half header | half body | TLS: silent "
        "| TLS: half header | 64 KiB header | 4 MiB header |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        overhead = result["overhead"]
        lines.append(
            f"| {CANDIDATES[result['kind']]} | {overhead['match[id]']:.2f} | {overhead['first page']:.2f} "
            f"| {result['idle']} | {result['half header']} | {result['half body']} | {result['tls silent']} "
            f"| {result['tls half header']} | {result['64 KiB header']} | {result['4 MiB header']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--servers", default=",".join(CANDIDATES))
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.serve, Path(options.config), options.port, options.cert, options.key)
        return
    options.load = os.getloadavg()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        collection_id = str(uuid.uuid4())
        config_path = write_node_config(folder, [collection_id])
        ca = LocalCA.create(folder / "pki")
        issued = ca.issue_server(folder / "pki", "node", ["127.0.0.1"])
        options.pki = (ca, issued.cert, issued.key)
        _fill(config_path, folder, collection_id)
        results = []
        for kind in options.servers.split(","):
            results.append(
                measure(
                    kind,
                    config_path,
                    f"bench/collections/{collection_id}/",
                    middle_id(SIZE, "h"),
                    folder,
                    options,
                )
            )
            print(results[-1], flush=True)
    text = report(results, options)
    print(text)
    if not options.no_write:
        write_section("http_servers", "HTTP servers: per-request overhead and slow clients", text)


def _fill(config_path: Path, folder: Path, collection_id: str) -> None:
    candidate = Candidate("ours", config_path, folder, None)
    try:
        for body in envelopes(SIZE, SIZE, "h"):
            response = requests.post(
                f"{candidate.base}bench/collections/{collection_id}/objects/",
                data=body,
                headers={**_headers(), "Content-Type": TAXII_MEDIA_TYPE},
                timeout=120,
            )
            assert response.status_code == 202 and response.json()["failure_count"] == 0, response.text[:300]
    finally:
        candidate.stop()


if __name__ == "__main__":
    main()
