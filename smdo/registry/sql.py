"""The registry's two dialects: the statements `Registry` runs are the same on both; these hold
the few differences (placeholders, how a transaction that excludes other writers begins, the
schema's creation). SQLite creates its schema on open; PostgreSQL's comes from the migrations
(`smdo db upgrade`) and is checked on open."""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import psycopg

from smdo.postgres import SESSION_OPTIONS, migrations

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('data_version', 0);
CREATE TABLE IF NOT EXISTS subscribers (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    unp TEXT NOT NULL,
    status TEXT NOT NULL,
    delivery_mode TEXT NOT NULL CHECK (delivery_mode IN ('push', 'pull')),
    push_url TEXT,
    edms_product TEXT NOT NULL DEFAULT '',
    edms_version TEXT NOT NULL DEFAULT '',
    sys_id TEXT NOT NULL DEFAULT '',
    contact TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    fingerprint TEXT PRIMARY KEY,          -- one certificate speaks for one subscriber only
    code TEXT NOT NULL REFERENCES subscribers(code),
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    pem TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_code ON certificates(code);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    reason TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS history_code ON history(code, id);
CREATE TABLE IF NOT EXISTS conclusions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL,
    at TEXT NOT NULL,
    suite_version TEXT NOT NULL,
    passed INTEGER NOT NULL,
    summary TEXT NOT NULL,
    document BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS conclusions_code ON conclusions(code, id);
"""

# Columns added after the first release (version 1), in this order: (name, definition). An older
# registry.db gets them when it is opened (version 2), every existing subscriber their defaults,
# which are today's behaviour; PostgreSQL gets them from migrations 3 and 4.
ADDED_COLUMNS = (
    ("ack_dialect", "TEXT NOT NULL DEFAULT 'hub'"),
    ("profile", "TEXT NOT NULL DEFAULT 'envelope'"),
    ("mail_address", "TEXT"),
    ("changed_version", "INTEGER NOT NULL DEFAULT 0"),  # data_version of its last change (hubs reload only those)
)

#: The SQLite registry's schema version (PRAGMA user_version); a newer file is refused.
SQLITE_SCHEMA_VERSION = 2  # 2: the added columns below, and subscribers.changed_version
_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


class RegistryDb(Protocol):
    location: str

    def execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        """Run one statement (`?` placeholders); a cursor (fetchone, fetchall, iteration)."""

    def begin_write(self) -> None:
        """Begin a transaction no other writer can interleave with."""

    def begin_read(self) -> None:
        """Begin a transaction that reads one consistent state."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class SqliteRegistryDb:
    def __init__(self, path: Path) -> None:
        from smdo.storage import StorageError

        self.location = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._db_connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._db_connection.execute("PRAGMA journal_mode=WAL")
        self._db_connection.execute("PRAGMA synchronous=FULL")  # rare writes: make each one durable
        self._db_connection.execute("PRAGMA foreign_keys=ON")
        version = self._db_connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SQLITE_SCHEMA_VERSION:
            self._db_connection.close()
            raise StorageError(f"{path}: registry schema version {version} is newer than this hub knows "
                               f"({SQLITE_SCHEMA_VERSION}): run a newer smdo-hub")
        # executescript commits any open transaction first, so the script carries its own.
        self._db_connection.executescript(
            "BEGIN IMMEDIATE;" + _SCHEMA + _added_columns(self._db_connection)
            + "CREATE INDEX IF NOT EXISTS subscribers_changed_version ON subscribers(changed_version);"
            + f"PRAGMA user_version={SQLITE_SCHEMA_VERSION}; COMMIT;")

    def execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self._db_connection.execute(sql, args)

    def begin_write(self) -> None:
        self._db_connection.execute("BEGIN IMMEDIATE")

    def begin_read(self) -> None:
        self._db_connection.execute("BEGIN")

    def commit(self) -> None:
        self._db_connection.execute("COMMIT")

    def rollback(self) -> None:
        self._db_connection.execute("ROLLBACK")

    def close(self) -> None:
        self._db_connection.close()


def _added_columns(conn: sqlite3.Connection) -> str:
    """The ALTER TABLE statements a registry.db of version 1 (or a new one) still needs."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(subscribers)")}  # none yet in a new file
    return "".join(f"ALTER TABLE subscribers ADD COLUMN {name} {ddl};" for name, ddl in ADDED_COLUMNS
                   if name not in present)


class PostgresRegistryDb:
    def __init__(self, dsn: str) -> None:
        from smdo.storage import StorageError

        self.location = _PASSWORD.sub(r"\1***@", dsn)
        self._dsn = dsn
        self._in_transaction = False
        try:
            self._db_connection = psycopg.connect(dsn, autocommit=True, options=SESSION_OPTIONS)
        except psycopg.OperationalError as exc:
            raise StorageError(f"cannot connect to {self.location}: {str(exc).strip().splitlines()[0]}") from None
        try:
            migrations.check_sync(self._db_connection, self.location)
        except BaseException:
            self._db_connection.close()
            raise

    def _usable(self) -> psycopg.Connection[Any]:
        """A new connection when the old one broke (server restart, session ended), but never in
        the middle of a transaction: that transaction fails, the next one works again."""
        if not self._in_transaction and (self._db_connection.closed or self._db_connection.broken):
            self._db_connection.close()
            self._db_connection = psycopg.connect(self._dsn, autocommit=True, options=SESSION_OPTIONS)
        return self._db_connection

    def execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self._usable().execute(sql.replace("?", "%s"), args)

    def begin_write(self) -> None:
        self._usable().execute("BEGIN")
        self._in_transaction = True
        # The version row is every registry writer's first lock, so writers run one at a time
        # (what BEGIN IMMEDIATE gives on SQLite): check-then-insert cannot race another node.
        self._db_connection.execute("SELECT value FROM meta WHERE key = 'data_version' FOR UPDATE")

    def begin_read(self) -> None:
        self._usable().execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self._in_transaction = True

    def commit(self) -> None:
        self._in_transaction = False
        self._db_connection.execute("COMMIT")

    def rollback(self) -> None:
        self._in_transaction = False
        if not (self._db_connection.closed or self._db_connection.broken):
            self._db_connection.execute("ROLLBACK")

    def close(self) -> None:
        self._db_connection.close()
