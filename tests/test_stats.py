"""Statistics from a real journal file: periods, subscribers, outcomes, percentiles; `smdo stats`."""
from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from datetime import datetime, timezone

from click.testing import CliRunner

from cli.main import main
from smdo.journal import Accepted, DeliveryState, JournalStore, Rejected, StateChange, journal_store
from smdo.stats import compute, percentile, period_label, period_start

DAY = 86400.0
T0 = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc).timestamp()  # a Monday in Q4


def doc(msg_id: str, sender: str, receivers: tuple[str, ...], at: float) -> Accepted:
    raw = msg_id.encode()
    return Accepted(msg_id=msg_id, sender=sender, receivers=receivers, msg_type=1, acknow=2,
                    digest=hashlib.sha256(raw).hexdigest(), size=len(raw), received_at=at, deadline=at + 3 * DAY,
                    raw=raw, answer=b"", deliveries=tuple((r, "push") for r in receivers))


async def a_journal(path) -> JournalStore:
    journal = journal_store(path.parent)
    await journal.open()
    # Week 1: A sends m1 (to B and C) and m2 (to B); B registers m1 after 60 s, C only acknowledges it.
    await journal.write([doc("m1", "A", ("B", "C"), T0), doc("m2", "A", ("B",), T0 + 10)])
    await journal.write([StateChange("m1", "B", DeliveryState.DELIVERED, at=T0 + 2),
                         StateChange("m1", "C", DeliveryState.DELIVERED, at=T0 + 4),
                         StateChange("m2", "B", DeliveryState.EXPIRED, at=T0 + 3 * DAY)])
    await journal.write([StateChange("m1", "B", DeliveryState.REGISTERED, at=T0 + 60)])
    # A packet from A the hub refused, and an acknowledgement (msg_type 0), which is not a document.
    await journal.write([Rejected(stage="verify", codes=(-23,), digest="d", size=1, received_at=T0 + 20,
                                  msg_id="bad", sender="A")])
    ack = Accepted(**{**doc("ack1", "B", ("A",), T0 + 61).__dict__, "msg_type": 0, "ack_for": "m1"})
    await journal.write([ack])
    # Week 2: C sends m3 to A, registered with refusal.
    await journal.write([doc("m3", "C", ("A",), T0 + 8 * DAY)])
    await journal.write([StateChange("m3", "A", DeliveryState.REFUSED, at=T0 + 8 * DAY + 30)])
    return journal


def test_period_labels_and_starts():
    assert period_label(T0, "day") == "2026-10-05"
    assert period_label(T0, "week") == "2026-W41"
    assert period_label(T0, "month") == "2026-10"
    assert period_label(T0, "quarter") == "2026-Q4"
    assert period_start(T0, "quarter") == datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()
    assert period_start(T0 + 3 * DAY, "week") == datetime(2026, 10, 5, tzinfo=timezone.utc).timestamp()
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile(range(1, 101), 0.95) == 95
    assert percentile([], 0.5) is None


async def test_per_week_and_subscriber(tmp_path):
    journal = await a_journal(tmp_path / "journal.db")
    rows = await compute(journal, since=T0 - DAY, until=T0 + 30 * DAY, period="week")
    await journal.close()
    by = {(r.period, r.subscriber): r for r in rows}
    everyone = by[("2026-W41", "*")]
    assert (everyone.sent, everyone.received, everyone.delivered, everyone.registered) == (2, 3, 2, 1)
    assert (everyone.not_delivered, everyone.refused) == (1, 1)
    a = by[("2026-W41", "A")]
    assert (a.sent, a.received, a.delivered, a.registered, a.not_delivered, a.refused) == (2, 0, 2, 1, 1, 1)
    assert a.delivery_median_s == 2.0 and a.delivery_p95_s == 4.0
    assert a.registration_median_s == 60.0
    assert a.missing_registration_share == 0.5  # C acknowledged m1 but never registered it
    assert by[("2026-W41", "B")].received == 2 and by[("2026-W41", "B")].sent == 0
    c = by[("2026-W42", "C")]
    assert (c.sent, c.delivered, c.registered, c.registration_refused) == (1, 1, 0, 1)
    assert by[("2026-W42", "A")].received == 1


async def test_one_subscriber_and_the_quarter(tmp_path):
    journal = await a_journal(tmp_path / "journal.db")
    rows = await compute(journal, since=T0 - DAY, until=T0 + 30 * DAY, period="quarter", subscriber="A")
    await journal.close()
    assert [(r.period, r.subscriber, r.sent, r.received) for r in rows] == [("2026-Q4", "A", 2, 1)]


def test_cli_table_json_and_csv(tmp_path):
    async def make() -> None:
        await (await a_journal(tmp_path / "journal.db")).close()

    asyncio.run(make())
    runner = CliRunner()
    base = ["stats", "--data", str(tmp_path), "--since", "2026-10-01", "--until", "2026-11-01"]
    result = runner.invoke(main, [*base, "--period", "month"])
    assert result.exit_code == 0, result.output
    assert "2026-10" in result.output and "sent" in result.output.splitlines()[0]
    as_json = json.loads(runner.invoke(main, [*base, "--json", "--subscriber", "C"]).output)
    assert as_json == [{**as_json[0], "period": "2026-10", "subscriber": "C", "sent": 1, "received": 1}]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(main, [*base, "--csv"]).output)))
    assert rows[0]["subscriber"] == "*" and rows[0]["sent"] == "3" and rows[0]["delivery_median_s"] == "2.0"
    assert runner.invoke(main, [*base[:3], "--since", "yesterday"]).exit_code == 0  # forms people type
    bad = runner.invoke(main, [*base[:3], "--since", "last week"])
    assert bad.exit_code != 0 and "is not a time" in bad.output
    missing = runner.invoke(main, ["stats", "--data", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "is not an smdo data folder" in missing.output
