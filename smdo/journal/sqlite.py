"""The journal on SQLite (aiosqlite, WAL, synchronous=FULL): the hub's embedded default store.

Tables: `entries` (the hash chain, the record of truth), `chain_head`, and two views kept for
queries: `transactions` (one row per packet received or made, with the raw bytes of accepted ones)
and `deliveries` (one row per packet and receiver, its current state and lease). Every change to
them is written together with its chain entry, so `verify` can tell an edited or deleted row.

A write is one sync function run on aiosqlite's connection thread: one thread hop and one fsync per
group of records, however many packets the group holds.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import time

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from smdo.journal.chain import GENESIS, ChainProblem, canonical, entry_hash, verify_chain
from smdo.journal.store import (
    PENDING_STATES,
    REGISTRATION_STATES,
    Accepted,
    Claimed,
    DeliveryState,
    DeliveryView,
    Duplicate,
    Record,
    ReceiverBacklog,
    Rejected,
    StateChange,
    TransactionView,
)

T = TypeVar("T")

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
    raw BLOB,                    -- accepted packets only
    answer BLOB
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
)
INDEXES = """
CREATE INDEX IF NOT EXISTS entries_msg_id ON entries (msg_id) WHERE msg_id IS NOT NULL;
-- statistics read a period's documents from this index alone (the table rows hold packet bodies)
CREATE INDEX IF NOT EXISTS transactions_period
    ON transactions (received_at, outcome, origin, msg_type, sender, msg_id);
