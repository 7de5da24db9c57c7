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


@dataclass
class _Progress:
    """One link's advance, waiting to be written."""

    link: str
    checkpoint: str | None
    seen: int
    stored: int
    held: Counter
    caught_up: bool
    at: float  # time.time() of the advance
    written: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def minute(self) -> int:
        return int(self.at // 60)


class FederationState:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # The links of this process write one at a time: waiting here costs nothing, while waiting on
        # SQLite's lock means sleeping in its busy handler (1, 2, 5, 10 ... 100 ms), a pass's worst delay.
        self._writing = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Progress] = []  # advances waiting for the next group commit
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
            # No fsync per commit: WAL with synchronous=NORMAL survives a crash of this process, and a
            # power loss may roll back only the latest checkpoints, never corrupt the file. A checkpoint
            # that rolls back repeats a page at an idempotent destination: it never skips an object.
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def checkpoint(self, link: str) -> str | None:
        row = self._connection().execute("SELECT checkpoint FROM links WHERE name = ?", (link,)).fetchone()
        return row[0] if row else None

    def advance(
        self, link: str, checkpoint: str | None, seen: int, stored: int, held: Counter, caught_up: bool
    ) -> None:
        """Persist a link's progress; returns once it is durable. Links that advance at the same time share
        one transaction (a group commit): the hub's links to thirty members, which all carried the same
        page, write their thirty checkpoints in one commit rather than queueing for thirty."""
        progress = _Progress(link, checkpoint, seen, stored, held, caught_up, time.time())
        with self._pending_lock:
            self._pending.append(progress)
        with self._writing:
            if not progress.written.is_set():
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                try:
                    self._write(batch)
                except BaseException as error:
                    for each in batch:
                        each.error = error
                    raise
                finally:
                    for each in batch:
                        each.written.set()
        if progress.error is not None:
            raise progress.error

    def _write(self, batch: list["_Progress"]) -> None:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "INSERT OR IGNORE INTO links (name) VALUES (?)", [(p.link,) for p in batch]
            )
            connection.executemany(
                "UPDATE links SET checkpoint = COALESCE(?, checkpoint), objects_seen = objects_seen + ?,"
                " objects_stored = objects_stored + ?, last_success = ?,"
                " caught_up_at = CASE WHEN ? THEN ? ELSE caught_up_at END WHERE name = ?",
                [(p.checkpoint, p.seen, p.stored, p.at, p.caught_up, p.at, p.link) for p in batch],
            )
            connection.executemany(
                "INSERT INTO link_minutes (link, minute, seen, stored) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (link, minute) DO UPDATE SET"
                " seen = seen + excluded.seen, stored = stored + excluded.stored",
                [(p.link, p.minute, p.seen, p.stored) for p in batch],
            )
            connection.executemany(
                "DELETE FROM link_minutes WHERE link = ? AND minute < ?",
                [(p.link, p.minute - MINUTES_KEPT) for p in batch],
            )
            connection.executemany(
                "INSERT INTO held_back (link, reason, count) VALUES (?, ?, ?)"
                " ON CONFLICT (link, reason) DO UPDATE SET count = count + excluded.count",
                [(p.link, reason, count) for p in batch for reason, count in p.held.items()],
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def record_error(self, link: str, message: str) -> None:
        connection = self._connection()
        with self._writing:
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
