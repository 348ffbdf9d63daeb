"""The journal store contract, run against every store: SQLite (a real file) and PostgreSQL (a real
server started for the session). Group commit, de-duplication, claims and leases, states, the hash
chain and the audit behave the same on both."""
from __future__ import annotations

import asyncio
import hashlib
import sqlite3

import psycopg
import pytest

from smdo.journal import Accepted, DeliveryState, GroupCommitter, Rejected, StateChange, journal_store
from smdo.journal.store import JournalStore


def accepted(msg_id: str, raw: bytes = b"<Envelop/>", *, receivers=("B",), mode="push", at=1000.0) -> Accepted:
    return Accepted(
        msg_id=msg_id, sender="A", receivers=tuple(receivers), msg_type=1, acknow=2,
        digest=hashlib.sha256(raw).hexdigest(), size=len(raw), received_at=at, deadline=at + 60,
        raw=raw, answer=b"<ack " + msg_id.encode() + b"/>", deliveries=tuple((r, mode) for r in receivers),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}"
    return request.getfixturevalue("postgres_url")


def raw_sql(url: str, sql: str) -> list[tuple]:
    """Run SQL on the store's database directly, as someone tampering with it would."""
    if url.startswith("sqlite://"):
        with sqlite3.connect(url[len("sqlite://"):] + "/journal.db") as db:
            return db.execute(sql).fetchall()
    with psycopg.connect(url, autocommit=True) as db:
        cur = db.execute(sql)
        return cur.fetchall() if cur.description else []


@pytest.fixture
async def journal(store_url):
    store = journal_store(store_url)
    await store.open()
    yield store
    await store.close()


async def test_group_commit_answers_every_caller_after_one_write(journal):
    committer = GroupCommitter(journal)
    committer.start()
    results = await asyncio.gather(*(committer.submit([accepted(f"m{i}")]) for i in range(50)))
    await committer.stop()
    assert results == [[None]] * 50
    assert committer.records == 50
    assert committer.groups < 50  # many packets share one transaction
    assert len(await journal.list_transactions(limit=1000)) == 50
    assert journal.lock_times()["transactions"] == committer.groups
    assert await journal.verify() == []


async def test_same_msg_id_returns_the_earlier_answer(journal):
    assert await journal.write([accepted("m1")]) == [None]
    [dup] = await journal.write([accepted("m1", b"<other/>")])
    assert dup is not None and dup.answer == b"<ack m1/>"
    assert dup.digest == hashlib.sha256(b"<Envelop/>").hexdigest()
    assert len(await journal.transaction("m1")) == 1
    stored = await journal.accepted("m1")
    assert stored is not None and stored.raw == b"<Envelop/>" and stored.deliveries == (("B", "push"),)
    carried = await journal.carried("m1")  # the same facts without the packet's bytes
    assert (carried.sender, carried.receivers, carried.origin, carried.deliveries) == ("A", ("B",), "ingress",
                                                                                       (("B", "push"),))
    assert await journal.carried("m2") is None


async def test_claims_are_exclusive_until_the_lease_ends(journal):
    await journal.write([accepted("m1", receivers=("B", "C"))])
    first = await journal.claim_push("w1", now=1001, lease=30, limit=10)
    assert sorted(c.receiver for c in first) == ["B", "C"]
    assert first[0].raw == b"<Envelop/>" and first[0].attempts == 1
    assert await journal.claim_push("w2", now=1002, lease=30, limit=10) == []
    again = await journal.claim_push("w2", now=1040, lease=30, limit=10)  # lease over: offered again
    assert len(again) == 2 and again[0].attempts == 2
    assert await journal.release_claims() == 2
    assert len(await journal.claim_push("w3", now=1041, lease=30, limit=10)) == 2
    assert (await journal.delivery(first[0].delivery_id)).msg_id == "m1"