CREATE INDEX IF NOT EXISTS deliveries_delivered_at ON deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
"""

_BUSY_TIMEOUT_MS = 10_000
#: Seconds spent waiting for the write lock, working under it, and committing. Per process, like
#: the lock itself is contended per process; read through SqliteJournal.lock_times().
TIMES = {"lock_wait": 0.0, "locked_work": 0.0, "commit": 0.0, "transactions": 0}
_PENDING = tuple(s.value for s in PENDING_STATES)
_REGISTRATION = tuple(s.value for s in REGISTRATION_STATES)
_FINAL = (DeliveryState.DELIVERED.value, DeliveryState.EXPIRED.value)


class SqliteJournal:
    """`JournalStore` on one SQLite file. Several processes may share it (WAL, BEGIN IMMEDIATE)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._checkpointer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a group is one transaction.
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._run(_init_schema)
        # Checkpoints (copying the WAL into the database, with an fsync) run on a connection of
        # their own, so no commit waits behind one and no answer is delayed by it.
        self._checkpointer = asyncio.create_task(self._checkpoint_every(1.0), name="journal-checkpoint")

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _checkpoint_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(_checkpoint, self.path)
            except sqlite3.Error:
                pass  # busy with another checkpointer: the next round catches up

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a sync function on the connection's own thread (one hop for many statements)."""
        assert self._db is not None, "journal is not open"
        db = self._db
        return await db._execute(lambda: fn(db._conn, *args))  # noqa: SLF001 - see module docstring

    async def write(self, records: Sequence[Record]) -> list[Duplicate | None]:
        return await self._run(_write, list(records))

    async def claim_push(self, worker: str, now: float, lease: float, limit: int) -> list[Claimed]:
        return await self._run(_claim, "push", None, worker, now, lease, limit)

    async def claim_mailbox(self, receiver: str, now: float, visibility: float, limit: int) -> list[Claimed]:
        return await self._run(_claim, "pull", receiver, f"mailbox:{receiver}", now, visibility, limit)

    async def past_deadline(self, now: float, limit: int) -> list[Claimed]:
        return await self._run(_past_deadline, now, limit)

    async def delivery(self, delivery_id: int) -> Claimed | None:
        return await self._run(_delivery, delivery_id)

    async def delivery_state(self, msg_id: str, receiver: str) -> str | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT state FROM deliveries WHERE msg_id = ? AND receiver = ?", (msg_id, receiver)
            ).fetchone()
        )
        return row[0] if row else None

    async def accepted(self, msg_id: str) -> Accepted | None:
        return await self._run(_accepted, msg_id)

    async def transaction(self, msg_id: str) -> list[TransactionView]:
        return await self._run(_views, "t.msg_id = ?", (msg_id,), 1000)

    async def acknowledgements(self, msg_id: str) -> list[TransactionView]:
        """Accepted acknowledgements of msg_id: the hub's 101/102, the receivers' registration acks."""
        return await self._run(_views, "t.ack_for = ? AND t.outcome = 'accepted'", (msg_id,), 1000)

    async def list_transactions(
        self,
        *,
        since: float | None = None,
        sender: str | None = None,
        state: str | None = None,
        limit: int = 100,
        until: float | None = None,
        receiver: str | None = None,
        documents_only: bool = False,
    ) -> list[TransactionView]:
        where, args = ["1 = 1"], []
        if since is not None:
            where.append("t.received_at >= ?")
            args.append(since)
        if until is not None:
            where.append("t.received_at < ?")
            args.append(until)
        if sender:
            where.append("t.sender = ?")
            args.append(sender)
        if receiver:
            where.append("t.msg_id IN (SELECT msg_id FROM deliveries WHERE receiver = ?)")
            args.append(receiver)
        if documents_only:  # leave out acknowledgements (msg_type 0); refusals have no type and stay
            where.append("(t.msg_type IS NULL OR t.msg_type != 0)")
        if state:
            if state in ("accepted", "rejected"):
                where.append("t.outcome = ?")
            else:
                where.append("t.msg_id IN (SELECT msg_id FROM deliveries WHERE state = ?)")
            args.append(state)
        return await self._run(_views, " AND ".join(where), tuple(args), limit)

    async def release_claims(self) -> int:
        def release(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE deliveries SET claimed_by = NULL, claim_until = NULL WHERE claimed_by IS NOT NULL"
            ).rowcount

        return await self._run(release)

    def lock_times(self) -> dict[str, float]:
        """This process's write transactions so far: their number, and seconds spent waiting for
        SQLite's write lock, working under it, and committing (the fsync)."""
        return dict(TIMES)

    async def counts(self) -> dict[str, int]:
        rows = await self._run(
            lambda c: c.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
        )
        return {state: n for state, n in rows}

    async def verify(self) -> list[ChainProblem]:
        return await self._run(_verify)

    async def chain_head(self) -> tuple[int, str] | None:
        row = await self._run(lambda c: c.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone())
        return (row[0], row[1]) if row else None

    async def entry_hashes(self, seqs: Sequence[int]) -> dict[int, str]:
        return dict(await self._run(lambda c: _in_chunks(
            c, "SELECT seq, hash FROM entries WHERE seq IN ({})", list(dict.fromkeys(seqs)), tuple)))

    # --- operators' views: a transaction's history, backlog, hourly counts, statistics ---------

    async def history(self, msg_id: str) -> list[dict[str, Any]]:
        """Every journal entry about msg_id (accepted/refused, claims, state changes), oldest first."""
        rows = await self._run(lambda c: c.execute(
            "SELECT body FROM entries WHERE msg_id = ? ORDER BY seq LIMIT 10000", (msg_id,)).fetchall())
        return [json.loads(body) for body, in rows]

    async def backlog(self) -> list[ReceiverBacklog]:
        """Per receiver with deliveries still pending: how many, the oldest, and the latest failure."""
        return await self._run(_backlog)

    async def hourly(self, since: float) -> list[tuple[int, int, int, int]]:
        """(hour start, packets accepted, refused, deliveries delivered) per hour since `since`."""
        return await self._run(_hourly, since)

    async def period_facts(self, since: float, until: float, sink: Callable[[str, list[tuple]], None]) -> None:
        """Feed `sink` the statistics' facts about documents received in [since, until), in batches,
        by UTC day number (received_at // 86400): counts ("document", [(day, sender, n)]),
        ("refusal", [(day, sender, n)]), ("delivery", [(day, sender, receiver, state, n)]), and the
        durations for percentiles ("durations", [(day, sender, to_delivery, to_registration)],
        seconds or None). Runs on the store's thread; `sink` must not block."""
        await self._run(_period_facts, since, until, sink)


