"""A stock OpenTAXII 0.9.3 (EclecticIQ; TAXII 2.1 on SQLite, served by gunicorn) on 127.0.0.1, from the
peers' own virtualenv (tests/peer_venv.py), with one API root and one collection: an alliance member for the
mixed-federation test and a peer for the benchmarks. See ../shared/PEERS.md for its quirks.

OpenTAXII 0.9.3 writes uuid.UUID values with json.dumps and answers its TAXII 2.1 collection listing, POST
and status with an HTML 500 (fixed upstream after the release, PR #289): it is started through a small WSGI
entry module, written at run time, that gives that json.dumps a `default` for UUIDs and changes nothing else.
"""

import json
import os
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

from tests.peer_venv import ensure_peer_venv
from tests.processes import start_listening_server

_ENTRY = """
import json
import uuid

import opentaxii.taxii2.http as taxii2_http

_dumps = json.dumps


class _UUIDSafeJson:
    def __getattr__(self, name):
        return getattr(json, name)

    @staticmethod
    def dumps(data, *args, **kwargs):
        kwargs.setdefault("default", lambda value: str(value) if isinstance(value, uuid.UUID) else value)
        return _dumps(data, *args, **kwargs)


taxii2_http.json = _UUIDSafeJson()

from opentaxii.http import app  # noqa: E402
"""


class OpenTaxiiMember:
    """`users` maps account names to passwords; in 0.9.3 only admin accounts may read and write TAXII 2
    collections, so every account is made an admin."""

    def __init__(
        self,
        folder: Path,
        port: int,
        api_root_title: str,
        alias: str,
        users: dict[str, str],
        max_content_length: int = 10 * 1024 * 1024,
        workers: int = 2,
    ):
        self.folder, self.port, self.users, self.workers = folder, port, users, workers
        self.alias, self.api_root_title = alias, api_root_title
        self.url = f"http://127.0.0.1:{port}/"
        self.taxii2_url = f"{self.url}taxii2/"  # what a federation member's `url` is
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "opentaxii.yml"
        self.config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "domain": f"127.0.0.1:{port}",
                    "support_basic_auth": True,
                    "return_server_error_details": False,
                    "auth_api": {
                        "class": "opentaxii.auth.sqldb.SQLDatabaseAPI",
                        "parameters": {
                            "db_connection": f"sqlite:///{folder / 'auth.db'}",
                            "create_tables": True,
                            "secret": uuid.uuid4().hex + uuid.uuid4().hex,
                            "token_ttl_secs": 86400,
                        },
                    },
                    "taxii1": None,
                    "taxii2": {
                        "persistence_api": {
                            "class": "opentaxii.persistence.sqldb.Taxii2SQLDatabaseAPI",
                            "parameters": {
                                "db_connection": f"sqlite:///{folder / 'data.db'}",
                                "create_tables": True,
                            },
                        },
                        "title": "OpenTAXII peer",
                        "max_content_length": max_content_length,
                        "public_discovery": True,
                        "allow_custom_properties": True,
                    },
                    "logging": {"opentaxii": "warning", "root": "warning"},
                }
            )
        )
        self.api_root_id = self.collection_id = ""
        self.process: subprocess.Popen | None = None

    def start(self) -> "OpenTaxiiMember":
        bin_dir = ensure_peer_venv()
        env = {**os.environ, "OPENTAXII_CONFIG": str(self.config), "PYTHONPATH": str(self.folder)}

        def run(*args: str) -> None:
            subprocess.run([str(bin_dir / args[0]), *args[1:]], env=env, check=True, capture_output=True)

        run("opentaxii-add-api-root", "-t", self.api_root_title, "--default")
        database = sqlite3.connect(self.folder / "data.db")
        self.api_root_id = str(uuid.UUID(database.execute("SELECT id FROM opentaxii_api_root").fetchone()[0]))
        run("opentaxii-add-collection", "-r", self.api_root_id, "-t", self.alias, "-a", self.alias)
        row = database.execute("SELECT id FROM opentaxii_collection").fetchone()
        self.collection_id = str(uuid.UUID(row[0]))
        database.close()
        for user, password in self.users.items():
            run("opentaxii-create-account", "-u", user, "-p", password, "-a")
            run("opentaxii-update-account", "-u", user, "-f", "admin", "-v", "yes")
        (self.folder / "opentaxii_entry.py").write_text(_ENTRY)
        self.process = start_listening_server(
            [
                str(bin_dir / "gunicorn"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--chdir",
                str(self.folder),
                "--config",
                "python:opentaxii.http",
                "opentaxii_entry:app",
            ],
            self.port,
            self.folder / "opentaxii.log",
            "OpenTAXII",
            60,
            env=env,
        )
        return self

    @property
    def collection_url(self) -> str:
        return f"{self.taxii2_url}{self.api_root_id}/collections/{self.collection_id}/"

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown; SIGTERM drains for 30 s
            self.process.wait(timeout=30)
