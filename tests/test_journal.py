"""The journal on a real SQLite file: group commit, de-duplication, claims, states, hash chain."""
from __future__ import annotations

import asyncio
import hashlib
import sqlite3

import pytest

from smdo.journal import Accepted, DeliveryState, GroupCommitter, Rejected, SqliteJournal, StateChange


def accepted(msg_id: str, raw: bytes = b"<Envelop/>", *, receivers=("B",), mode="push", at=1000.0) -> Accepted:
    return Accepted(
        msg_id=msg_id, sender="A", receivers=tuple(receivers), msg_type=1, acknow=2,
        digest=hashlib.sha256(raw).hexdigest(), size=len(raw), received_at=at, deadline=at + 60,
        raw=raw, answer=b"<ack " + msg_id.encode() + b"/>", deliveries=tuple((r, mode) for r in receivers),
    )


@pytest.fixture
async def journal(tmp_path):
    store = SqliteJournal(tmp_path / "journal.db")
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
    assert await journal.verify() == []


async def test_same_msg_id_returns_the_earlier_answer(journal):
    assert await journal.write([accepted("m1")]) == [None]
    [dup] = await journal.write([accepted("m1", b"<other/>")])
    assert dup is not None and dup.answer == b"<ack m1/>"
    assert dup.digest == hashlib.sha256(b"<Envelop/>").hexdigest()
    assert len(await journal.transaction("m1")) == 1


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
    assert await journal.verify() == []


async def test_rejections_are_journaled_without_body(journal, tmp_path):
    await journal.write([Rejected("signature", (-21,), "ab" * 32, 123, 1000.0, msg_id="x", sender="A")])
    [view] = await journal.transaction("x")
    assert view.outcome == "rejected" and view.codes == (-21,)
    raw = sqlite3.connect(tmp_path / "journal.db").execute("SELECT raw FROM transactions").fetchone()
    assert raw == (None,)


@pytest.mark.parametrize(
    "tamper, table",
    [
        ("UPDATE entries SET body = replace(body, '\"size\":10', '\"size\":11') WHERE seq = 1", "entries row 1"),
        ("DELETE FROM entries WHERE seq = 2", "entries row 2"),
        ("DELETE FROM entries WHERE seq = 4", "chain_head"),
        ("UPDATE transactions SET sender = 'Z' WHERE msg_id = 'm2'", "transactions row 2"),
        ("UPDATE transactions SET raw = X'00' WHERE msg_id = 'm1'", "transactions row 1"),
        ("DELETE FROM transactions WHERE msg_id = 'm2'", "transactions row of entry 2"),
        ("UPDATE deliveries SET state = 'delivered' WHERE msg_id = 'm2'", "deliveries row 2"),
        ("DELETE FROM deliveries WHERE msg_id = 'm1'", "deliveries row m1/B"),
        ("UPDATE entries SET msg_id = 'm9' WHERE seq = 1", "entries row 1"),  # hides it from the timeline
    ],
)
async def test_verify_names_the_edited_or_deleted_row(journal, tmp_path, tamper, table):
    await journal.write([accepted("m1"), accepted("m2")])
    await journal.claim_push("w", now=1001, lease=30, limit=1)
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=1002)])
    assert await journal.verify() == []
    with sqlite3.connect(tmp_path / "journal.db") as db:
        db.execute(tamper)
    problems = await journal.verify()
    assert problems, "tampering went unnoticed"
    assert any(str(p).startswith(table) for p in problems), [str(p) for p in problems]


async def test_two_connections_never_claim_the_same_delivery(tmp_path):
    """Two hub workers are two connections to one file: their claims must be disjoint."""
    stores = [SqliteJournal(tmp_path / "journal.db") for _ in range(2)]
    for store in stores:
        await store.open()
    await stores[0].write([accepted(f"m{i}", receivers=("B", "C")) for i in range(150)])

    async def drain(store: SqliteJournal, worker: str) -> list[tuple[str, str]]:
        got = []
        while batch := await store.claim_push(worker, now=1001, lease=60, limit=7):
            got += [(c.msg_id, c.receiver) for c in batch]
        return got

    first, second = await asyncio.gather(drain(stores[0], "w1"), drain(stores[1], "w2"))
    for store in stores:
        await store.close()
    assert first and second  # both took part
    assert not set(first) & set(second)
    assert len(first) + len(second) == 300 == len(set(first) | set(second))


async def test_history_and_an_older_journal_gets_the_new_columns(tmp_path):
    """A journal made before the operators' views: opening it adds the columns and fills entries.msg_id."""
    store = SqliteJournal(tmp_path / "journal.db")
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
    store = SqliteJournal(tmp_path / "journal.db")
    await store.open()
    try:
        assert [e["kind"] for e in await store.history("m1")] == ["accepted", "state", "state"]
        assert [e.get("state") for e in await store.history("m1")][1:] == ["forwarding", "delivered"]
        await store.write([StateChange("m1", "B", DeliveryState.REGISTERED, at=1010, detail="inc 7")])
        assert len(await store.history("m1")) == 4
        assert await store.verify() == []
    finally:
        await store.close()
