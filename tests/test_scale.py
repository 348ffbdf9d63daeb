"""Costs that stay flat as the hub grows: verify in bounded memory, the WAL kept small, the registry
reloaded row by row. Real SQLite files, a real `smdo` process under a real memory limit."""
from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from smdo.journal import Accepted, Rejected, journal_store

#: The address space the verifying process may use: a Python with the CLI imported needs ~100 MB.
LIMIT = 256 * 2**20

_LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
{body}
"""


def _limited(body: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # thread arenas would reserve address space, not use it
    return subprocess.run([sys.executable, "-c", _LIMITED.format(limit=LIMIT, body=body)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


async def _fill(data: Path, entries: int, message_bytes: int) -> None:
    journal = journal_store(f"sqlite://{data}")
    await journal.open()
    try:
        filler = "x" * message_bytes
        for group in range(0, entries, 200):
            await journal.write([
                Rejected("schema", (-30,), "ab" * 32, 10, 1000.0 + i, msg_id=f"r{i}", sender="A", message=filler)
                for i in range(group, min(group + 200, entries))])
        raw = b"<Envelop/>"
        await journal.write([Accepted(
            msg_id="m1", sender="A", receivers=("B",), msg_type=1, acknow=2, digest=hashlib.sha256(raw).hexdigest(),
            size=len(raw), received_at=2000.0, deadline=2060.0, raw=raw, answer=b"<ack/>",
            deliveries=(("B", "push"),))])
    finally:
        await journal.close()


def test_verify_walks_a_journal_larger_than_its_memory_limit(tmp_path):
    asyncio.run(_fill(tmp_path, entries=14000, message_bytes=20_000))
    assert (tmp_path / "journal.db").stat().st_size > LIMIT
    repo = Path(__file__).resolve().parent.parent

    # The limit bites: holding the journal's entries at once does not fit in it.
    whole = _limited(f"import sqlite3\nsqlite3.connect({str(tmp_path / 'journal.db')!r})"
                     ".execute('SELECT body FROM entries').fetchall()", repo)
    assert whole.returncode != 0 and "MemoryError" in whole.stderr, whole.stderr[-500:]

    done = _limited(f"from cli.main import main\nsys.argv = ['smdo', 'journal', 'verify', '--data', {str(tmp_path)!r}]"
                    "\nmain()", repo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "journal ok" in done.stdout
    assert "14001 entries" in done.stderr and "entries/s" in done.stderr

    # Still as strict: an edited entry deep in the journal is named.
    with sqlite3.connect(tmp_path / "journal.db") as db:
        db.execute("UPDATE entries SET body = replace(body, '\"r4321\"', '\"r4322\"') WHERE seq = 4322")
    broken = _limited(f"from cli.main import main\nsys.argv = ['smdo', 'journal', 'verify', '--quiet', '--data',"
                      f" {str(tmp_path)!r}]\nmain()", repo)
    assert broken.returncode == 1 and "entries row 4322" in broken.stderr, broken.stderr[-2000:]


async def test_the_wal_shrinks_after_load(tmp_path):
    from smdo.journal.sqlite import SqliteJournal

    journal = SqliteJournal(tmp_path / "journal.db", quiet=1.0)
    await journal.open()
    try:
        raw = b"<Envelop>" + b"x" * 20_000 + b"</Envelop>"
        for group in range(0, 400, 20):
            await journal.write([Accepted(
                msg_id=f"m{i}", sender="A", receivers=("B",), msg_type=1, acknow=2,
                digest=hashlib.sha256(raw).hexdigest(), size=len(raw), received_at=1000.0, deadline=2000.0, raw=raw,
                answer=b"<ack/>", deliveries=(("B", "push"),)) for i in range(group, group + 20)])
        loaded = journal.wal_bytes()
        assert loaded > 4 * 2**20  # the load went through the WAL
        for _ in range(300):  # the hub is quiet now: the next checkpoints truncate the file
            if journal.wal_bytes() == 0:
                break
            await asyncio.sleep(0.1)
        assert journal.wal_bytes() == 0, f"WAL still {journal.wal_bytes()} bytes after {loaded} under load"
        assert len(await journal.list_transactions(limit=1000)) == 400  # nothing lost on the way
    finally:
        await journal.close()