async def test_claims_with_lanes_fill_each_receivers_room_and_skip_full_ones(journal):
    from smdo.journal import Lanes

    # The slow receiver's 20 are older than anything else: first in due order.
    await journal.write([accepted(f"slow{i}", receivers=("SLOW",), at=1000.0 + i) for i in range(20)])
    await journal.write([accepted(f"ok{i}", receivers=("OK",), at=1030.0 + i) for i in range(5)]
                        + [accepted(f"new{i}", receivers=("NEW",), at=1030.0 + i) for i in range(5)])
    # SLOW's lane is full, OK has room for one more, NEW (not named) a whole lane of 2.
    claimed = await journal.claim_push("w", 1050.0, 60.0, 32, Lanes(2, {"SLOW": 0, "OK": 1}))
    assert sorted(d.msg_id for d in claimed) == ["new0", "new1", "ok0"]
    assert all(d.raw == b"<Envelop/>" for d in claimed)
    # Without lanes: oldest first, as before.
    assert [d.msg_id for d in await journal.claim_push("w", 1050.0, 60.0, 3)] == ["slow0", "slow1", "slow2"]
    assert await journal.verify() == []


async def test_mailbox_claims_only_the_receivers_pull_deliveries(journal):
    await journal.write([accepted("p1", receivers=("B", "C"), mode="pull"), accepted("s1", receivers=("B",))])
    got = await journal.claim_mailbox("B", now=1001, visibility=10, limit=10)
    assert [(c.msg_id, c.receiver, c.mode) for c in got] == [("p1", "B", "pull")]
    assert await journal.claim_mailbox("B", now=1005, visibility=10, limit=10) == []  # still invisible
    assert len(await journal.claim_mailbox("B", now=1012, visibility=10, limit=10)) == 1  # offered again


async def test_states_and_the_late_delivery_ack_rule(journal):
    await journal.write([accepted("m1")])
    await journal.claim_push("w1", now=1001, lease=30, limit=10)
    await journal.write([StateChange("m1", "B", DeliveryState.RETRY_WAIT, at=1002, next_at=1010)])
    assert await journal.claim_push("w1", now=1005, lease=30, limit=10) == []
    assert len(await journal.claim_push("w1", now=1010, lease=30, limit=10)) == 1
    await journal.write([StateChange("m1", "B", DeliveryState.REGISTERED, at=1011, detail="inc 7")])
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=1012)])  # ignored
    assert await journal.delivery_state("m1", "B") == "registered"
    [view] = await journal.transaction("m1")
    assert view.deliveries[0].state == "registered" and view.deliveries[0].detail == "inc 7"
    assert await journal.counts() == {"registered": 1}
    assert await journal.verify() == []


async def test_past_deadline_and_acknowledgements(journal):
    ack = Accepted(msg_id="a1", sender="HUB", receivers=("A",), msg_type=0, acknow=0, digest=hashlib.sha256(b"x")
                   .hexdigest(), size=1, received_at=1001.0, deadline=2000.0, raw=b"x", answer=b"",
                   deliveries=(("A", "push"),), ack_for="m1", origin="hub")
    await journal.write([accepted("m1"), ack])
    assert [c.msg_id for c in await journal.past_deadline(now=1061, limit=10)] == ["m1"]
    assert [a.msg_id for a in await journal.acknowledgements("m1")] == ["a1"]
    assert [v.msg_id for v in await journal.list_transactions(sender="HUB")] == ["a1"]


async def test_next_due_is_the_next_retry_lease_end_or_deadline(journal):
    assert await journal.next_due() == float("inf")  # nothing pending: the delivery loop sleeps
    await journal.write([accepted("m1")])  # received at 1000, deadline 1060
    assert await journal.next_due() == 1000.0  # due at once
    [claimed] = await journal.claim_push("w1", now=1001, lease=30, limit=10)
    assert await journal.next_due() == 1031.0  # leased: due again when the lease runs out
    await journal.write([StateChange("m1", "B", DeliveryState.RETRY_WAIT, at=1002.0, next_at=1010.0)])
    assert await journal.next_due() == 1010.0  # the retry
    await journal.write([accepted("p1", receivers=("C",), mode="pull", at=1000.0)])
    await journal.write([StateChange("m1", "B", DeliveryState.RETRY_WAIT, at=1003.0, next_at=1100.0)])
    assert await journal.next_due() == 1060.0  # the earliest deadline (the pull delivery's, m1's too)
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=1004.0),
                         StateChange("p1", "C", DeliveryState.DELIVERED, at=1004.0)])
    assert await journal.next_due() == float("inf")