def _backlog(conn: sqlite3.Connection) -> list[ReceiverBacklog]:
    rows = conn.execute(
        "SELECT d.receiver, d.mode, count(*), min(d.deadline), max(d.attempts),"
        " sum(CASE WHEN d.state = 'retry-wait' AND d.attempts > 0 THEN 1 ELSE 0 END)"
        f" FROM deliveries d WHERE d.state IN {_PENDING} GROUP BY d.receiver, d.mode ORDER BY d.receiver"
    ).fetchall()
    out = []
    for receiver, mode, waiting, oldest_deadline, attempts, failing in rows:
        oldest = conn.execute(
            "SELECT t.received_at FROM deliveries d JOIN transactions t ON t.msg_id = d.msg_id"
            f" AND t.outcome = 'accepted' WHERE d.receiver = ? AND d.state IN {_PENDING}"
            " ORDER BY d.deadline LIMIT 1", (receiver,)).fetchone()
        last = conn.execute(
            "SELECT detail, updated_at, next_at FROM deliveries WHERE receiver = ? AND state = 'retry-wait'"
            " AND attempts > 0 ORDER BY updated_at DESC LIMIT 1", (receiver,)).fetchone()
        out.append(ReceiverBacklog(
            receiver=receiver, mode=mode, waiting=waiting, oldest_received_at=oldest[0] if oldest else None,
            oldest_deadline=oldest_deadline, failing=failing, max_attempts=attempts,
            last_error=last[0] if last else "", last_error_at=last[1] if last else None,
            next_try_at=last[2] if last else None))
    return out


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


# --- sync parts, run on the connection thread -------------------------------------------------


