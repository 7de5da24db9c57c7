"""What each link has done, in one SQLite file: its checkpoint, its health, what it held back and how many
objects it carried each minute (the dashboard's chart).

A checkpoint advances in the same transaction as the counts of that page, so a crash between a post
and the checkpoint repeats the page (idempotent at the destination) and never counts anything twice.
The file's schema version is SQLite's user_version; an older file is upgraded in place when opened, and
keeps its checkpoints.
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
# Each step upgrades the file from the version before it (index + 1 is the version it leaves).
_UPGRADES = (
    """
    ALTER TABLE links ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE link_minutes (
        link TEXT NOT NULL,
        minute INTEGER NOT NULL,
        seen INTEGER NOT NULL,
        stored INTEGER NOT NULL,
        PRIMARY KEY (link, minute)
    );
    """,
)
MINUTES_KEPT = 24 * 60


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    # One statement at a time: executescript() would commit the transaction it runs in.
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


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
    errors: int = 0  # failed passes, ever
    held_back: dict[str, int] = field(default_factory=dict)


class FederationState:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._upgrade(self._connection())

    @staticmethod
    def _upgrade(connection: sqlite3.Connection) -> None:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version == len(_UPGRADES):
            return  # current: no write lock taken (dashboards and scrapes open the file often)
        connection.execute("BEGIN IMMEDIATE")  # another process may open the same file at the same time
        try:
            _run_script(connection, _SCHEMA)
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            for upgrade in _UPGRADES[version:]:
                _run_script(connection, upgrade)
            connection.execute(f"PRAGMA user_version = {len(_UPGRADES)}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

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
            minute = int(now // 60)
            connection.execute(
                "INSERT INTO link_minutes (link, minute, seen, stored) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (link, minute) DO UPDATE SET"
                " seen = seen + excluded.seen, stored = stored + excluded.stored",
                (link, minute, seen, stored),
            )
            connection.execute(
                "DELETE FROM link_minutes WHERE link = ? AND minute < ?", (link, minute - MINUTES_KEPT)
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
            "UPDATE links SET last_error = ?, last_error_at = ?, errors = errors + 1 WHERE name = ?",
            (message, time.time(), link),
        )

    def links(self) -> dict[str, LinkState]:
        connection = self._connection()
        states = {
            row[0]: LinkState(*row)
            for row in connection.execute(
                "SELECT name, checkpoint, objects_seen, objects_stored, last_success, last_error,"
                " last_error_at, caught_up_at, errors FROM links"
            )
        }
        for link, reason, count in connection.execute("SELECT link, reason, count FROM held_back"):
            states.setdefault(link, LinkState(link)).held_back[reason] = count
        return states

    def stored_per_minute(self, since: float) -> dict[str, dict[int, int]]:
        """Per link, the objects it stored in each minute (minutes since the epoch) from `since` on."""
        stored: dict[str, dict[int, int]] = {}
        for link, minute, count in self._connection().execute(
            "SELECT link, minute, stored FROM link_minutes WHERE minute >= ?", (int(since // 60),)
        ):
            stored.setdefault(link, {})[minute] = count
        return stored

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