async def test_rejections_are_journaled_without_body(journal, store_url):
    await journal.write([Rejected("signature", (-21,), "ab" * 32, 123, 1000.0, msg_id="x", sender="A")])
    [view] = await journal.transaction("x")
    assert view.outcome == "rejected" and view.codes == (-21,)
    assert [v.msg_id for v in await journal.list_transactions(state="rejected")] == ["x"]
    assert raw_sql(store_url, "SELECT raw FROM transactions") == [(None,)]


async def test_a_state_change_of_an_unknown_delivery_fails_the_write(journal):
    with pytest.raises(LookupError):
        await journal.write([StateChange("nope", "B", DeliveryState.DELIVERED, at=1.0)])
    assert await journal.verify() == []


@pytest.mark.parametrize(
    "tamper, table",
    [
        ("UPDATE entries SET body = replace(body, '\"size\":10', '\"size\":11') WHERE seq = 1", "entries row 1"),
        ("DELETE FROM entries WHERE seq = 2", "entries row 2"),
        ("DELETE FROM entries WHERE seq = 4", "chain_head"),
        ("UPDATE transactions SET sender = 'Z' WHERE msg_id = 'm2'", "transactions row 2"),
        ("UPDATE transactions SET packet = NULL WHERE msg_id = 'm1'", "transactions row 1"),
        ("DELETE FROM transactions WHERE msg_id = 'm2'", "transactions row of entry 2"),
        ("UPDATE deliveries SET state = 'delivered' WHERE msg_id = 'm2'", "deliveries row 2"),
        ("DELETE FROM deliveries WHERE msg_id = 'm1'", "deliveries row m1/B"),
        ("UPDATE entries SET msg_id = 'm9' WHERE seq = 1", "entries row 1"),  # hides it from the timeline
    ],
)
async def test_verify_names_the_edited_or_deleted_row(journal, store_url, tamper, table):
    await journal.write([accepted("m1"), accepted("m2")])
    await journal.claim_push("w", now=1001, lease=30, limit=1)
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=1002)])
    assert await journal.verify() == []
    raw_sql(store_url, tamper)
    problems = await journal.verify()
    assert problems, "tampering went unnoticed"
    assert any(str(p).startswith(table) for p in problems), [str(p) for p in problems]


async def test_two_connections_never_claim_the_same_delivery(store_url):
    """Two hub workers (or nodes) are two connections to one journal: their claims are disjoint,
    and their writes make one chain that verifies."""
    stores: list[JournalStore] = [journal_store(store_url) for _ in range(2)]
    for store in stores:
        await store.open()
    await asyncio.gather(*(stores[i % 2].write([accepted(f"m{i}", receivers=("B", "C"))]) for i in range(150)))

    async def drain(store: JournalStore, worker: str) -> list[tuple[str, str]]:
        got = []
        while batch := await store.claim_push(worker, now=1001, lease=60, limit=7):
            got += [(c.msg_id, c.receiver) for c in batch]
            await asyncio.sleep(0)
        return got

    first, second = await asyncio.gather(drain(stores[0], "w1"), drain(stores[1], "w2"))
    assert first and second  # both took part
    assert not set(first) & set(second)
    assert len(first) + len(second) == 300 == len(set(first) | set(second))
    assert await stores[1].verify() == []
    for store in stores:
        await store.close()


async def test_a_store_refuses_a_schema_it_does_not_know(store_url, postgres_server):
    if store_url.startswith("sqlite://"):
        store = journal_store(store_url)
        await store.open()
        await store.close()
        raw_sql(store_url, "PRAGMA user_version = 99")
    else:
        raw_sql(store_url, "UPDATE smdo_schema SET version = 99")
    with pytest.raises(RuntimeError, match="99"):
        await journal_store(store_url).open()


async def test_postgres_needs_the_upgrade_first_and_it_is_repeatable(postgres_server):
    from smdo.postgres.migrations import LATEST, SchemaMismatch, upgrade

    url = postgres_server.new_database()
    with pytest.raises(SchemaMismatch, match="smdo db upgrade"):
        await journal_store(url).open()
    assert upgrade(url) == (0, LATEST)
    assert upgrade(url) == (LATEST, LATEST)  # nothing left to do
    store = journal_store(url)
    await store.open()
    assert await store.verify() == []
    await store.close()


