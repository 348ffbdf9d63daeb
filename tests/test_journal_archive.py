"""Archiving finished packets out of the journal (smdo/journal/archive.py), on both stores: the file
holds the packet's bytes, the row's packet is NULL, and the audit accepts that only with an
`archived` entry of the same digest; `--archive` re-hashes the files. And a hub with `retention`
set archives by itself on its timer."""
from __future__ import annotations

import hashlib

from router.keys import HUB
from smdo.datadir import init_data_dir
from smdo.journal import DeliveryState, StateChange, journal_store
from smdo.journal.archive import archive_packets
from smdo.journal.rows import archive_candidates_sql
from smdo.journal.transitions import FINISHED
from smdo.registry import Registry

from router_fixtures import HubUnderTest, document, eventually, hub_config, register, sign, smdo
from test_store_contract import accepted, journal, raw_sql, store_url  # noqa: F401 - the stores' fixtures


def delivered(msg_id: str, receiver: str = "B", at: float = 1001.0) -> StateChange:
    return StateChange(msg_id, receiver, DeliveryState.DELIVERED, at)


async def test_a_finished_packet_is_archived_and_the_journal_still_verifies(journal, store_url, tmp_path):
    packet = b"<Envelop>finished</Envelop>"
    await journal.write([accepted("done", packet), accepted("waiting", b"<Envelop>waiting</Envelop>"),
                         accepted("young", b"<Envelop>young</Envelop>", at=5000.0)])
    await journal.write([delivered("done"), delivered("young", at=5001.0)])
    to = tmp_path / "archive"

    result = await archive_packets(journal, to, retention=100.0, now=2000.0)

    assert result.archived == ["done"] and result.problems == []
    assert (to / "packets" / "done.xml").read_bytes() == packet
    assert not (to / "packets" / "waiting.xml").exists()  # its delivery is still pending
    assert not (to / "packets" / "young.xml").exists()  # within the retention
    assert raw_sql(store_url, "SELECT packet IS NULL AND raw IS NULL FROM transactions WHERE msg_id = 'done'")[0][0]
    assert await journal.packet("done") is None and await journal.packet("waiting") is not None
    [view] = await journal.transaction("done")
    assert view.archived and view.as_dict()["archived"] is True and view.digest == hashlib.sha256(packet).hexdigest()
    assert not (await journal.transaction("waiting"))[0].archived
    [entry] = [e for e in await journal.history("done") if e["kind"] == "archived"]
    assert (entry["digest"], entry["size"], entry["file"]) == (view.digest, len(packet), "packets/done.xml")
    assert await journal.verify() == []
    assert await journal.verify(archive=to) == []

    again = await archive_packets(journal, to, retention=100.0, now=2000.0)  # nothing left to do
    assert again.archived == []
    assert len([e for e in await journal.history("done") if e["kind"] == "archived"]) == 1
    if store_url.startswith("sqlite://"):  # the walk reads the index of rows still holding a packet
        plan = raw_sql(store_url, "EXPLAIN QUERY PLAN " + archive_candidates_sql("?", FINISHED).replace("?", "0"))
        assert any("transactions_unarchived" in str(row) for row in plan), plan
        assert [r[0] for r in raw_sql(store_url, "SELECT msg_id FROM transactions INDEXED BY transactions_unarchived"
                                      " WHERE outcome = 'accepted' AND coalesce(packet, raw) IS NOT NULL"
                                      " ORDER BY received_at")] == ["waiting", "young"]  # "done" left it


async def test_a_packet_nulled_without_an_archived_entry_is_named(journal, store_url):
    await journal.write([accepted("m1"), accepted("m2", b"<Envelop>2</Envelop>")])
    [(tid,)] = raw_sql(store_url, "SELECT id FROM transactions WHERE msg_id = 'm2'")
    raw_sql(store_url, "UPDATE transactions SET packet = NULL, raw = NULL WHERE msg_id = 'm2'")
    problems = await journal.verify()
    assert [(p.table, p.row, p.message) for p in problems] == [
        ("transactions", tid, "stored packet does not match its digest")]


async def test_a_changed_or_missing_archived_file_is_named(journal, tmp_path):
    await journal.write([accepted("m1", b"<Envelop>1</Envelop>"), accepted("m2", b"<Envelop>2</Envelop>")])
    await journal.write([delivered("m1"), delivered("m2")])
    to = tmp_path / "archive"
    assert sorted((await archive_packets(journal, to, retention=0.0, now=2000.0)).archived) == ["m1", "m2"]
    (to / "packets" / "m1.xml").write_bytes(b"<Envelop>changed</Envelop>")
    (to / "packets" / "m2.xml").unlink()

    assert await journal.verify() == []  # the journal itself is intact
    problems = sorted(await journal.verify(archive=to), key=lambda p: str(p.row))
    assert [(p.table, p.row) for p in problems] == [("archive", "packets/m1.xml"), ("archive", "packets/m2.xml")]
    assert "does not match" in problems[0].message and "missing" in problems[1].message


