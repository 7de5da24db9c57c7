"""What each link has done, in one SQLite file: its checkpoint, its health and what it held back.

A checkpoint advances in the same transaction as the counts of that page, so a crash between a post
and the checkpoint repeats the page (idempotent at the destination) and never counts anything twice.
"""

import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    name TEXT PRIMARY KEY,
    checkpoint TEXT,
    objects_seen INTEGER NOT NULL DEFAULT 0,
    objects_stored INTEGER NOT NULL DEFAULT 0,
    last_success REAL,
    last_error TEXT,
    last_error_at REAL,
    caught_up_at REAL
);
CREATE TABLE IF NOT EXISTS held_back (
    link TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (link, reason)
);
"""


@dataclass
class LinkState:
    name: str
    checkpoint: str | None = None
    objects_seen: int = 0
    objects_stored: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    caught_up_at: float | None = None
    held_back: dict[str, int] = field(default_factory=dict)


class FederationState:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            self._local.connection = connection
        return connection

    def checkpoint(self, link: str) -> str | None:
        row = self._connection().execute("SELECT checkpoint FROM links WHERE name = ?", (link,)).fetchone()
        return row[0] if row else None

    def advance(
        self, link: str, checkpoint: str | None, seen: int, stored: int, held: Counter, caught_up: bool
    ) -> None:
        now = time.time()
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("INSERT OR IGNORE INTO links (name) VALUES (?)", (link,))
            connection.execute(
                "UPDATE links SET checkpoint = COALESCE(?, checkpoint), objects_seen = objects_seen + ?,"
                " objects_stored = objects_stored + ?, last_success = ?,"
                " caught_up_at = CASE WHEN ? THEN ? ELSE caught_up_at END WHERE name = ?",
                (checkpoint, seen, stored, now, caught_up, now, link),
            )
            for reason, count in held.items():
                connection.execute(
                    "INSERT INTO held_back (link, reason, count) VALUES (?, ?, ?)"
                    " ON CONFLICT (link, reason) DO UPDATE SET count = count + excluded.count",
                    (link, reason, count),
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def record_error(self, link: str, message: str) -> None:
        connection = self._connection()
        connection.execute("INSERT OR IGNORE INTO links (name) VALUES (?)", (link,))
        connection.execute(
            "UPDATE links SET last_error = ?, last_error_at = ? WHERE name = ?", (message, time.time(), link)
        )

    def links(self) -> dict[str, LinkState]:
        connection = self._connection()
        states = {
            row[0]: LinkState(*row)
            for row in connection.execute(
                "SELECT name, checkpoint, objects_seen, objects_stored, last_success, last_error,"
                " last_error_at, caught_up_at FROM links"
            )
        }
        for link, reason, count in connection.execute("SELECT link, reason, count FROM held_back"):
            states.setdefault(link, LinkState(link)).held_back[reason] = count
        return states

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