async def test_history_backlog_hourly_and_statistics_facts(journal):
    """The operators' views: a transaction's timeline, the backlog per receiver, hourly counts, and
    the statistics' facts (with the times to delivery and to registration)."""
    await journal.write([accepted("m1", receivers=("B", "C"), at=7200.0),
                         Rejected("signature", (-21,), "ab" * 32, 5, 7300.0, msg_id="x", sender="A")])
    await journal.claim_push("w", now=7201, lease=30, limit=10)
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=7210),
                         StateChange("m1", "C", DeliveryState.RETRY_WAIT, at=7211, next_at=7300, detail="HTTP 503")])
    await journal.write([StateChange("m1", "B", DeliveryState.REGISTERED, at=7260, detail="inc 7")])
    history = await journal.history("m1")
    assert [e["kind"] for e in history] == ["accepted", "state", "state", "state", "state", "state"]
    assert [e.get("state") for e in history if e.get("receiver") == "B"] == ["forwarding", "delivered", "registered"]
    [backlog] = await journal.backlog()
    assert (backlog.receiver, backlog.waiting, backlog.failing, backlog.last_error) == ("C", 1, 1, "HTTP 503")
    assert backlog.oldest_received_at == 7200.0 and backlog.next_try_at == 7300
    assert await journal.hourly(0) == [(7200, 1, 1, 1)]
    facts: dict[str, list] = {}
    await journal.period_facts(0, 86400, lambda kind, rows: facts.setdefault(kind, []).extend(map(tuple, rows)))
    assert facts["document"] == [(0, "A", 1)] and facts["refusal"] == [(0, "A", 1)]
    assert sorted(facts["delivery"]) == [(0, "A", "B", "registered", 1), (0, "A", "C", "retry-wait", 1)]
    assert facts["durations"] == [(0, "A", 10.0, 60.0)]
    assert [v.msg_id for v in await journal.list_transactions(receiver="C", until=7250)] == ["m1"]
    assert await journal.verify() == []


async def test_a_push_retry_under_way_is_still_failing_in_the_backlog(journal):
    await journal.write([accepted("m1", receivers=("B", "C"), at=100.0)])
    await journal.claim_push("w", now=101, lease=30, limit=10)
    [b_first] = [b for b in await journal.backlog() if b.receiver == "B"]
    assert b_first.failing == 0  # a first attempt under way has failed nothing yet
    await journal.write([StateChange("m1", "C", DeliveryState.RETRY_WAIT, at=102, next_at=110, detail="HTTP 503")])
    assert len(await journal.claim_push("w", now=110, lease=30, limit=10)) == 1  # C's retry
    [c] = [b for b in await journal.backlog() if b.receiver == "C"]
    assert (c.failing, c.last_error, c.next_try_at) == (1, "HTTP 503", None)


