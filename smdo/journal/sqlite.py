"""The journal on SQLite (stdlib sqlite3, WAL, synchronous=FULL): the hub's embedded default store.

SQL only: the rules a write follows are `smdo.journal.transitions`, the entries `smdo.journal.entries`,
the audit `smdo.journal.audit`. Tables: `entries` (the hash chain, the record of truth), `chain_head`,
and two views kept for queries: `transactions` (one row per packet received or made, with the raw
bytes of accepted ones) and `deliveries` (one row per packet and receiver, its current state and
lease). Every change to them is written together with its chain entry.

All statements run on one dedicated thread that owns the connection: a write group is one sync
function there, so one thread hop and one fsync per group, however many packets the group holds.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from smdo.journal import claims
from smdo.journal import rows as R
from smdo.journal.audit import DELIVERY_COLUMNS, ENTRY_COLUMNS, TRANSACTION_COLUMNS, Progress, run_audit
from smdo.journal.chain import GENESIS, ChainProblem, ChainWriter
from smdo.journal.entries import prepare
from smdo.journal.records import Accepted, Carried, Claimed, Duplicate, Lanes, RawFile, ReceiverBacklog, Record, TransactionView
from smdo.journal.timing import LockTimes
from smdo.journal.transitions import (
    FINISHED,
    PENDING,
    WritePlan,
    accepted_msg_ids,
    archived_msg_ids,
    changed_msg_ids,
    plan_write,
)
from smdo.storage import StorageError

T = TypeVar("T")

#: The schema version this code writes (PRAGMA user_version); a newer file is refused.
#: 2: indexes the streaming audit pages by, lease release without a scan, kept delivery counts.
#: 3: packets in `transactions.packet`, the record's last column (see `_apply`); `raw` keeps older ones.
#: 4: operators' search indexes. 5: `transactions_unarchived`, the rows archiving still has to look at.
SCHEMA_VERSION = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,          -- canonical JSON of the entry, including its seq
    hash TEXT NOT NULL,
    msg_id TEXT                  -- the entry's msg_id, copied out of body for a transaction's history
);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY,
    entry_seq INTEGER NOT NULL,
    outcome TEXT NOT NULL,       -- accepted | rejected
    msg_id TEXT,
    sender TEXT,
    receivers TEXT NOT NULL,     -- JSON list
    msg_type INTEGER,
    acknow INTEGER,
    ack_for TEXT,
    origin TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at REAL NOT NULL,
    deadline REAL,
    codes TEXT NOT NULL,         -- JSON list
    stage TEXT,
    raw BLOB,                    -- accepted packets, written by schema versions up to 2
    answer BLOB,
    packet BLOB                  -- accepted packets since version 3: last, so a large one is written in place
);
CREATE UNIQUE INDEX IF NOT EXISTS transactions_accepted_msg_id
    ON transactions (msg_id) WHERE outcome = 'accepted';
CREATE INDEX IF NOT EXISTS transactions_msg_id ON transactions (msg_id);
CREATE INDEX IF NOT EXISTS transactions_received_at ON transactions (received_at);
CREATE INDEX IF NOT EXISTS transactions_ack_for ON transactions (ack_for) WHERE ack_for IS NOT NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL,
    receiver TEXT NOT NULL,
    mode TEXT NOT NULL,          -- push | pull
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL,
    deadline REAL NOT NULL,
    updated_at REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    entry_seq INTEGER NOT NULL,  -- the entry that set the current state
    claimed_by TEXT,             -- lease: which worker/mailbox fetch holds it, until when
    claim_until REAL,
    delivered_at REAL,           -- when the 101 came (statistics: time to delivery)
    registered_at REAL,          -- when the registration ack came (time to registration)
    UNIQUE (msg_id, receiver)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (mode, next_at)
    WHERE state IN ('accepted', 'retry-wait', 'forwarding');
CREATE INDEX IF NOT EXISTS deliveries_deadline ON deliveries (deadline)
    WHERE state IN ('accepted', 'retry-wait', 'forwarding');
CREATE INDEX IF NOT EXISTS deliveries_mailbox ON deliveries (receiver, next_at)
    WHERE mode = 'pull' AND state IN ('accepted', 'retry-wait', 'forwarding');
"""

