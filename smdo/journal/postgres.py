"""The journal on PostgreSQL (psycopg 3, async): one journal for a cluster of hub nodes.

SQL only, like the SQLite store: the rules are `smdo.journal.transitions`, the entries
`smdo.journal.entries`, the audit `smdo.journal.audit`.

How nodes share it:
- One chain. Every transaction that appends entries first locks the single `chain_head` row
  (`SELECT ... FOR UPDATE`), reads the head, appends, and sets the head before it commits. So the
  entries of all nodes form one gap-free sequence, committed in chain order, and every writer takes
  its locks in the same order (head first, then rows), so writers never deadlock. With group commit
  a node holds the head for one transaction per group, not per packet.
- Claims: due deliveries are selected `FOR UPDATE OF d SKIP LOCKED` and leased (`claimed_by`,
  `claim_until`); a node that dies leaves leases that simply run out, and another node's next
  claim takes the delivery. A claim commits without waiting for its WAL flush
  (`synchronous_commit = off`): lost, the delivery is just due again.
- Durability: every other commit waits for the WAL flush (PostgreSQL's default), so a packet is
  answered 100 only once it is on disk.

Two connections per store: one for writes and claims (their transactions are short and ordered by
the chain lock anyway), one for reads, so status queries never wait behind a commit.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from smdo.journal import claims, pg_copy
from smdo.journal import rows as R
from smdo.journal.audit import DELIVERY_COLUMNS, ENTRY_COLUMNS, TRANSACTION_COLUMNS, Progress, run_audit
from smdo.journal.chain import ChainProblem, ChainWriter
from smdo.journal.entries import Prepared, prepare
from smdo.journal.records import Accepted, Carried, Claimed, Duplicate, Lanes, RawFile, ReceiverBacklog, Record, TransactionView
from smdo.journal.timing import LockTimes
from smdo.journal.transitions import FINISHED, PENDING, accepted_msg_ids, archived_msg_ids, changed_msg_ids, plan_write
from smdo.postgres import SESSION_OPTIONS, migrations
from smdo.storage import StorageError

T = TypeVar("T")

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")
_HEAD = "SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE"


class PostgresJournal:
    """`JournalStore` on a PostgreSQL database at schema `migrations.LATEST`."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.location = _PASSWORD.sub(r"\1***@", dsn)
        self._writer: psycopg.AsyncConnection[Any] | None = None
        self._reader: psycopg.AsyncConnection[Any] | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._times = LockTimes()

    async def open(self) -> None:
        try:
            self._reader = await self._connect()
        except psycopg.OperationalError as exc:
            raise StorageError(f"cannot connect to {self.location}: {str(exc).strip().splitlines()[0]}") from None
        try:
            await migrations.check(self._reader, self.location)
            self._writer = await self._connect()
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, options=SESSION_OPTIONS)

    async def _usable(self, conn: psycopg.AsyncConnection[Any] | None) -> psycopg.AsyncConnection[Any]:
        """`conn`, or a new connection when it broke (server restart, session ended): the operation
        that saw it break failed; the next one works again."""
        assert conn is not None, "journal is not open"
        if not (conn.closed or conn.broken):
            return conn
        await conn.close()
        fresh = await self._connect()
        if conn is self._writer:
            self._writer = fresh
        else:
            self._reader = fresh
        return fresh

    async def close(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    async def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._read_lock:
            for attempt in (1, 2):  # a read is safe to repeat on a fresh session
                reader = await self._usable(self._reader)
                try:
                    async with reader.cursor() as cur:
                        await cur.execute(sql, args)
                        return await cur.fetchall()
                except psycopg.OperationalError:
                    if attempt == 2 or not reader.broken:
                        raise
            raise AssertionError("unreachable")

    # --- writes -----------------------------------------------------------------------------------

    async def write(self, records: Sequence[Record]) -> list[Duplicate | None]:
        prepared = prepare(list(records))  # the entries' JSON, before the lock
        return await self._chained(lambda cur, chain: self._apply(cur, chain, prepared))

    async def _chained(self, fn: Any, *, flush_wal: bool = True) -> Any:
        """One transaction holding the chain head: `fn(cursor, chain)`, then the entries and head."""
        async with self._write_lock:
            conn = await self._usable(self._writer)
            t0 = time.perf_counter()
            async with conn.transaction(), conn.cursor() as cur:
                if not flush_wal:
                    await cur.execute("SET LOCAL synchronous_commit = off")
                await cur.execute(_HEAD)
                seq, hash_ = await cur.fetchone()  # type: ignore[misc]
                t1 = time.perf_counter()
                chain = ChainWriter(seq, hash_)
                result = await fn(cur, chain)
                if chain.rows:
                    await cur.executemany("INSERT INTO entries (seq, body, hash, msg_id) VALUES (%s, %s, %s, %s)",
                                          chain.rows)
                    await cur.execute("UPDATE chain_head SET seq = %s, hash = %s WHERE id = 1", (chain.seq, chain.hash))
                t2 = time.perf_counter()
            self._times.add(t1 - t0, t2 - t1, time.perf_counter() - t2)
            return result

    async def _apply(self, cur: psycopg.AsyncCursor[Any], chain: ChainWriter,
                     prepared: list[Prepared]) -> list[Duplicate | None]:
        # Read under the chain lock: anything another node committed before is visible now.
        earlier: dict[str, tuple[str, bytes]] = {}
        ids = accepted_msg_ids(prepared)
        if ids:
            await cur.execute("SELECT msg_id, digest, answer FROM transactions"
                              " WHERE outcome = 'accepted' AND msg_id = ANY(%s)", (ids,))
            earlier = {m: (d, bytes(a)) for m, d, a in await cur.fetchall()}
        states: dict[tuple[str, str], str] = {}
        changed = changed_msg_ids(prepared)
        if changed:
            await cur.execute("SELECT msg_id, receiver, state FROM deliveries WHERE msg_id = ANY(%s)", (changed,))
            states = {(m, r): s for m, r, s in await cur.fetchall()}
        stored: dict[str, str] = {}
        archived = archived_msg_ids(prepared)
        if archived:
            await cur.execute("SELECT msg_id, digest FROM transactions WHERE outcome = 'accepted' AND msg_id = ANY(%s)"
                              " AND (packet IS NOT NULL OR raw IS NOT NULL)", (archived,))
            stored = {m: d for m, d in await cur.fetchall()}
        plan = plan_write(prepared, earlier, states, chain, stored)
        rows = [t for t in plan.transactions if not isinstance(t.raw, RawFile)]
        if rows:
            await cur.executemany(
                f"INSERT INTO transactions ({pg_copy.COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        for t in plan.transactions:
            if isinstance(t.raw, RawFile):  # a large body: streamed from its file, never whole in memory
                async with cur.copy(f"COPY transactions ({pg_copy.COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    for block in pg_copy.copy_stream(t, t.raw.size, t.raw.chunks()):
                        await copy.write(block)
        if plan.deliveries:
            await cur.executemany(
                "INSERT INTO deliveries (msg_id, receiver, mode, state, next_at, deadline, updated_at, entry_seq)"
                " VALUES (%s, %s, %s, 'accepted', %s, %s, %s, %s)", plan.deliveries)
        if plan.updates:
            await cur.executemany(
                "UPDATE deliveries SET state = %s, next_at = %s, detail = %s, updated_at = %s, entry_seq = %s,"
                " delivered_at = coalesce(%s, delivered_at), registered_at = coalesce(%s, registered_at),"
                " claimed_by = NULL, claim_until = NULL WHERE msg_id = %s AND receiver = %s", plan.updates)
        if plan.archived:
            await cur.execute("UPDATE transactions SET packet = NULL, raw = NULL"
                              " WHERE outcome = 'accepted' AND msg_id = ANY(%s)", (plan.archived,))
        return plan.results

    async def claim_push(self, worker: str, now: float, lease: float, limit: int,
                         lanes: Lanes | None = None) -> list[Claimed]:
        return await self._claim("push", None, worker, now, lease, limit, lanes)

    async def claim_mailbox(self, receiver: str, now: float, visibility: float, limit: int,
                            lanes: Lanes | None = None) -> list[Claimed]:
        return await self._claim("pull", receiver, f"mailbox:{receiver}", now, visibility, limit, lanes)

    async def _claim(self, mode: str, receiver: str | None, holder: str, now: float, lease: float,
                     limit: int, lanes: Lanes | None = None) -> list[Claimed]:
        where, args = R.claim_filter("%s", mode, receiver, now)
        # The idle poll: one indexed read on the reader connection, not the chain lock, when nothing is due.
        if not await self._read(f"SELECT 1 FROM deliveries d WHERE {where} LIMIT 1", args):
            return []

        full = lanes.full() if lanes is not None else []
        if full:
            where += " AND NOT (d.receiver = ANY(%s))"
            args.append(full)

        async def claim(cur: psycopg.AsyncCursor[Any], chain: ChainWriter) -> list[Claimed]:
            # Lock candidates by id, receiver and size first, then read the chosen ones' bodies only.
            await cur.execute(
                f"SELECT {claims.CANDIDATE_COLUMNS} FROM deliveries d JOIN transactions t"
                f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE {where}"
                " ORDER BY d.next_at LIMIT %s FOR UPDATE OF d SKIP LOCKED", (*args, claims.candidate_limit(limit, lanes)))
            order = claims.choose(await cur.fetchall(), limit, lanes)
            if not order:
                return []
            await cur.execute(
                f"SELECT {R.CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
                " ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.id = ANY(%s)", (list(order),))
            rows, updates = claims.lease(await cur.fetchall(), order, chain, holder, now, lease)
            await cur.executemany(claims.update_sql("%s"), updates)
            return [R.claimed(r, attempt_added=1) for r in rows]

        return await self._chained(claim, flush_wal=False)

    async def release_claims(self) -> int:
        async with self._write_lock:
            writer = await self._usable(self._writer)
            async with writer.cursor() as cur:
                await cur.execute(
                    "UPDATE deliveries SET claimed_by = NULL, claim_until = NULL"
                    " WHERE state = 'forwarding' AND claimed_by IS NOT NULL")
                return cur.rowcount

    # --- reads ------------------------------------------------------------------------------------

    async def past_deadline(self, now: float, limit: int) -> list[Claimed]:
        rows = await self._read(
            f"SELECT {R.CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
            f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.state IN {PENDING}"
            " AND d.deadline <= %s AND (d.claim_until IS NULL OR d.claim_until < %s) LIMIT %s", (now, now, limit))
        return [R.claimed(r) for r in rows]

    async def next_due(self) -> float:
        # Pending rows only, through the partial indexes: a handful of rows however old the journal.
        [(push, any_mode)] = await self._read(
            "SELECT min(CASE WHEN mode = 'push' THEN GREATEST(coalesce(next_at, 0), coalesce(claim_until, 0)) END),"
            f" min(GREATEST(deadline, coalesce(claim_until, 0))) FROM deliveries WHERE state IN {PENDING}")
        return min((float(t) for t in (push, any_mode) if t is not None), default=float("inf"))

    async def delivery(self, delivery_id: int) -> Claimed | None:
        rows = await self._read(
            f"SELECT {R.CLAIMED_COLUMNS} FROM deliveries d JOIN transactions t"
            " ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE d.id = %s", (delivery_id,))
        return R.claimed(rows[0]) if rows else None

    async def delivery_state(self, msg_id: str, receiver: str) -> str | None:
        rows = await self._read("SELECT state FROM deliveries WHERE msg_id = %s AND receiver = %s", (msg_id, receiver))
        return rows[0][0] if rows else None

    async def accepted(self, msg_id: str) -> Accepted | None:
        return await self._accepted(msg_id, R.ACCEPTED_COLUMNS, R.accepted)

    async def carried(self, msg_id: str) -> Carried | None:
        return await self._accepted(msg_id, R.CARRIED_COLUMNS, R.carried)

    async def _accepted(self, msg_id: str, columns: str, make: Callable[[Sequence[Any], list[Any]], T]) -> T | None:
        """The accepted transaction `msg_id` as `make` builds it from `columns` and its deliveries."""
        rows = await self._read(
            f"SELECT {columns} FROM transactions WHERE msg_id = %s AND outcome = 'accepted'", (msg_id,))
        if not rows:
            return None
        deliveries = await self._read("SELECT receiver, mode FROM deliveries WHERE msg_id = %s ORDER BY id", (msg_id,))
        return make(rows[0], deliveries)

    async def transaction(self, msg_id: str) -> list[TransactionView]:
        return await self._views("t.msg_id = %s", (msg_id,), 1000)

    async def acknowledgements(self, msg_id: str) -> list[TransactionView]:
        return await self._views("t.ack_for = %s AND t.outcome = 'accepted'", (msg_id,), 1000)

    async def list_transactions(
        self, *, since: float | None = None, sender: str | None = None, state: str | None = None,
        limit: int = 100, until: float | None = None, receiver: str | None = None, documents_only: bool = False,
    ) -> list[TransactionView]:
        where, args = R.transaction_filter("%s", since=since, until=until, sender=sender, receiver=receiver,
                                           state=state, documents_only=documents_only)
        by_delivery = R.delivery_filter("%s", receiver=receiver, state=state)
        if by_delivery is not None:
            return await self._search(where, args, *by_delivery, limit)
        return await self._views(where, args, limit)

    async def _search(self, t_where: str, t_args: tuple[object, ...], d_where: str, d_args: tuple[object, ...],
                      limit: int) -> list[TransactionView]:
        """A search by receiver or delivery state: deliveries newest first, in keyset pages (rows.py)."""
        found: dict[str, tuple[Any, ...]] = {}
        page, bound = R.search_pages(limit), 2 ** 63 - 1
        sql = R.search_sql("%s", t_where, d_where)
        while len(found) < limit:
            rows = await self._read(sql, (*d_args, *t_args, bound, page))
            R.distinct_newest(rows, found, limit)
            if len(rows) < page:
                break
            bound = rows[-1][-1]
        return await self._with_deliveries(list(found.values()))

    async def _views(self, where: str, args: tuple[object, ...], limit: int) -> list[TransactionView]:
        rows = await self._read(
            f"SELECT {R.VIEW_COLUMNS} FROM transactions t WHERE {where} ORDER BY t.id DESC LIMIT %s", (*args, limit))
        return await self._with_deliveries(rows)

    async def _with_deliveries(self, rows: Sequence[Sequence[Any]]) -> list[TransactionView]:
        """Views of transaction rows (newest first), oldest first, accepted ones with their deliveries."""
        ids = list({r[0] for r in rows if r[1] == "accepted"})
        by_msg: dict[str, list[tuple[Any, ...]]] = {}
        if ids:
            for d in await self._read(f"SELECT msg_id, {R.DELIVERY_VIEW_COLUMNS} FROM deliveries"
                                      " WHERE msg_id = ANY(%s) ORDER BY receiver", (ids,)):
                by_msg.setdefault(d[0], []).append(d[1:])
        return [R.view(r, by_msg.get(r[0], []) if r[1] == "accepted" else ()) for r in reversed(rows)]

    async def counts(self) -> dict[str, int]:
        # Kept by triggers in the transaction that changes a state (migration 2): no scan.
        return {state: n for state, n in await self._read("SELECT state, n FROM delivery_counts WHERE n <> 0")}

    async def chain_head(self) -> tuple[int, str] | None:
        rows = await self._read("SELECT seq, hash FROM chain_head WHERE id = 1")
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] > 0 else None  # seq 0: the empty chain

    async def entry_hashes(self, seqs: Sequence[int]) -> dict[int, str]:
        wanted = list(dict.fromkeys(seqs))
        if not wanted:
            return {}
        return dict(await self._read("SELECT seq, hash FROM entries WHERE seq = ANY(%s)", (wanted,)))

    async def archive_candidates(self, before: float, after: tuple[float, int],
                                 limit: int) -> list[tuple[int, str, str, int, float]]:
        return await self._read(R.archive_candidates_sql("%s", FINISHED), (before, *after, limit))

    async def packet(self, msg_id: str) -> bytes | None:
        rows = await self._read(f"SELECT {R.PACKET} FROM transactions WHERE msg_id = %s AND outcome = 'accepted'",
                                (msg_id,))
        return None if not rows or rows[0][0] is None else bytes(rows[0][0])

    async def verify(self, *, since: tuple[int, str] | None = None,
                     progress: Callable[[Progress], None] | None = None,
                     archive: Path | None = None) -> list[ChainProblem]:
        # A session of its own, in one snapshot of all tables however many nodes keep writing;
        # status reads on the reader connection go on meanwhile.
        conn = await self._connect()
        try:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return await run_audit(_AuditReader(cur), since=since, progress=progress, archive=archive)
        finally:
            await conn.close()

    def wal_bytes(self) -> int | None:
        return None  # the server manages its own write-ahead log

    def lock_times(self) -> dict[str, float]:
        return self._times.as_dict()

    # --- operators' views: a transaction's history, backlog, hourly counts, statistics ---------

    async def history(self, msg_id: str) -> list[dict[str, Any]]:
        rows = await self._read("SELECT body FROM entries WHERE msg_id = %s ORDER BY seq LIMIT 10000", (msg_id,))
        return [json.loads(body) for body, in rows]

    async def backlog(self) -> list[ReceiverBacklog]:
        out = []
        for row in await self._read(R.BACKLOG_SQL):
            oldest = await self._read(R.backlog_oldest_sql("%s"), (row[0],))
            failure = await self._read(R.backlog_failure_sql("%s"), (row[0],))
            out.append(R.backlog(row, oldest[0] if oldest else None, failure[0] if failure else None))
        return out

    async def hourly(self, since: float) -> list[tuple[int, int, int, int]]:
        hours: dict[int, list[int]] = {}
        for hour, outcome, n in await self._read(
                "SELECT floor(received_at / 3600)::bigint, outcome, count(*) FROM transactions"
                " WHERE received_at >= %s AND origin = 'ingress' GROUP BY 1, 2", (since,)):
            hours.setdefault(hour * 3600, [0, 0, 0])[0 if outcome == "accepted" else 1] += n
        for hour, n in await self._read(
                "SELECT floor(delivered_at / 3600)::bigint, count(*) FROM deliveries"
                " WHERE delivered_at >= %s GROUP BY 1", (since,)):
            hours.setdefault(hour * 3600, [0, 0, 0])[2] += n
        return sorted((h, *counts) for h, counts in hours.items())

    async def period_facts(self, since: float, until: float, sink: Callable[[str, list[tuple]], None]) -> None:
        async with self._read_lock:
            reader = await self._usable(self._reader)
            for kind, sql in _FACTS:
                # A server-side cursor: a quarter's rows arrive in batches, never all in memory.
                async with reader.transaction(), reader.cursor(name=f"facts_{kind}") as cur:
                    await cur.execute(sql, (since, until))
                    while batch := await cur.fetchmany(10_000):
                        sink(kind, batch)


_DOCUMENTS = "t.received_at >= %s AND t.received_at < %s AND t.origin = 'ingress'"
_DAY = "floor(t.received_at / 86400)::bigint"
_FACTS = (
    ("document", f"SELECT {_DAY}, t.sender, count(*) FROM transactions t"
                 f" WHERE {_DOCUMENTS} AND t.outcome = 'accepted' AND t.msg_type <> 0 GROUP BY 1, 2"),
    ("refusal", f"SELECT {_DAY}, t.sender, count(*) FROM transactions t"
                f" WHERE {_DOCUMENTS} AND t.outcome = 'rejected' GROUP BY 1, 2"),
    ("delivery", f"SELECT {_DAY}, t.sender, d.receiver, d.state, count(*) FROM transactions t"
                 " JOIN deliveries d ON d.msg_id = t.msg_id"
                 f" WHERE {_DOCUMENTS} AND t.outcome = 'accepted' AND t.msg_type <> 0 GROUP BY 1, 2, 3, 4"),
    ("durations", f"SELECT {_DAY}, t.sender, d.delivered_at - t.received_at, d.registered_at - t.received_at"
                  " FROM transactions t JOIN deliveries d ON d.msg_id = t.msg_id"
                  f" WHERE {_DOCUMENTS} AND t.outcome = 'accepted' AND t.msg_type <> 0"
                  " AND (d.delivered_at IS NOT NULL OR d.registered_at IS NOT NULL)"),
)


_AUDIT_TRANSACTIONS = TRANSACTION_COLUMNS.replace("raw_sha256", f"encode(sha256({R.PACKET}), 'hex')").replace(
    "answer_sha256", "encode(sha256(answer), 'hex')")


class _AuditReader:
    """`AuditReader` on a cursor inside one REPEATABLE READ transaction."""

    def __init__(self, cur: psycopg.AsyncCursor[Any]) -> None:
        self._cur = cur

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        await self._cur.execute(sql, args)
        return await self._cur.fetchall()

    async def head(self) -> tuple[int, str] | None:
        rows = await self._all("SELECT seq, hash FROM chain_head WHERE id = 1")
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] > 0 else None

    async def entries_after(self, seq: int, limit: int) -> list[tuple[int, str, str, str | None]]:
        return await self._all(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE seq > %s ORDER BY seq LIMIT %s",
                               (seq, limit))  # type: ignore[return-value]

    async def transactions_between(self, low: int, high: int) -> list[tuple[Any, ...]]:
        return await self._all(f"SELECT {_AUDIT_TRANSACTIONS} FROM transactions WHERE entry_seq BETWEEN %s AND %s",
                               (low, high))

    async def transactions_beyond(self, seq: int) -> list[tuple[Any, ...]]:
        return await self._all(f"SELECT {_AUDIT_TRANSACTIONS} FROM transactions WHERE entry_seq > %s OR entry_seq < 1"
                               " LIMIT 100", (seq,))

    async def delivery_keys(self, msg_ids: Sequence[str]) -> list[tuple[str, str]]:
        return await self._all("SELECT msg_id, receiver FROM deliveries WHERE msg_id = ANY(%s)",
                               (list(msg_ids),))  # type: ignore[return-value]

    async def deliveries_after(self, entry_seq: int, row_id: int, limit: int) -> list[tuple[Any, ...]]:
        return await self._all(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE (entry_seq, id) > (%s, %s)"
                               " ORDER BY entry_seq, id LIMIT %s", (entry_seq, row_id, limit))

    async def entries_of(self, msg_ids: Sequence[str]) -> list[tuple[int, str]]:
        return await self._all("SELECT seq, body FROM entries WHERE msg_id = ANY(%s)",
                               (list(msg_ids),))  # type: ignore[return-value]
