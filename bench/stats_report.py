"""A quarter's statistics report (`smdo stats --period quarter`) on a big journal.

Fills a journal file with N documents spread over one quarter (default 1,000,000; `--quick`:
100,000), each with one or two deliveries in realistic final states, written straight into the
journal's tables (the hash chain is not what is measured here), then times `smdo.stats.compute` next
to a floor: reading the same rows from the same indexes without counting anything.

    python -m bench stats_report [--transactions N | --quick] [--keep FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from smdo.journal import JournalStore, journal_store
from smdo.stats import compute

Q_START = datetime(2026, 7, 1, tzinfo=timezone.utc).timestamp()
Q_END = datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()
CODES = [f"ORG-{i:03d}" for i in range(60)]
STATES = ["registered"] * 80 + ["delivered"] * 12 + ["refused"] * 3 + ["expired"] * 2 + ["retry-wait"] * 3


def fill(path: Path, n: int) -> None:
    asyncio.run(_create(path))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    raw = b"x" * 2000  # a small packet body: the table rows are wide, as in real journals
    step = (Q_END - Q_START) / n
    db.execute("BEGIN")
    for i in range(n):
        at = Q_START + i * step
        sender = rng.choice(CODES)
        msg_id = f"{i:08d}-0000-4000-8000-000000000000"
        if i % 50 == 0:
            db.execute("INSERT INTO transactions (entry_seq, outcome, msg_id, sender, receivers, origin, digest, size,"
                       " received_at, codes, stage) VALUES (0, 'rejected', ?, ?, '[]', 'ingress', '', 10, ?, '[-23]',"
                       " 'verify')", (msg_id + "r", sender, at))
        receivers = rng.sample(CODES, 2 if i % 5 == 0 else 1)
        db.execute("INSERT INTO transactions (entry_seq, outcome, msg_id, sender, receivers, msg_type, acknow, origin,"
                   " digest, size, received_at, deadline, codes, raw, answer) VALUES (0, 'accepted', ?, ?, '[]', 1, 2,"
                   " 'ingress', '', 2000, ?, ?, '[100]', ?, x'00')", (msg_id, sender, at, at + 259200, raw))
        for receiver in receivers:
            state = rng.choice(STATES)
            delivered = at + rng.uniform(0.05, 5) if state in ("registered", "delivered", "refused") else None
            registered = delivered + rng.uniform(60, 7200) if state in ("registered", "refused") else None
            db.execute("INSERT INTO deliveries (msg_id, receiver, mode, state, deadline, updated_at, entry_seq,"
                       " delivered_at, registered_at) VALUES (?, ?, 'push', ?, ?, ?, 0, ?, ?)",
                       (msg_id, receiver, state, at + 259200, at, delivered, registered))
        if i % 100_000 == 99_999:
            db.execute("COMMIT")
            db.execute("BEGIN")
            print(f"  filled {i + 1:,} of {n:,}", flush=True)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _store(path: Path) -> JournalStore:
    """The SQLite journal in the folder of `path` (a journal file is always named journal.db)."""
    return journal_store(f"sqlite://{path.resolve().parent}")


async def _create(path: Path) -> None:
    journal = _store(path)
    await journal.open()
    await journal.close()


def floor(path: Path) -> float:
    """The same rows read from the same indexes, nothing counted."""
    db = sqlite3.connect(path)
    started = time.perf_counter()
    for sql in ("SELECT received_at, sender FROM transactions WHERE received_at >= ? AND received_at < ?"
                " AND origin = 'ingress' AND outcome = 'accepted' AND msg_type != 0",
                "SELECT received_at, sender FROM transactions WHERE received_at >= ? AND received_at < ?"
                " AND origin = 'ingress' AND outcome = 'rejected'",
                "SELECT t.received_at, t.sender, d.receiver, d.state, d.delivered_at, d.registered_at"
                " FROM transactions t JOIN deliveries d ON d.msg_id = t.msg_id WHERE t.received_at >= ?"
                " AND t.received_at < ? AND t.origin = 'ingress' AND t.outcome = 'accepted' AND t.msg_type != 0"):
        cursor = db.execute(sql, (Q_START, Q_END))
        while cursor.fetchmany(10_000):
            pass
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


async def report(path: Path) -> tuple[float, int]:
    journal = _store(path)
    await journal.open()
    started = time.perf_counter()
    rows = await compute(journal, since=Q_START, until=Q_END, period="quarter")
    elapsed = time.perf_counter() - started
    await journal.close()
    return elapsed, len(rows)


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench stats_report")
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 transactions")
    parser.add_argument("--keep", type=Path, help="folder whose journal.db to create (or reuse if it exists)")
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else args.transactions
    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "journal.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            print(f"filling a journal with {n:,} documents over one quarter ...", flush=True)
            started = time.perf_counter()
            fill(path, n)
            print(f"  filled in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 1e6:.0f} MB)", flush=True)
        print("measuring ...", flush=True)
        floor_s = floor(path)
        report_s, rows = asyncio.run(report(path))
    print(f"\n{'what':<52} {'seconds':>8}")
    print(f"{'quarter report, smdo.stats.compute (' + str(rows) + ' rows)':<52} {report_s:>8.2f}")
    print(f"{'floor: the same rows read from the indexes':<52} {floor_s:>8.2f}")
    print(f"{'ratio':<52} {report_s / floor_s:>8.2f}x")