#: Added after the first release: columns ALTERed into older journals, then indexes on them.
_ADDED_COLUMNS = (
    ("entries", "msg_id", "TEXT"),
    ("deliveries", "delivered_at", "REAL"),
    ("deliveries", "registered_at", "REAL"),
    ("transactions", "packet", "BLOB"),
)
INDEXES = """
CREATE INDEX IF NOT EXISTS entries_msg_id ON entries (msg_id) WHERE msg_id IS NOT NULL;
-- statistics read a period's documents from this index alone (the table rows hold packet bodies)
CREATE INDEX IF NOT EXISTS transactions_period
    ON transactions (received_at, outcome, origin, msg_type, sender, msg_id);
CREATE INDEX IF NOT EXISTS deliveries_delivered_at ON deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
-- the audit reads transactions by entry range and deliveries in the order their state was set
CREATE INDEX IF NOT EXISTS transactions_entry_seq ON transactions (entry_seq);
CREATE INDEX IF NOT EXISTS deliveries_entry_seq ON deliveries (entry_seq);
-- start-up releases leases without reading finished deliveries (a leased row is always forwarding)
CREATE INDEX IF NOT EXISTS deliveries_forwarding ON deliveries (claimed_by) WHERE state = 'forwarding';
-- operators' searches, newest first without a scan (schema 4): by receiver, delivery state, outcome, sender
CREATE INDEX IF NOT EXISTS deliveries_receiver ON deliveries (receiver, id);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, id);
-- (refusals only: an index on every outcome would tempt the planner to walk all accepted rows,
-- bodies and all, for the write path's "outcome = 'accepted' AND msg_id IN (...)")
CREATE INDEX IF NOT EXISTS transactions_rejected ON transactions (id) WHERE outcome = 'rejected';
CREATE INDEX IF NOT EXISTS transactions_sender ON transactions (sender, id);
-- archiving walks only the rows still holding a packet (schema 5): archived ones leave this index
CREATE INDEX IF NOT EXISTS transactions_unarchived ON transactions (received_at, id)
    WHERE outcome = 'accepted' AND coalesce(packet, raw) IS NOT NULL;
"""

#: Deliveries per state, kept by triggers in the transaction that changes a state, so /metrics and
#: health read a handful of rows instead of counting the whole table. Filled once on upgrade.
COUNTS = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS delivery_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
DELETE FROM delivery_counts;
INSERT INTO delivery_counts (state, n) SELECT state, count(*) FROM deliveries GROUP BY state;
CREATE TRIGGER IF NOT EXISTS deliveries_counted_insert AFTER INSERT ON deliveries BEGIN
    INSERT INTO delivery_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS deliveries_counted_update AFTER UPDATE OF state ON deliveries
    WHEN OLD.state <> NEW.state BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO delivery_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS deliveries_counted_delete AFTER DELETE ON deliveries BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE state = OLD.state;