async def test_registration_results_and_expiry_count_as_finished(journal, tmp_path):
    await journal.write([accepted("m1", receivers=("B", "C")), accepted("m2", b"<Envelop>2</Envelop>",
                                                                        receivers=("B", "C"))])
    await journal.write([StateChange("m1", "B", DeliveryState.REFUSED, 1001.0),
                         StateChange("m1", "C", DeliveryState.EXPIRED, 1001.0),
                         StateChange("m2", "B", DeliveryState.REGISTERED, 1001.0)])  # m2 to C still pending
    result = await archive_packets(journal, tmp_path / "a", retention=0.0, now=2000.0)
    assert result.archived == ["m1"]
    # A late outcome about an archived packet's delivery meets no packet and changes nothing it needs.
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, 3000.0)])
    assert await journal.verify() == []


async def test_the_cli_verify_names_a_changed_archived_file(tmp_path):
    data = tmp_path / "data"
    init_data_dir(data)
    store = journal_store(f"sqlite://{data}")
    await store.open()
    await store.write([accepted("m1", b"<Envelop>1</Envelop>")])
    await store.write([delivered("m1")])
    await store.close()
    to = tmp_path / "archive"

    code, out, err = await smdo("journal", "archive", "--data", str(data), "--to", str(to), "--retention", "0s")
    assert code == 0, err
    assert f"archived 1 packet(s) (20 bytes) to {to / 'packets'}" in out
    code, out, err = await smdo("journal", "show", "--data", str(data), "m1")
    assert code == 0 and "archived" in out, err
    code, out, err = await smdo("journal", "verify", "--data", str(data), "--archive", str(to), "--quiet")
    assert code == 0 and "every packet archived" in out, err

    (to / "packets" / "m1.xml").write_bytes(b"<Envelop>X</Envelop>")
    code, out, err = await smdo("journal", "verify", "--data", str(data), "--archive", str(to), "--quiet")
    assert code == 1 and "archive broken: file packets/m1.xml: does not match" in err


async def test_the_cli_refuses_to_archive_while_a_hub_runs_on_the_folder(tmp_path):
    from smdo.datadir import lock_data_dir

    data = tmp_path / "data"
    init_data_dir(data)
    store = journal_store(f"sqlite://{data}")
    await store.open()
    await store.close()
    held = lock_data_dir(data, "serve.lock", "another hub")
    try:
        code, out, err = await smdo("journal", "archive", "--data", str(data), "--to", str(tmp_path / "a"))
    finally:
        held.close()
    assert code == 1 and "a hub is running" in err and "archive_dir" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_a_hub_with_retention_archives_finished_packets_on_its_timer(tmp_path, test_pki):
    registry = Registry(tmp_path / "data" / "registry.db")
    for code in ("ORG-A", "ORG-C"):
        register(registry, test_pki, code)
    to = tmp_path / "archive"
    hub = await HubUnderTest(hub_config(tmp_path / "data", test_pki, retention=0.0, archive_dir=to,
                                        archive_interval=0.05), test_pki, registry).start()
    try:
        env = document("ORG-A", ["ORG-C"], acknow=0)
        raw = sign(env, test_pki.signer("ORG-A"))
        status, _ = await hub.post(raw)
        assert status == 200
        archiver = hub.runner.app[HUB].archiver
        await eventually(lambda: archiver.runs >= 2)  # passes ran while its delivery was pending
        assert not (to / "packets" / f"{env.msg_id}.xml").exists()  # ORG-C has not fetched it: not finished

        [item] = await hub.mailbox("ORG-C")
        assert await hub.confirm("ORG-C", item, test_pki.signer("ORG-C")) == 200
        await eventually(lambda: (to / "packets" / f"{env.msg_id}.xml").exists())
        assert (to / "packets" / f"{env.msg_id}.xml").read_bytes() == raw
        status_view = await eventually(lambda: _archived_status(hub, env.msg_id))
        assert status_view["archived"] is True
        assert await hub.runner.app[HUB].journal.verify(archive=to) == []
    finally:
        await hub.stop()
        registry.close()


async def _archived_status(hub, msg_id):
    status = await hub.status(msg_id)
    return status if status.get("archived") else None