async def test_searches_by_receiver_and_state_are_newest_first_one_per_transaction(journal, store_url):
    # m0..m9 to B and C; m0, m3, m6 delivered to B; m9's both deliveries in retry-wait.
    await journal.write([accepted(f"m{i}", receivers=("B", "C"), at=1000.0 + i) for i in range(10)])
    await journal.write([StateChange(f"m{i}", "B", DeliveryState.DELIVERED, at=1100.0) for i in range(0, 9, 3)])
    await journal.write([StateChange("m9", r, DeliveryState.RETRY_WAIT, at=1101.0, next_at=2000.0) for r in "BC"])
    await journal.write([Rejected("signature", (-21,), "ab" * 32, 1, 1050.0, msg_id="x", sender="A")])

    async def ids(**search) -> list[str]:
        return [v.msg_id for v in await journal.list_transactions(**search)]

    assert await ids(receiver="C", limit=3) == ["m7", "m8", "m9"]  # the newest three, oldest first
    assert await ids(state="delivered") == ["m0", "m3", "m6"]
    assert await ids(state="retry-wait") == ["m9"]  # two deliveries in that state, one transaction
    assert await ids(state="accepted", receiver="C", limit=2) == ["m8", "m9"]  # "accepted": the outcome
    assert await ids(state="delivered", receiver="B", since=1001.0, until=1006.5) == ["m3", "m6"]
    assert await ids(state="delivered", receiver="C") == []
    assert await ids(receiver="B", sender="nobody") == []
    assert await ids(state="rejected") == ["x"]
    assert len(await ids(receiver="B", limit=1000)) == 10
    [view] = await journal.list_transactions(state="retry-wait")
    assert sorted(d.receiver for d in view.deliveries) == ["B", "C"]
    if store_url.startswith("sqlite://"):  # walked through the search indexes, newest first: no scan
        for sql, index in (("d.receiver = 'B'", "deliveries_receiver"), ("d.state = 'delivered'", "deliveries_state")):
            plan = raw_sql(store_url, "EXPLAIN QUERY PLAN SELECT t.msg_id FROM deliveries d JOIN transactions t"
                                      f" ON t.msg_id = d.msg_id AND t.outcome = 'accepted' WHERE {sql}"
                                      " AND d.id < 1000 ORDER BY d.id DESC LIMIT 50")
            assert any(index in str(row) for row in plan) and not any("TEMP B-TREE" in str(row) for row in plan), plan
        # and no search index lures the write path's duplicate check off the msg_id index (a walk over
        # every accepted row, bodies and all, per group commit)
        plan = raw_sql(store_url, "EXPLAIN QUERY PLAN SELECT msg_id, digest, answer FROM transactions"
                                  " WHERE outcome = 'accepted' AND msg_id IN ('m1', 'm2')")
        assert any("transactions_accepted_msg_id" in str(row) for row in plan), plan


async def test_an_older_sqlite_journal_gets_the_new_columns(tmp_path):
    """A journal made before the operators' views: opening it adds the columns and fills entries.msg_id."""
    url = f"sqlite://{tmp_path}"
    store = journal_store(url)
    await store.open()
    await store.write([accepted("m1")])
    await store.claim_push("w", now=1001, lease=30, limit=1)
    await store.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=1002)])
    await store.close()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        for index in ("entries_msg_id", "transactions_period", "deliveries_delivered_at"):
            db.execute(f"DROP INDEX {index}")
        for table, column in (("entries", "msg_id"), ("deliveries", "delivered_at"), ("deliveries", "registered_at")):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 0")  # as the journals before versioned schemas were
    store = journal_store(url)
    await store.open()
    try:
        assert [e["kind"] for e in await store.history("m1")] == ["accepted", "state", "state"]
        assert [e.get("state") for e in await store.history("m1")][1:] == ["forwarding", "delivered"]
        await store.write([StateChange("m1", "B", DeliveryState.REGISTERED, at=1010, detail="inc 7")])
        assert len(await store.history("m1")) == 4
        assert await store.verify() == []
    finally:
        await store.close()


async def test_a_large_packet_is_copied_in_from_its_file_byte_for_byte(store_url, tmp_path):
    """A spooled body (RawFile) is written from its file in chunks; it reads back as the same bytes."""
    from smdo.journal import RawFile

    raw = b"<Envelop>" + bytes(range(256)) * 12_000 + b"</Envelop>"  # 3 MB: more than one chunk
    path = tmp_path / "body.part"
    path.write_bytes(raw)
    record = accepted("m1", raw)
    store = journal_store(store_url)
    await store.open()
    try:
        await store.write([Accepted(**{**record.__dict__, "raw": RawFile(path, len(raw))})])
        assert (await store.accepted("m1")).raw == raw
        [claimed] = await store.claim_push("w", now=1001, lease=30, limit=1)
        assert claimed.raw == raw
        assert await store.verify() == []
    finally:
        await store.close()


async def test_packets_written_by_schema_2_are_still_read(tmp_path):
    """Up to schema 2 the packet was in `raw`, before `answer`; since 3 it is the last column."""
    url = f"sqlite://{tmp_path}"
    store = journal_store(url)
    await store.open()
    await store.write([accepted("m1", b"<Envelop>old</Envelop>")])
    await store.close()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        db.execute("UPDATE transactions SET raw = packet")
        db.execute("DROP INDEX transactions_unarchived")  # schema 5's, which names the column
        db.execute("ALTER TABLE transactions DROP COLUMN packet")
        db.execute("PRAGMA user_version = 2")
    store = journal_store(url)
    await store.open()
    try:
        await store.write([accepted("m2", b"<Envelop>new</Envelop>")])
        assert (await store.accepted("m1")).raw == b"<Envelop>old</Envelop>"
        assert (await store.accepted("m2")).raw == b"<Envelop>new</Envelop>"
        assert sorted(c.raw for c in await store.claim_push("w", now=1001, lease=30, limit=5)) == [
            b"<Envelop>new</Envelop>", b"<Envelop>old</Envelop>"]
        assert await store.verify() == []
    finally:
        await store.close()