END;
PRAGMA user_version=%d;
COMMIT;
""" % SCHEMA_VERSION

_BUSY_TIMEOUT_MS = 10_000

#: How long an idle hub trusts "nothing is due" before looking again (another worker's or node's
#: writes, a lease running out); its own writes end the wait at once.
IDLE_RECHECK = 0.5

#: The WAL is truncated after this many seconds without a write, or once it is larger than the cap.
QUIET_SECONDS = 2.0
WAL_CAP_BYTES = 64 * 2**20


class SchemaTooNew(StorageError):
    pass


class SqliteJournal:
    """`JournalStore` on one SQLite file. Several processes may share it (WAL, BEGIN IMMEDIATE)."""

    def __init__(self, path: str | Path, *, quiet: float = QUIET_SECONDS, wal_cap: int = WAL_CAP_BYTES) -> None:
        """`quiet`: seconds without a write after which the WAL is truncated; `wal_cap`: WAL size
        above which it is truncated even under load."""
        self.path = Path(path)
        self.location = str(self.path)
        self._db_connection: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_thread: ThreadPoolExecutor | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._times = LockTimes()
        self._quiet, self._wal_cap = quiet, wal_cap
        self._last_write = time.monotonic()
        # The idle delivery poll: until when (in the callers' clock) nothing is due for push, as
        # learnt from the due-index by the last empty claim; every write of ours forgets it.
        self._idle_until = float("-inf")
        self._generation = 0
        #: Calls into SQLite (hops to the connection threads): how tests see that an idle hub queries nothing.
        self.round_trips = 0

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One thread owns the connection; every statement runs there, in submission order.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sqlite")
        try:
            self._db_connection = await self._on_thread(_connect, self.path)
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise
        # Operators' reads (metrics, console, statistics) on a second connection and thread: they
        # never queue behind a commit, and a commit never waits for them.
        self._reader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sqlite-read")
        self._reader = await asyncio.get_running_loop().run_in_executor(self._reader_thread, _connect_reader, self.path)
        # Checkpoints (copying the WAL into the database, with an fsync) run on a connection of
        # their own, so no commit waits behind one and no answer is delayed by it.
        self._checkpointer = asyncio.create_task(self._checkpoint_every(1.0), name="journal-checkpoint")

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._reader is not None and self._reader_thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader_thread, sqlite3.Connection.close,
                                                             self._reader)
            self._reader = None
        if self._reader_thread is not None:
            self._reader_thread.shutdown(wait=True)
            self._reader_thread = None
        if self._db_connection is not None:
            await self._on_thread(sqlite3.Connection.close, self._db_connection)
            self._db_connection = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    async def _checkpoint_every(self, interval: float) -> None:
        """Copy the WAL into the database every `interval` (PASSIVE: never blocks a writer); when
        the hub has been quiet for a while, or the WAL passed its cap, also truncate the file
        (TRUNCATE: waits at most briefly for readers, then the next write starts a new, small WAL).
        PRAGMA journal_size_limit also trims the file whenever SQLite rewinds the WAL itself."""
        while True:
            await asyncio.sleep(interval)
            size = self.wal_bytes()
            if size == 0:
                continue  # nothing written since the last truncation: an idle hub opens nothing
            quiet = time.monotonic() - self._last_write >= self._quiet
            mode = "TRUNCATE" if size and (quiet or size > self._wal_cap) else "PASSIVE"
            try:
                await asyncio.to_thread(_checkpoint, self.path, mode)
            except sqlite3.Error:
                pass  # busy with another checkpointer: the next round catches up

    async def _read_side(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(reader connection, *args) on the operators' read thread."""
        assert self._reader is not None and self._reader_thread is not None, "journal is not open"
        self.round_trips += 1
        return await asyncio.get_running_loop().run_in_executor(self._reader_thread, fn, self._reader, *args)

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._thread is not None, "journal is not open"
        self.round_trips += 1
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a sync function with the connection on its thread (one hop for many statements)."""
        assert self._db_connection is not None, "journal is not open"
        return await self._on_thread(fn, self._db_connection, *args)

    async def write(self, records: Sequence[Record]) -> list[Duplicate | None]:
        group = list(records)
        self._generation += 1
        self._idle_until = float("-inf")

        def write_group(conn: sqlite3.Connection) -> list[Duplicate | None]:
            # The entries' JSON is made here, on the store's thread (not the event loop's), before
            # the write lock is taken.
            prepared = prepare(group)
            return self._in_transaction(conn, lambda chain: _apply(conn, chain, prepared))

        try:
            return await self._run(write_group)
        finally:
            self._last_write = time.monotonic()

    async def claim_push(self, worker: str, now: float, lease: float, limit: int,
                         lanes: Lanes | None = None) -> list[Claimed]:
        if now < self._idle_until:  # an idle hub's poll: no thread hop, no query
            return []
        generation = self._generation
        claimed, idle_until = await self._run(self._claim, "push", None, worker, now, lease, limit, lanes)
        if generation == self._generation:  # no write of ours came in between
            self._idle_until = idle_until
        return self._wrote(claimed)

    async def claim_mailbox(self, receiver: str, now: float, visibility: float, limit: int,
                            lanes: Lanes | None = None) -> list[Claimed]:
        claimed, _ = await self._run(self._claim, "pull", receiver, f"mailbox:{receiver}", now, visibility, limit,
                                     lanes)
        return self._wrote(claimed)

    def _wrote(self, claimed: list[Claimed]) -> list[Claimed]:
        if claimed:  # an empty claim (the idle poll) writes nothing: the hub stays quiet
            self._last_write = time.monotonic()
        return claimed

    async def past_deadline(self, now: float, limit: int) -> list[Claimed]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {R.CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
            f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.state IN {PENDING}"
            " AND d.deadline <= ? AND (d.claim_until IS NULL OR d.claim_until < ?) LIMIT ?",
            (now, now, limit)).fetchall())
        return [R.claimed(row) for row in rows]

    async def next_due(self) -> float:
        # Pending rows only, through the partial indexes: a handful of rows however old the journal.
        push, any_mode = await self._run(lambda c: c.execute(
            "SELECT min(CASE WHEN mode = 'push' THEN max(coalesce(next_at, 0), coalesce(claim_until, 0)) END),"
            f" min(max(deadline, coalesce(claim_until, 0))) FROM deliveries WHERE state IN {PENDING}").fetchone())
        return min((t for t in (push, any_mode) if t is not None), default=float("inf"))

    async def delivery(self, delivery_id: int) -> Claimed | None:
        row = await self._run(lambda c: c.execute(
            f"SELECT {R.CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
            " ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.id = ?", (delivery_id,)).fetchone())
        return R.claimed(row) if row else None

    async def delivery_state(self, msg_id: str, receiver: str) -> str | None:
        row = await self._run(lambda c: c.execute(
            "SELECT state FROM deliveries WHERE msg_id = ? AND receiver = ?", (msg_id, receiver)).fetchone())
        return row[0] if row else None

    async def accepted(self, msg_id: str) -> Accepted | None:
        return await self._run(_accepted, msg_id, R.ACCEPTED_COLUMNS, R.accepted)

    async def carried(self, msg_id: str) -> Carried | None:
        return await self._run(_accepted, msg_id, R.CARRIED_COLUMNS, R.carried)

    async def transaction(self, msg_id: str) -> list[TransactionView]:
        return await self._read_side(_views, "t.msg_id = ?", (msg_id,), 1000)

    async def acknowledgements(self, msg_id: str) -> list[TransactionView]:
        return await self._read_side(_views, "t.ack_for = ? AND t.outcome = 'accepted'", (msg_id,), 1000)

    async def list_transactions(
        self, *, since: float | None = None, sender: str | None = None, state: str | None = None,
        limit: int = 100, until: float | None = None, receiver: str | None = None, documents_only: bool = False,
    ) -> list[TransactionView]:
        where, args = R.transaction_filter("?", since=since, until=until, sender=sender, receiver=receiver,
                                           state=state, documents_only=documents_only)
        by_delivery = R.delivery_filter("?", receiver=receiver, state=state)
        if by_delivery is not None:
            return await self._read_side(_search, where, args, *by_delivery, limit)
        return await self._read_side(_views, where, args, limit)

    async def release_claims(self) -> int:
        # Only forwarding rows carry a lease: their index, not the table of finished deliveries.
        return await self._run(lambda c: c.execute(
            "UPDATE deliveries SET claimed_by = NULL, claim_until = NULL"
            " WHERE state = 'forwarding' AND claimed_by IS NOT NULL").rowcount)

    async def counts(self) -> dict[str, int]:
        # The kept counts, read on a connection of its own: a scrape never waits behind a commit
        # nor delays one.
        rows = await self._read_side(lambda c: c.execute("SELECT state, n FROM delivery_counts WHERE n <> 0").fetchall())
        return {state: n for state, n in rows}

    def wal_bytes(self) -> int:
        """Size of the write-ahead log file now (0 when there is none)."""
        try:
            return self.path.with_name(self.path.name + "-wal").stat().st_size
        except FileNotFoundError:
            return 0

    async def archive_candidates(self, before: float, after: tuple[float, int],
                                 limit: int) -> list[tuple[int, str, str, int, float]]:
        return await self._read_side(lambda c: c.execute(
            R.archive_candidates_sql("?", FINISHED), (before, *after, limit)).fetchall())

    async def packet(self, msg_id: str) -> bytes | None:
        row = await self._read_side(lambda c: c.execute(
            f"SELECT {R.PACKET} FROM transactions WHERE msg_id = ? AND outcome = 'accepted'", (msg_id,)).fetchone())
        return None if row is None or row[0] is None else bytes(row[0])

    async def verify(self, *, since: tuple[int, str] | None = None,
                     progress: Callable[[Progress], None] | None = None,
                     archive: Path | None = None) -> list[ChainProblem]:
        # A connection and thread of its own: the audit reads one snapshot for as long as it takes
        # while the hub's connection keeps committing.
        reader = _AuditReader(self.path)
        await reader.start()
        try:
            return await run_audit(reader, since=since, progress=progress, archive=archive)
        finally:
            await reader.stop()

    def lock_times(self) -> dict[str, float]:
        return self._times.as_dict()

    async def chain_head(self) -> tuple[int, str] | None:
        row = await self._run(lambda c: c.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone())
        return (row[0], row[1]) if row else None

    async def entry_hashes(self, seqs: Sequence[int]) -> dict[int, str]:
        return dict(await self._run(lambda c: _in_chunks(
            c, "SELECT seq, hash FROM entries WHERE seq IN ({})", list(dict.fromkeys(seqs)), tuple)))

    # --- operators' views: a transaction's history, backlog, hourly counts, statistics ---------

    async def history(self, msg_id: str) -> list[dict[str, Any]]:
        """Every journal entry about msg_id (accepted/refused, claims, state changes), oldest first."""
        rows = await self._read_side(lambda c: c.execute(
            "SELECT body FROM entries WHERE msg_id = ? ORDER BY seq LIMIT 10000", (msg_id,)).fetchall())
        return [json.loads(body) for body, in rows]

    async def backlog(self) -> list[ReceiverBacklog]:
        """Per receiver with deliveries still pending: how many, the oldest, and the latest failure."""
        return await self._read_side(_backlog)

    async def hourly(self, since: float) -> list[tuple[int, int, int, int]]:
        """(hour start, packets accepted, refused, deliveries delivered) per hour since `since`."""
        return await self._read_side(_hourly, since)

    async def period_facts(self, since: float, until: float, sink: Callable[[str, list[tuple]], None]) -> None:
        """Feed `sink` the statistics' facts about documents received in [since, until), in batches,
        by UTC day number (received_at // 86400): counts ("document", [(day, sender, n)]),
        ("refusal", [(day, sender, n)]), ("delivery", [(day, sender, receiver, state, n)]), and the
        durations for percentiles ("durations", [(day, sender, to_delivery, to_registration)],
        seconds or None). Runs on the store's thread; `sink` must not block."""
        await self._read_side(_period_facts, since, until, sink)


    # --- on the connection's thread -------------------------------------------------------------

    def _in_transaction(self, conn: sqlite3.Connection, fn: Callable[[ChainWriter], T]) -> T:
        """One write transaction. While it holds SQLite's write lock it runs few statements (callers
        prepare their rows first and use executemany): each statement means taking the GIL back,
        which can wait for the event loop thread while the other workers wait for the lock."""
        conn.execute("PRAGMA busy_timeout=0")  # _begin waits in finer steps than SQLite would
        try:
            t0 = time.perf_counter()
            _begin(conn)
            try:
                t1 = time.perf_counter()
                head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
                chain = ChainWriter(*(head or (0, GENESIS)))
                result = fn(chain)
                if chain.rows:
                    conn.executemany("INSERT INTO entries (seq, body, hash, msg_id) VALUES (?, ?, ?, ?)", chain.rows)
                    conn.execute(
                        "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                        (chain.seq, chain.hash))
                t2 = time.perf_counter()
                conn.execute("COMMIT")
                self._times.add(t1 - t0, t2 - t1, time.perf_counter() - t2)
                return result
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")

    def _claim(self, conn: sqlite3.Connection, mode: str, receiver: str | None, holder: str, now: float,
               lease: float, limit: int, lanes: Lanes | None = None) -> tuple[list[Claimed], float]:
        """The claimed deliveries, and until when nothing will be due (-inf: unknown)."""
        where, args = R.claim_filter("?", mode, receiver, now)
        full = lanes.full() if lanes is not None else []
        if full:
            where += f" AND d.receiver NOT IN ({','.join('?' * len(full))})"
            args.extend(full)
        # The idle poll: one indexed read, no write lock, when nothing is due.
        if conn.execute(f"SELECT 1 FROM deliveries d WHERE {where} LIMIT 1", args).fetchone() is None:
            if receiver is not None:
                return [], float("-inf")
            # The next retry from the due index; other processes' writes are seen within IDLE_RECHECK.
            (next_at,) = conn.execute(f"SELECT min(next_at) FROM deliveries WHERE mode = ? AND state IN {PENDING}",
                                      (mode,)).fetchone()
            return [], min(now + IDLE_RECHECK, max(now, next_at)) if next_at is not None else now + IDLE_RECHECK

        def claim(chain: ChainWriter) -> list[Claimed]:
            # Choose by id, receiver and size first, then read the chosen ones' bodies only.
            order = claims.choose(conn.execute(
                f"SELECT {claims.CANDIDATE_COLUMNS} FROM deliveries d JOIN transactions t"
                f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE {where} ORDER BY d.next_at LIMIT ?",
                (*args, claims.candidate_limit(limit, lanes))).fetchall(), limit, lanes)
            if not order:
                return []
            rows, updates = claims.lease(conn.execute(
                f"SELECT {R.CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
                f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.id IN ({','.join('?' * len(order))})",
                list(order)).fetchall(), order, chain, holder, now, lease)
            conn.executemany(claims.update_sql("?"), updates)
            return [R.claimed(row, attempt_added=1) for row in rows]

        # A claim need not survive a power cut: lost, the delivery is simply due again (receivers
        # de-duplicate). So no fsync of its own; WAL order keeps it before any later, synced commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            return self._in_transaction(conn, claim), float("-inf")
        finally:
            conn.execute("PRAGMA synchronous=FULL")


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a group is one transaction.
    # check_same_thread stays on: only the journal's own thread ever uses this connection.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when it returns, so an answered packet survives power loss.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see SqliteJournal._checkpoint_every
        conn.execute(f"PRAGMA journal_size_limit={WAL_CAP_BYTES}")
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"{path}: journal schema version {version} is newer than this hub knows "
                               f"({SCHEMA_VERSION}): run a newer smdo-hub")
        if version < SCHEMA_VERSION:  # the embedded store upgrades itself (version 0: new, or unversioned)
            conn.executescript(SCHEMA)
            for table, column, kind in _ADDED_COLUMNS:
                present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    if (table, column) == ("entries", "msg_id"):
                        conn.execute("UPDATE entries SET msg_id = json_extract(body, '$.msg_id')")
            conn.executescript(INDEXES)
            conn.executescript(COUNTS)
        return conn
    except BaseException:
        conn.close()
        raise


def _checkpoint(path: Path, mode: str = "PASSIVE") -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA wal_checkpoint({mode})")
    finally:
        conn.close()


def _connect_reader(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return conn


def _sha256_hex(blob: bytes | None) -> str | None:
    return None if blob is None else hashlib.sha256(blob).hexdigest()


class _AuditReader:
    """`AuditReader` on its own connection and thread, inside one read transaction (a snapshot)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-audit")
        self._db_connection: sqlite3.Connection | None = None

    async def _on(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self) -> None:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            # The packets' digests are computed where the blobs are, one row at a time.
            conn.create_function("sha256_hex", 1, _sha256_hex, deterministic=True)
            conn.execute("BEGIN")
            conn.execute("SELECT 1 FROM chain_head LIMIT 1").fetchall()  # the snapshot starts here
            return conn
        self._db_connection = await self._on(connect)

    async def stop(self) -> None:
        if self._db_connection is not None:
            conn, self._db_connection = self._db_connection, None
            await self._on(lambda: (conn.execute("COMMIT"), conn.close()))
        self._thread.shutdown(wait=True)

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self._db_connection is not None
        conn = self._db_connection
        return await self._on(lambda: conn.execute(sql, args).fetchall())

    async def head(self) -> tuple[int, str] | None:
        rows = await self._all("SELECT seq, hash FROM chain_head WHERE id = 1")
        return (rows[0][0], rows[0][1]) if rows else None

    async def entries_after(self, seq: int, limit: int) -> list[tuple[int, str, str, str | None]]:
        return await self._all(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    async def transactions_between(self, low: int, high: int) -> list[tuple[Any, ...]]:
        return await self._all(f"SELECT {_AUDIT_TRANSACTIONS} FROM transactions WHERE entry_seq BETWEEN ? AND ?",
                               (low, high))

    async def transactions_beyond(self, seq: int) -> list[tuple[Any, ...]]:
        return await self._all(f"SELECT {_AUDIT_TRANSACTIONS} FROM transactions WHERE entry_seq > ? OR entry_seq < 1"
                               " LIMIT 100", (seq,))

    async def delivery_keys(self, msg_ids: Sequence[str]) -> list[tuple[str, str]]:
        assert self._db_connection is not None
        conn = self._db_connection
        return await self._on(lambda: _in_chunks(conn, "SELECT msg_id, receiver FROM deliveries WHERE msg_id IN ({})",
                                                 list(msg_ids), tuple))

    async def deliveries_after(self, entry_seq: int, row_id: int, limit: int) -> list[tuple[Any, ...]]:
        return await self._all(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE (entry_seq, id) > (?, ?)"
                               " ORDER BY entry_seq, id LIMIT ?", (entry_seq, row_id, limit))

    async def entries_of(self, msg_ids: Sequence[str]) -> list[tuple[int, str]]:
        assert self._db_connection is not None
        conn = self._db_connection
        return await self._on(lambda: _in_chunks(conn, "SELECT seq, body FROM entries WHERE msg_id IN ({})",
                                                 list(msg_ids), tuple))


_AUDIT_TRANSACTIONS = TRANSACTION_COLUMNS.replace("raw_sha256", f"sha256_hex({R.PACKET})").replace(
    "answer_sha256", "sha256_hex(answer)")


def _begin(conn: sqlite3.Connection, timeout: float = 10.0) -> None:
    """BEGIN IMMEDIATE, waiting for another process's write in steps of a fraction of a millisecond.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, which turns two hub
    workers sharing the journal into tens of milliseconds of latency; their writes take ~1 ms.
    """
    deadline = time.monotonic() + timeout
    pause = 0.0002
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 1.5, 0.001)


def _apply(conn: sqlite3.Connection, chain: ChainWriter, prepared: list) -> list[Duplicate | None]:
    """A group in a handful of statements: two lookups, the rules, then executemany."""
    earlier = dict(_in_chunks(
        conn, "SELECT msg_id, digest, answer FROM transactions WHERE outcome = 'accepted' AND msg_id IN ({})",
        accepted_msg_ids(prepared), lambda row: (row[0], (row[1], row[2]))))
    states = dict(_in_chunks(
        conn, "SELECT msg_id, receiver, state FROM deliveries WHERE msg_id IN ({})",
        changed_msg_ids(prepared), lambda row: ((row[0], row[1]), row[2])))
    stored = dict(_in_chunks(
        conn, "SELECT msg_id, digest FROM transactions WHERE outcome = 'accepted' AND msg_id IN ({})"
        " AND (packet IS NOT NULL OR raw IS NOT NULL)", archived_msg_ids(prepared), tuple))
    plan: WritePlan = plan_write(prepared, earlier, states, chain, stored)
    # The packet is the record's last column: SQLite writes a zeroblob there without making it (one
    # anywhere else it builds in memory, twice), and the blob is then filled in chunks from the file.
    insert = ("INSERT INTO transactions (entry_seq, outcome, msg_id, sender, receivers, msg_type, acknow, ack_for,"
              " origin, digest, size, received_at, deadline, codes, stage, packet, answer)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {packet}, ?)")
    conn.executemany(insert.format(packet="?"), [t for t in plan.transactions if not isinstance(t.raw, RawFile)])
    for t in plan.transactions:
        if isinstance(t.raw, RawFile):  # a large body: room first, then its bytes in chunks from its file
            row = conn.execute(insert.format(packet="zeroblob(?)"), t._replace(raw=t.raw.size)).lastrowid
            with conn.blobopen("transactions", "packet", row) as blob:
                for chunk in t.raw.chunks():
                    blob.write(chunk)
    conn.executemany(
        "INSERT INTO deliveries (msg_id, receiver, mode, state, next_at, deadline, updated_at, entry_seq)"
        " VALUES (?, ?, ?, 'accepted', ?, ?, ?, ?)", plan.deliveries)
    conn.executemany(
        "UPDATE deliveries SET state = ?, next_at = ?, detail = ?, updated_at = ?, entry_seq = ?,"
        " delivered_at = coalesce(?, delivered_at), registered_at = coalesce(?, registered_at),"
        " claimed_by = NULL, claim_until = NULL WHERE msg_id = ? AND receiver = ?", plan.updates)
    conn.executemany("UPDATE transactions SET packet = NULL, raw = NULL WHERE msg_id = ? AND outcome = 'accepted'",
                     [(m,) for m in plan.archived])
    return plan.results


def _accepted(conn: sqlite3.Connection, msg_id: str, columns: str,
              make: Callable[[Sequence[Any], list[tuple[Any, ...]]], T]) -> T | None:
    """The accepted transaction `msg_id` as `make` builds it from `columns` and its deliveries."""
    row = conn.execute(f"SELECT {columns} FROM transactions WHERE msg_id = ? AND outcome = 'accepted'",
                       (msg_id,)).fetchone()
    if row is None:
        return None
    return make(row, conn.execute("SELECT receiver, mode FROM deliveries WHERE msg_id = ? ORDER BY id",
                                  (msg_id,)).fetchall())


def _in_chunks(conn: sqlite3.Connection, sql: str, keys: list[str], row: Callable[[tuple], T]) -> list[T]:
    """Run `sql` with `IN ({})` over keys, 500 at a time (SQLite caps bound parameters)."""
    out: list[T] = []
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        out += [row(r) for r in conn.execute(sql.format(",".join("?" * len(chunk))), chunk)]
    return out


def _views(conn: sqlite3.Connection, where: str, args: tuple[object, ...], limit: int) -> list[TransactionView]:
    rows = conn.execute(
        f"SELECT {R.VIEW_COLUMNS} FROM transactions t WHERE {where} ORDER BY t.id DESC LIMIT ?", (*args, limit),
    ).fetchall()
    return _with_deliveries(conn, rows)


def _search(conn: sqlite3.Connection, t_where: str, t_args: tuple[object, ...], d_where: str,
            d_args: tuple[object, ...], limit: int) -> list[TransactionView]:
    """A search by receiver or delivery state: deliveries newest first, in keyset pages (rows.py)."""
    found: dict[str, tuple[object, ...]] = {}
    page, bound = R.search_pages(limit), 2 ** 63 - 1
    sql = R.search_sql("?", t_where, d_where)
    while len(found) < limit:
        rows = conn.execute(sql, (*d_args, *t_args, bound, page)).fetchall()
        R.distinct_newest(rows, found, limit)
        if len(rows) < page:
            break
        bound = rows[-1][-1]
    return _with_deliveries(conn, list(found.values()))


def _with_deliveries(conn: sqlite3.Connection, rows: list) -> list[TransactionView]:
    """Views of transaction rows (newest first), oldest first, accepted ones with their deliveries."""
    return [
        R.view(row, conn.execute(f"SELECT {R.DELIVERY_VIEW_COLUMNS} FROM deliveries WHERE msg_id = ?"
                                 " ORDER BY receiver", (row[0],)).fetchall() if row[1] == "accepted" else ())
        for row in reversed(rows)
    ]


def _backlog(conn: sqlite3.Connection) -> list[ReceiverBacklog]:
    return [R.backlog(row, conn.execute(R.backlog_oldest_sql("?"), (row[0],)).fetchone(),
                      conn.execute(R.backlog_failure_sql("?"), (row[0],)).fetchone())
            for row in conn.execute(R.BACKLOG_SQL).fetchall()]


def _hourly(conn: sqlite3.Connection, since: float) -> list[tuple[int, int, int, int]]:
    hours: dict[int, list[int]] = {}
    for hour, outcome, n in conn.execute(
        "SELECT CAST(received_at / 3600 AS INTEGER), outcome, count(*) FROM transactions"
        " WHERE received_at >= ? AND origin = 'ingress' GROUP BY 1, 2", (since,)):
        hours.setdefault(hour * 3600, [0, 0, 0])[0 if outcome == "accepted" else 1] += n
    for hour, n in conn.execute(
        "SELECT CAST(delivered_at / 3600 AS INTEGER), count(*) FROM deliveries"
        " WHERE delivered_at >= ? GROUP BY 1", (since,)):
        hours.setdefault(hour * 3600, [0, 0, 0])[2] += n
    return sorted((h, *counts) for h, counts in hours.items())


_DOCUMENTS = "t.received_at >= ? AND t.received_at < ? AND t.origin = 'ingress'"
_DAY = "CAST(t.received_at / 86400 AS INTEGER)"
_FACTS = (
    ("document", f"SELECT {_DAY}, t.sender, count(*) FROM transactions t"
                 f" WHERE {_DOCUMENTS} AND t.outcome = 'accepted' AND t.msg_type != 0 GROUP BY 1, 2"),
    ("refusal", f"SELECT {_DAY}, t.sender, count(*) FROM transactions t"
                f" WHERE {_DOCUMENTS} AND t.outcome = 'rejected' GROUP BY 1, 2"),
    ("delivery", f"SELECT {_DAY}, t.sender, d.receiver, d.state, count(*) FROM transactions t"
                 " JOIN deliveries d ON d.msg_id = t.msg_id"
                 f" WHERE {_DOCUMENTS} AND t.outcome = 'accepted' AND t.msg_type != 0 GROUP BY 1, 2, 3, 4"),
    ("durations", f"SELECT {_DAY}, t.sender, d.delivered_at - t.received_at, d.registered_at - t.received_at"
                  " FROM transactions t JOIN deliveries d ON d.msg_id = t.msg_id"
                  f" WHERE {_DOCUMENTS} AND t.outcome = 'accepted' AND t.msg_type != 0"
                  " AND (d.delivered_at IS NOT NULL OR d.registered_at IS NOT NULL)"),
)


def _period_facts(conn: sqlite3.Connection, since: float, until: float,
                  sink: Callable[[str, list[tuple]], None]) -> None:
    for kind, sql in _FACTS:
        cursor = conn.execute(sql, (since, until))
        while batch := cursor.fetchmany(10_000):
            sink(kind, batch)
