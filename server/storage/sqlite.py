"""The embedded default backend: one SQLite file per node, WAL mode, keyset pages on indexes.

Every page read is an index range scan that stops after `limit + 1` rows, so its cost does not grow
with the collection. Writers serialise on SQLite's write lock (BEGIN IMMEDIATE), which is what makes
date_added strictly increasing in commit order, even with several processes on one file.
"""

import heapq
import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from taxii_federation.server.json_output import json_text
from taxii_federation.server.storage.base import (
    VERSION_ALL,
    VERSION_FIRST,
    VERSION_LAST,
    CollectionSize,
    NewObject,
    ObjectQuery,
    Page,
    Provenance,
    StatusBuilder,
    StatusRecord,
    Storage,
    StoredVersion,
    VersionKey,
    WriteOutcome,
    fill_page,
    plan_write,
)
from taxii_federation.server.timestamps import now_micros

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    collection_id TEXT NOT NULL,
    date_added INTEGER NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    is_first INTEGER NOT NULL,
    is_last INTEGER NOT NULL,
    origin_node TEXT,
    link TEXT,
    body TEXT NOT NULL,
    version_text TEXT,
    is_latest_spec INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_by_date_added ON objects (collection_id, date_added);
CREATE UNIQUE INDEX IF NOT EXISTS objects_by_version ON objects (collection_id, id, version, spec_version);
CREATE INDEX IF NOT EXISTS objects_last_by_date_added ON objects (collection_id, is_last, date_added);
CREATE INDEX IF NOT EXISTS objects_by_type ON objects (collection_id, type, date_added);
CREATE INDEX IF NOT EXISTS objects_last_by_type ON objects (collection_id, type, is_last, date_added);
CREATE TABLE IF NOT EXISTS collection_clock (
    collection_id TEXT PRIMARY KEY,
    last_date_added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS status (
    id TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS status_by_created ON status (created);
"""
_COLUMNS = "id, type, spec_version, version, date_added, body, origin_node, link, version_text"
_COLUMNS_WITHOUT_BODY = "id, type, spec_version, version, date_added, '', origin_node, link, version_text"
_IN_CHUNK = 500  # stays under SQLite's bound-parameter limit


def _chunks(items: list, size: int = _IN_CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


class SqliteStorage(Storage):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._connection().executescript(_SCHEMA)
        self._upgrade()

    def _upgrade(self) -> None:
        """Files from before version_text and is_latest_spec get the columns (their rows show rendered
        versions, and are all STIX 2.1)."""
        columns = {row[1] for row in self._connection().execute("PRAGMA table_info(objects)")}
        if "version_text" not in columns:
            self._connection().execute("ALTER TABLE objects ADD COLUMN version_text TEXT")
        if "is_latest_spec" not in columns:  # every earlier version was STIX 2.1
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ALTER TABLE objects ADD COLUMN is_latest_spec INTEGER NOT NULL DEFAULT 1")
            # A version is unique per STIX version now (VersionKey): the index takes spec_version too.
            connection.execute("DROP INDEX IF EXISTS objects_by_version")
            connection.execute(
                "CREATE UNIQUE INDEX objects_by_version ON objects (collection_id, id, version, spec_version)"
            )
            connection.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
            connection = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA cache_size=-8192")  # 8 MiB a connection, one per server thread
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    # -- writes ------------------------------------------------------------------------------------

    def add_envelope(
        self,
        collection_id: str,
        objects: list[NewObject],
        provenance: Provenance,
        build_status: StatusBuilder | None,
        retention_micros: int,
    ) -> tuple[list[WriteOutcome], StatusRecord | None]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            outcomes = self._add_in_transaction(connection, collection_id, objects, provenance)
            status = build_status(outcomes, set(), set()) if build_status else None
            if status is not None:
                self._save_status_in_transaction(connection, status, retention_micros)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return outcomes, status

    def _add_in_transaction(
        self,
        connection: sqlite3.Connection,
        collection_id: str,
        objects: list[NewObject],
        provenance: Provenance,
    ) -> list[WriteOutcome]:
        existing = self._existing_versions(connection, collection_id, sorted({obj.id for obj in objects}))
        plan = plan_write(objects, existing, self._next_date_added(connection, collection_id))
        rows = [
            (
                collection_id,
                planned.date_added,
                planned.object.id,
                planned.version,
                planned.object.type,
                planned.object.spec_version,
                int(planned.only_version),
                int(planned.only_version),
                provenance.origin_node,
                provenance.link,
                planned.object.body,
                planned.object.version_text,
            )
            for planned in plan.versions
        ]
        if rows:
            connection.executemany(
                "INSERT INTO objects (collection_id, date_added, id, version, type, spec_version, is_first,"
                " is_last, origin_node, link, body, version_text) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            connection.execute(
                "INSERT INTO collection_clock (collection_id, last_date_added) VALUES (?, ?)"
                " ON CONFLICT (collection_id) DO UPDATE SET last_date_added = excluded.last_date_added",
                (collection_id, plan.last_date_added),
            )
        self._reflag(connection, collection_id, sorted(plan.ids_to_reflag))
        return plan.outcomes

    @staticmethod
    def _existing_versions(
        connection: sqlite3.Connection, collection_id: str, ids: list[str]
    ) -> dict[str, set[VersionKey]]:
        existing: dict[str, set[VersionKey]] = {}
        for chunk in _chunks(ids):
            for object_id, version, spec_version in connection.execute(
                "SELECT id, version, spec_version FROM objects"
                f" WHERE collection_id = ? AND id IN ({_marks(len(chunk))})",
                [collection_id, *chunk],
            ):
                existing.setdefault(object_id, set()).add((version, spec_version))
        return existing

    @staticmethod
    def _next_date_added(connection: sqlite3.Connection, collection_id: str) -> int:
        row = connection.execute(
            "SELECT last_date_added FROM collection_clock WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        return max(now_micros(), row[0] + 1 if row else 0)

    @staticmethod
    def _reflag(connection: sqlite3.Connection, collection_id: str, ids: list[str]) -> None:
        """Recompute which version of each id is the first and the last (the default `match[version]`), and
        which have its latest STIX version (served when no `match[spec_version]` is given)."""
        for chunk in _chunks(ids):
            connection.execute(
                "UPDATE objects SET"
                " is_last = (version = (SELECT MAX(o.version) FROM objects o"
                "            WHERE o.collection_id = objects.collection_id AND o.id = objects.id)),"
                " is_first = (version = (SELECT MIN(o.version) FROM objects o"
                "            WHERE o.collection_id = objects.collection_id AND o.id = objects.id)),"
                " is_latest_spec = (spec_version = (SELECT MAX(o.spec_version) FROM objects o"
                "            WHERE o.collection_id = objects.collection_id AND o.id = objects.id))"
                f" WHERE collection_id = ? AND id IN ({_marks(len(chunk))})",
                [collection_id, *chunk],
            )

    def delete_object(
        self,
        collection_id: str,
        object_id: str,
        versions: tuple[str | int, ...],
        spec_versions: tuple[str, ...],
    ) -> int:
        where, params = ["collection_id = ?", "id = ?"], [collection_id, object_id]
        _add_version_filter(where, params, versions)
        _add_in_filter(where, params, "spec_version", spec_versions)
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            deleted = connection.execute(f"DELETE FROM objects WHERE {' AND '.join(where)}", params).rowcount
            self._reflag(connection, collection_id, [object_id])
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return deleted

    # -- reads -------------------------------------------------------------------------------------

    def query(self, query: ObjectQuery) -> Page:
        connection = self._connection()
        # One ordered index range per type, merged: an IN over types would make SQLite sort every matching
        # row before returning the first page.
        type_ranges = (
            [(object_type,) for object_type in query.types] if len(query.types) > 1 else [query.types]
        )
        cursors = [self._select(connection, query, types) for types in type_ranges]
        try:
            rows = heapq.merge(*cursors, key=lambda row: row[4]) if len(cursors) > 1 else cursors[0]
            return fill_page((StoredVersion(*row) for row in rows), query.limit, query.max_bytes)
        finally:
            for cursor in cursors:
                cursor.close()  # ends the read at once when the page was full before the rows were

    @staticmethod
    def _select(connection: sqlite3.Connection, query: ObjectQuery, types: tuple[str, ...]) -> sqlite3.Cursor:
        where, params = ["collection_id = ?"], [query.collection_id]
        _add_in_filter(where, params, "id", query.ids)
        _add_in_filter(where, params, "type", types)
        _add_version_filter(where, params, query.versions)
        _add_in_filter(where, params, "spec_version", query.spec_versions)
        if not query.spec_versions:
            where.append("is_latest_spec = 1")
        lower = query.lower_bound
        if lower is not None:
            where.append("date_added > ?")
            params.append(lower)
        # Without statistics SQLite prefers an index that saves the sort; for match[id] the version index
        # holds only that object's few versions, so name it.
        index = " INDEXED BY objects_by_version" if query.ids else ""
        columns = _COLUMNS if query.with_bodies else _COLUMNS_WITHOUT_BODY
        sql = (
            f"SELECT {columns} FROM objects{index} WHERE {' AND '.join(where)}"
            f" ORDER BY date_added LIMIT {int(query.limit) + 1}"
        )
        return connection.execute(sql, params)  # read lazily: a page cut by size reads no further

    # -- status ------------------------------------------------------------------------------------

    def save_status(self, status: StatusRecord, retention_micros: int) -> None:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            self._save_status_in_transaction(connection, status, retention_micros)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    @staticmethod
    def _save_status_in_transaction(
        connection: sqlite3.Connection, status: StatusRecord, retention_micros: int
    ) -> None:
        body = json_text(
            {
                "api_root": status.api_root,
                "collection_id": status.collection_id,
                "request_timestamp": status.request_timestamp,
                "total_count": status.total_count,
                "successes": status.successes,
                "failures": status.failures,
                "pendings": status.pendings,
                "owner": status.owner,
            }
        )
        connection.execute(
            "INSERT OR REPLACE INTO status (id, created, body) VALUES (?, ?, ?)",
            (status.id, status.request_timestamp, body),
        )
        connection.execute("DELETE FROM status WHERE created < ?", (now_micros() - retention_micros,))

    def get_status(self, status_id: str) -> StatusRecord | None:
        row = self._connection().execute("SELECT body FROM status WHERE id = ?", (status_id,)).fetchone()
        if row is None:
            return None
        return StatusRecord(id=status_id, **json.loads(row[0]))

    def collection_ids(self) -> list[str]:
        rows = self._connection().execute("SELECT collection_id FROM collection_clock ORDER BY collection_id")
        return [row[0] for row in rows]

    def import_versions(self, collection_id: str, versions: list[StoredVersion]) -> int:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO objects (collection_id, date_added, id, version, type, spec_version,"
                " is_first, is_last, origin_node, link, body, version_text) VALUES (?,?,?,?,?,?,0,0,?,?,?,?)",
                [
                    (
                        collection_id,
                        v.date_added,
                        v.id,
                        v.version,
                        v.type,
                        v.spec_version,
                        v.origin_node,
                        v.link,
                        v.body,
                        v.version_text,
                    )
                    for v in versions
                ],
            )
            inserted = connection.total_changes - before
            if versions:
                connection.execute(
                    "INSERT INTO collection_clock (collection_id, last_date_added) VALUES (?, ?)"
                    " ON CONFLICT (collection_id) DO UPDATE SET"
                    " last_date_added = MAX(last_date_added, excluded.last_date_added)",
                    (collection_id, max(v.date_added for v in versions)),
                )
            self._reflag(connection, collection_id, sorted({v.id for v in versions}))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return inserted

    def list_status(self, after_id: str | None, limit: int) -> list[StatusRecord]:
        rows = self._connection().execute(
            "SELECT id, body FROM status WHERE id > ? ORDER BY id LIMIT ?", (after_id or "", limit)
        )
        return [StatusRecord(id=status_id, **json.loads(body)) for status_id, body in rows]

    def collection_sizes(self) -> dict[str, CollectionSize]:
        connection = self._connection()
        sizes = {}
        for collection_id in self.collection_ids():
            # Two counts on index ranges: (collection_id, date_added) and (collection_id, is_last, ...).
            (versions,) = connection.execute(
                "SELECT COUNT(*) FROM objects WHERE collection_id = ?", (collection_id,)
            ).fetchone()
            (objects,) = connection.execute(
                "SELECT COUNT(*) FROM objects WHERE collection_id = ? AND is_last = 1", (collection_id,)
            ).fetchone()
            sizes[collection_id] = CollectionSize(versions, objects)
        return sizes

    def ping(self) -> None:
        self._connection().execute("SELECT 1 FROM collection_clock LIMIT 1").fetchall()

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


def _add_in_filter(where: list[str], params: list, column: str, values: tuple) -> None:
    if not values:
        return
    if len(values) == 1:
        where.append(f"{column} = ?")
    else:
        where.append(f"{column} IN ({_marks(len(values))})")
    params.extend(values)


def _add_version_filter(where: list[str], params: list, versions: tuple[str | int, ...]) -> None:
    if not versions or VERSION_ALL in versions:
        return
    alternatives = []
    if VERSION_LAST in versions:
        alternatives.append("is_last = 1")
    if VERSION_FIRST in versions:
        alternatives.append("is_first = 1")
    timestamps = [value for value in versions if isinstance(value, int)]
    if timestamps:
        alternatives.append(f"version IN ({_marks(len(timestamps))})")
        params.extend(timestamps)
    where.append("(" + " OR ".join(alternatives) + ")")