async def test_postgres_outlives_a_stalled_node_and_a_lost_session(postgres_url):
    """A node frozen inside a transaction holds the chain head; the server ends its silent session
    (idle_in_transaction_session_timeout) and the others go on. A store whose session was ended
    fails that one operation and reconnects for the next."""
    store = journal_store(postgres_url)
    await store.open()
    try:
        stalled = await psycopg.AsyncConnection.connect(postgres_url, options="-c idle_in_transaction_session_timeout=500")
        await stalled.execute("BEGIN")
        await stalled.execute("SELECT seq FROM chain_head WHERE id = 1 FOR UPDATE")  # ...and then nothing
        assert await asyncio.wait_for(store.write([accepted("m1")]), 60) == [None]
        await stalled.close()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(psycopg.OperationalError):
            await store.write([accepted("m2")])
        assert await store.write([accepted("m2")]) == [None]
        assert len(await store.list_transactions()) == 2
        assert await store.verify() == []
    finally:
        await store.close()


async def test_verify_resumes_after_a_trusted_point_and_reports_progress(journal, store_url):
    """A daily verify starts after a checkpoint's (seq, hash): what came before is not read again,
    what came after is checked as strictly as a full audit."""
    await journal.write([accepted(f"m{i}") for i in range(5)])
    head = await journal.chain_head()
    await journal.write([accepted("late")])
    await journal.claim_push("w", now=1001, lease=30, limit=100)
    seen = []
    assert await journal.verify(since=head, progress=seen.append) == []
    assert seen and seen[-1].checked == (await journal.chain_head())[0] - head[0]
    raw_sql(store_url, "UPDATE transactions SET sender = 'Z' WHERE msg_id = 'm0'")  # before the trusted point
    assert await journal.verify(since=head) == []
    assert await journal.verify() != []
    raw_sql(store_url, "UPDATE transactions SET sender = 'Z' WHERE msg_id = 'late'")
    assert any("transactions row" in str(p) for p in await journal.verify(since=head))
    # a resumed audit starting from a hash the journal does not continue from is caught
    assert any(p.table == "entries" for p in await journal.verify(since=(head[0], "f" * 64)))


async def test_counts_are_kept_as_states_change(journal, store_url):
    await journal.write([accepted("m1", receivers=("B", "C")), accepted("m2", receivers=("B",), mode="pull")])
    await journal.claim_push("w", now=1001, lease=30, limit=1)
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=1002)])
    counted = dict(raw_sql(store_url, "SELECT state, count(*) FROM deliveries GROUP BY state"))
    assert await journal.counts() == counted == {"accepted": 2, "delivered": 1}
    await journal.claim_push("w", now=1003, lease=30, limit=10)
    assert await journal.counts() == {"forwarding": 1, "accepted": 1, "delivered": 1}


async def test_releasing_leases_reads_only_forwarding_rows(journal, store_url):
    """Start-up releases leases through the partial index on forwarding rows, not a table scan."""
    await journal.write([accepted("m1"), accepted("m2")])
    await journal.claim_push("w", now=1001, lease=30, limit=1)
    if store_url.startswith("sqlite://"):
        plan = raw_sql(store_url, "EXPLAIN QUERY PLAN UPDATE deliveries SET claimed_by = NULL"
                                  " WHERE state = 'forwarding' AND claimed_by IS NOT NULL")
        # either index reads only the forwarding rows (deliveries_state: the operators' search by state)
        assert any("deliveries_forwarding" in str(row) or "deliveries_state (state=?)" in str(row) for row in plan), plan
    assert await journal.release_claims() == 1
    assert await journal.verify() == []