def _init_schema(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns, so an answered packet survives power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # see SqliteJournal._checkpoint_every
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.executescript(SCHEMA)
    for table, column, kind in _ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            if (table, column) == ("entries", "msg_id"):
                conn.execute("UPDATE entries SET msg_id = json_extract(body, '$.msg_id')")
    conn.executescript(INDEXES)


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


class _Chain:
    """Appends entries within one open transaction, continuing from the stored head."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        row = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        self.seq, self.hash = row if row else (0, GENESIS)
        self.rows: list[tuple[int, str, str, str | None]] = []

    def append(self, body: bytes, msg_id: str | None) -> int:
        """`body`: canonical JSON of the entry, prepared before the lock was taken; the entry's
        stored text is that object with its sequence number put first."""
        self.seq += 1
        text = b'{"seq":%d,%s' % (self.seq, body[1:])
        self.hash = entry_hash(self.hash, text)
        self.rows.append((self.seq, text.decode(), self.hash, msg_id))
        return self.seq

    def flush(self) -> None:
        if not self.rows:
            return
        self.conn.executemany("INSERT INTO entries (seq, body, hash, msg_id) VALUES (?, ?, ?, ?)", self.rows)
        self.conn.execute(
            "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (self.seq, self.hash),
        )


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


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[_Chain], T]) -> T:
    """One write transaction. While it holds SQLite's write lock it runs few statements (callers
    prepare their rows first and use executemany): each statement means taking the GIL back,
    which can wait for the event loop thread while the other workers wait for the lock."""
    conn.execute("PRAGMA busy_timeout=0")  # _begin waits in finer steps than SQLite would
    try:
        t0 = time.perf_counter()
        _begin(conn)
        try:
            t1 = time.perf_counter()
            chain = _Chain(conn)
            result = fn(chain)
            chain.flush()
            t2 = time.perf_counter()
            conn.execute("COMMIT")
            TIMES["lock_wait"] += t1 - t0
            TIMES["locked_work"] += t2 - t1
            TIMES["commit"] += time.perf_counter() - t2
            TIMES["transactions"] += 1
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")


def _accepted_entry(r: Accepted) -> dict[str, object]:
    return {
        "kind": "accepted",
        "at": r.received_at,
        "msg_id": r.msg_id,
        "sender": r.sender,
        "receivers": list(r.receivers),
        "msg_type": r.msg_type,
        "acknow": r.acknow,
        "ack_for": r.ack_for,
        "origin": r.origin,
        "digest": r.digest,
        "size": r.size,
        "deadline": r.deadline,
        "answer_sha256": hashlib.sha256(r.answer).hexdigest(),
        "deliveries": [list(d) for d in r.deliveries],
    }


def _rejected_entry(r: Rejected) -> dict[str, object]:
    return {
        "kind": "rejected",
        "at": r.received_at,
        "msg_id": r.msg_id,
        "sender": r.sender,
        "stage": r.stage,
        "codes": list(r.codes),
        "digest": r.digest,
        "size": r.size,
        "message": r.message,
    }


def _state_entry(msg_id: str, receiver: str, state: str, at: float, **extra: object) -> dict[str, object]:
    return {"kind": "state", "at": at, "msg_id": msg_id, "receiver": receiver, "state": state, **extra}


_TRANSACTION_INSERT = (
    "INSERT INTO transactions (entry_seq, outcome, msg_id, sender, receivers, msg_type, acknow, ack_for, origin,"
    " digest, size, received_at, deadline, codes, stage, raw, answer)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _write(conn: sqlite3.Connection, records: list[Record]) -> list[Duplicate | None]:
    # The JSON of every entry is made here, before the write lock is taken.
    prepared = [(r, canonical(_entry(r)), [(c, canonical(_entry(c))) for c in getattr(r, "also", ())])
                for r in records]
    return _in_transaction(conn, lambda chain: _apply(conn, chain, prepared))


def _entry(r: Record) -> dict[str, object]:
    if isinstance(r, Accepted):
        return _accepted_entry(r)
    if isinstance(r, Rejected):
        return _rejected_entry(r)
    return _state_entry(r.msg_id, r.receiver, DeliveryState(r.state).value, r.at, next_at=r.next_at,
                        detail=r.detail, codes=list(r.codes))


def _apply(conn: sqlite3.Connection, chain: _Chain,
           prepared: list[tuple[Record, bytes, list[tuple[StateChange, bytes]]]]) -> list[Duplicate | None]:
    """Apply a group in record order with a handful of statements: two lookups, then executemany."""
    accepted_ids = [r.msg_id for r, _, _ in prepared if isinstance(r, Accepted)]
    earlier = dict(_in_chunks(
        conn, "SELECT msg_id, digest, answer FROM transactions WHERE outcome = 'accepted' AND msg_id IN ({})",
        accepted_ids, lambda row: (row[0], (row[1], row[2]))))
    changes = [c for r, _, also in prepared for c in ([r] if isinstance(r, StateChange) else [a for a, _ in also])]
    states = dict(_in_chunks(
        conn, "SELECT msg_id, receiver, state FROM deliveries WHERE msg_id IN ({})",
        list({c.msg_id for c in changes}), lambda row: ((row[0], row[1]), row[2])))

    transactions: list[tuple[object, ...]] = []
    new_deliveries: list[tuple[object, ...]] = []
    updates: list[tuple[object, ...]] = []
    results: list[Duplicate | None] = []

    def change(c: StateChange, body: bytes) -> None:
        current = states.get((c.msg_id, c.receiver))
        if current is None:
            raise LookupError(f"no delivery of {c.msg_id} to {c.receiver}")
        new = DeliveryState(c.state).value
        if current in _REGISTRATION and new not in _REGISTRATION:
            return  # a delivery ack after the registration ack is ignored
        if current in _FINAL and new not in _REGISTRATION:
            return  # a late outcome of a stale attempt changes nothing
        seq = chain.append(body, c.msg_id)
        delivered_at = c.at if new == DeliveryState.DELIVERED.value else None
        registered_at = c.at if new in _REGISTRATION else None
        updates.append((new, c.next_at, c.detail, c.at, seq, delivered_at, registered_at, c.msg_id, c.receiver))
        states[(c.msg_id, c.receiver)] = new

    for r, body, also in prepared:
        result: Duplicate | None = None
        if isinstance(r, Accepted):
            if r.msg_id in earlier:
                digest, answer = earlier[r.msg_id]
                result = Duplicate(r.msg_id, digest, answer)
            else:
                seq = chain.append(body, r.msg_id)
                earlier[r.msg_id] = (r.digest, r.answer)
                transactions.append((seq, "accepted", r.msg_id, r.sender, json.dumps(list(r.receivers)), r.msg_type,
                                     r.acknow, r.ack_for, r.origin, r.digest, r.size, r.received_at, r.deadline,
                                     "[100]", None, r.raw, r.answer))
                for receiver, mode in r.deliveries:
                    new_deliveries.append((r.msg_id, receiver, mode, r.received_at, r.deadline, r.received_at, seq))
                    states[(r.msg_id, receiver)] = DeliveryState.ACCEPTED.value
                for c, c_body in also:
                    change(c, c_body)
        elif isinstance(r, Rejected):
            seq = chain.append(body, r.msg_id)
            transactions.append((seq, "rejected", r.msg_id, r.sender, "[]", None, None, None, "ingress", r.digest,
                                 r.size, r.received_at, None, json.dumps(list(r.codes)), r.stage, None, None))
        else:
            change(r, body)
        results.append(result)

    conn.executemany(_TRANSACTION_INSERT, transactions)
    conn.executemany(
        "INSERT INTO deliveries (msg_id, receiver, mode, state, next_at, deadline, updated_at, entry_seq)"
        " VALUES (?, ?, ?, 'accepted', ?, ?, ?, ?)", new_deliveries)
    conn.executemany(
        "UPDATE deliveries SET state = ?, next_at = ?, detail = ?, updated_at = ?, entry_seq = ?,"
        " delivered_at = coalesce(?, delivered_at), registered_at = coalesce(?, registered_at),"
        " claimed_by = NULL, claim_until = NULL WHERE msg_id = ? AND receiver = ?", updates)
    return results


def _in_chunks(conn: sqlite3.Connection, sql: str, keys: list[str], row: Callable[[tuple], T]) -> list[T]:
    """Run `sql` with `IN ({})` over keys, 500 at a time (SQLite caps bound parameters)."""
    out: list[T] = []
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        out += [row(r) for r in conn.execute(sql.format(",".join("?" * len(chunk))), chunk)]
    return out


_CLAIMED_COLUMNS = (
    "d.id, d.msg_id, d.receiver, t.sender, d.mode, d.attempts, d.deadline, t.acknow, t.msg_type, t.raw"
)


def _claim(
    conn: sqlite3.Connection, mode: str, receiver: str | None, holder: str, now: float, lease: float, limit: int
) -> list[Claimed]:
    def claim(chain: _Chain) -> list[Claimed]:
        where = (
            f"d.mode = ? AND d.state IN {_PENDING} AND d.next_at <= ? AND d.deadline > ?"
            " AND (d.claim_until IS NULL OR d.claim_until < ?)"
        )
        args: list[object] = [mode, now, now, now]
        if receiver is not None:
            where += " AND d.receiver = ?"
            args.append(receiver)
        rows = conn.execute(
            f"SELECT {_CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
            f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE {where} ORDER BY d.next_at LIMIT ?",
            (*args, limit),
        ).fetchall()
        updates = []
        for row in rows:
            body = canonical(_state_entry(row[1], row[2], "forwarding", now, attempt=row[5] + 1, by=holder))
            updates.append((now, chain.append(body, row[1]), holder, now + lease, row[0]))
        conn.executemany(
            "UPDATE deliveries SET state = 'forwarding', attempts = attempts + 1, updated_at = ?,"
            " entry_seq = ?, claimed_by = ?, claim_until = ? WHERE id = ?", updates)
        return [Claimed(r[0], r[1], r[2], r[3], r[4], r[5] + 1, r[6], r[7], r[8], r[9]) for r in rows]

    # A claim need not survive a power cut: lost, the delivery is simply due again (receivers
    # de-duplicate). So no fsync of its own; WAL order keeps it before any later, synced commit.
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        return _in_transaction(conn, claim)
    finally:
        conn.execute("PRAGMA synchronous=FULL")


def _past_deadline(conn: sqlite3.Connection, now: float, limit: int) -> list[Claimed]:
    rows = conn.execute(
        f"SELECT {_CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
        f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.state IN {_PENDING}"
        " AND d.deadline <= ? AND (d.claim_until IS NULL OR d.claim_until < ?) LIMIT ?",
        (now, now, limit),
    ).fetchall()
    return [Claimed(*row) for row in rows]


def _delivery(conn: sqlite3.Connection, delivery_id: int) -> Claimed | None:
    row = conn.execute(
        f"SELECT {_CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
        " ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.id = ?",
        (delivery_id,),
    ).fetchone()
    return Claimed(*row) if row else None


def _accepted(conn: sqlite3.Connection, msg_id: str) -> Accepted | None:
    row = conn.execute(
        "SELECT msg_id, sender, receivers, msg_type, acknow, digest, size, received_at, deadline, raw, answer,"
        " ack_for, origin FROM transactions WHERE msg_id = ? AND outcome = 'accepted'",
        (msg_id,),
    ).fetchone()
    if row is None:
        return None
    deliveries = conn.execute("SELECT receiver, mode FROM deliveries WHERE msg_id = ?", (msg_id,)).fetchall()
    return Accepted(
        msg_id=row[0], sender=row[1], receivers=tuple(json.loads(row[2])), msg_type=row[3], acknow=row[4],
        digest=row[5], size=row[6], received_at=row[7], deadline=row[8], raw=row[9], answer=row[10],
        deliveries=tuple((r, m) for r, m in deliveries), ack_for=row[11], origin=row[12],
    )


def _views(conn: sqlite3.Connection, where: str, args: tuple[object, ...], limit: int) -> list[TransactionView]:
    rows = conn.execute(
        "SELECT t.msg_id, t.outcome, t.sender, t.receivers, t.msg_type, t.digest, t.size, t.received_at,"
        f" t.codes, t.origin, t.ack_for FROM transactions t WHERE {where} ORDER BY t.id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    views = []
    for row in reversed(rows):
        deliveries: tuple[DeliveryView, ...] = ()
        if row[1] == "accepted":
            deliveries = tuple(
                DeliveryView(*d)
                for d in conn.execute(
                    "SELECT receiver, mode, state, attempts, updated_at, next_at, detail FROM deliveries"
                    " WHERE msg_id = ? ORDER BY receiver",
                    (row[0],),
                )
            )
        views.append(
            TransactionView(
                msg_id=row[0], outcome=row[1], sender=row[2], receivers=tuple(json.loads(row[3])),
                msg_type=row[4], digest=row[5], size=row[6], received_at=row[7],
                codes=tuple(json.loads(row[8])), origin=row[9], ack_for=row[10], deliveries=deliveries,
            )
        )
    return views


def _verify(conn: sqlite3.Connection) -> list[ChainProblem]:
    """The chain itself, then every transaction and delivery row against the entries."""
    rows = conn.execute("SELECT seq, body, hash, msg_id FROM entries ORDER BY seq").fetchall()
    entries = [row[:3] for row in rows]
    head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
    problems = verify_chain(entries, tuple(head) if head else None)
    bodies: dict[int, dict[str, Any]] = {}
    for seq, body, _, msg_id in rows:
        try:
            bodies[seq] = json.loads(body)
        except ValueError:
            continue
        if bodies[seq].get("msg_id") != msg_id:  # the column a transaction's timeline is read by
            problems.append(ChainProblem("entries", seq, "msg_id column differs from the entry"))

    last_state: dict[tuple[str, str], int] = {}
    txn_entries: set[int] = set()
    for seq, e in bodies.items():
        if e.get("kind") in ("accepted", "rejected"):
            txn_entries.add(seq)
        if e.get("kind") == "accepted":
            for receiver, _mode in e.get("deliveries", []):
                last_state[(e["msg_id"], receiver)] = seq
        elif e.get("kind") == "state":
            last_state[(e["msg_id"], e["receiver"])] = seq

    seen_txn: set[int] = set()
    for row in conn.execute(
        "SELECT id, entry_seq, outcome, msg_id, sender, digest, size, codes, raw, answer FROM transactions"
    ):
        tid, seq, outcome, msg_id, sender, digest, size, codes, raw, answer = row
        seen_txn.add(seq)
        e = bodies.get(seq)
        if e is None or e.get("kind") != outcome:
            problems.append(ChainProblem("transactions", tid, f"no {outcome} entry {seq} behind this row"))
            continue
        if (e.get("msg_id"), e.get("sender"), e.get("digest"), e.get("size")) != (msg_id, sender, digest, size):
            problems.append(ChainProblem("transactions", tid, f"differs from journal entry {seq}"))
        if outcome == "rejected" and json.loads(codes) != e.get("codes"):
            problems.append(ChainProblem("transactions", tid, f"codes differ from journal entry {seq}"))
        if outcome == "accepted":
            if raw is None or hashlib.sha256(raw).hexdigest() != digest:
                problems.append(ChainProblem("transactions", tid, "stored packet does not match its digest"))
            if answer is None or hashlib.sha256(answer).hexdigest() != e.get("answer_sha256"):
                problems.append(ChainProblem("transactions", tid, "stored answer does not match the journal"))
    for seq in sorted(txn_entries - seen_txn):
        problems.append(ChainProblem("transactions", f"of entry {seq}", "deleted"))

    seen_delivery: set[tuple[str, str]] = set()
    for did, msg_id, receiver, state, seq in conn.execute(
        "SELECT id, msg_id, receiver, state, entry_seq FROM deliveries"
    ):
        key = (msg_id, receiver)
        seen_delivery.add(key)
        expected_seq = last_state.get(key)
        e = bodies.get(seq)
        expected_state = "accepted" if e and e.get("kind") == "accepted" else (e or {}).get("state")
        if expected_seq is None:
            problems.append(ChainProblem("deliveries", did, "no journal entry for this delivery"))
        elif seq != expected_seq or expected_state != state:
            problems.append(ChainProblem("deliveries", did, f"state '{state}' differs from journal entry {expected_seq}"))
    for msg_id, receiver in sorted(set(last_state) - seen_delivery):
        problems.append(ChainProblem("deliveries", f"{msg_id}/{receiver}", "deleted"))
    return problems


