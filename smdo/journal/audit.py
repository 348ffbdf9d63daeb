"""The journal's audit, the same for every store: the chain itself, then every transaction and
delivery row against the entries, the stored packet against its digest and the answer against its
hash, so `smdo journal verify` names any edited or deleted row.

It streams: entries are read in pages of PAGE by sequence number (keyset, never OFFSET), with the
transaction rows of the same entry range beside them; deliveries are read in pages ordered by the
entry that set their state, each page with the entries of its msg_ids. Memory is bounded by a page
(and one packet's entries), not by the journal, and a store hands packets over as their SHA-256, not
their bytes. Given a trusted checkpoint (seq, hash) the audit starts after it: a daily verify reads
only what was written since.

An archived packet (smdo/journal/archive.py) has a NULL packet in its row and an `archived` entry
with its digest; given the archive folder, the audit also re-hashes each archived file against the
entry that moved it there.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from smdo.journal.chain import GENESIS, ChainProblem, entry_hash

#: Entries (and deliveries) per page: large enough that a query's cost is spread, small enough that a
#: page of the largest entries stays a few megabytes.
PAGE = 500

#: Column order a store hands rows over in. `raw_sha256`/`answer_sha256`: SHA-256 hex of the blobs,
#: computed by the database (or a function registered on its connection), NULL for NULL.
ENTRY_COLUMNS = "seq, body, hash, msg_id"
TRANSACTION_COLUMNS = "id, entry_seq, outcome, msg_id, sender, digest, size, codes, raw_sha256, answer_sha256"
DELIVERY_COLUMNS = "id, msg_id, receiver, state, entry_seq"


class AuditReader(Protocol):
    """What the audit reads, all from one consistent snapshot of the journal."""

    async def head(self) -> tuple[int, str] | None: ...

    async def entries_after(self, seq: int, limit: int) -> list[tuple[int, str, str, str | None]]:
        """ENTRY_COLUMNS of the next `limit` entries with seq > `seq`, in seq order."""

    async def transactions_between(self, low: int, high: int) -> list[tuple[Any, ...]]:
        """TRANSACTION_COLUMNS of the transactions whose entry_seq is in [low, high]."""

    async def transactions_beyond(self, seq: int) -> list[tuple[Any, ...]]:
        """TRANSACTION_COLUMNS of (at most a few) transactions whose entry_seq is > seq or < 1."""

    async def delivery_keys(self, msg_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(msg_id, receiver) of every delivery row of these msg_ids."""

    async def deliveries_after(self, entry_seq: int, row_id: int, limit: int) -> list[tuple[Any, ...]]:
        """DELIVERY_COLUMNS of the next `limit` deliveries after (entry_seq, id), in that order."""

    async def entries_of(self, msg_ids: Sequence[str]) -> list[tuple[int, str]]:
        """(seq, body) of every entry whose msg_id column is one of these."""


@dataclass
class Progress:
    """How far an audit got: entries checked of those to check, and since when."""

    checked: int
    total: int
    started: float  # time.monotonic()
    deliveries: int = 0

    @property
    def rate(self) -> float:
        """Entries per second so far."""
        return self.checked / max(time.monotonic() - self.started, 1e-9)


async def run_audit(reader: AuditReader, *, since: tuple[int, str] | None = None,
                    progress: Callable[[Progress], None] | None = None, page: int = PAGE,
                    archive: Path | None = None) -> list[ChainProblem]:
    """The audit over what `reader` returns. `since`: a trusted (seq, hash) to start after (the
    caller has checked the journal still holds that hash at that seq, e.g. a signed checkpoint);
    `archive`: the folder packets were archived to (each archived file of the range is re-hashed)."""
    problems: list[ChainProblem] = []
    head = await reader.head()
    start_seq, prev_hash = since or (0, GENESIS)
    state = Progress(0, (head[0] if head else 0) - start_seq, time.monotonic())
    last_seq = start_seq

    # 1. The chain, and per page of entries: its transaction rows and the deliveries its packets made.
    while rows := await reader.entries_after(last_seq, page):
        bodies: dict[int, dict[str, Any]] = {}
        for seq, body, stored_hash, msg_id in rows:
            if seq != last_seq + 1:
                problems.append(ChainProblem("entries", last_seq + 1, f"missing (next row is {seq})"))
            hash_ok = entry_hash(prev_hash, body.encode()) == stored_hash
            if not hash_ok:
                problems.append(ChainProblem("entries", seq, "hash does not match its content and predecessor"))
            prev_hash, last_seq = stored_hash, seq
            try:
                parsed = json.loads(body)
                if not isinstance(parsed, dict):
                    raise ValueError
            except ValueError:
                if hash_ok:
                    problems.append(ChainProblem("entries", seq, "entry is not a JSON object"))
                continue
            if hash_ok and parsed.get("seq") != seq:
                problems.append(ChainProblem("entries", seq, "sequence number was changed"))
            if parsed.get("msg_id") != msg_id:  # the column a transaction's timeline is read by
                problems.append(ChainProblem("entries", seq, "msg_id column differs from the entry"))
            bodies[seq] = parsed
        low = rows[0][0]
        transactions = await reader.transactions_between(low, last_seq)
        problems += _check_transactions(bodies, transactions, await _archived_digests(reader, transactions))
        if archive is not None:
            problems += await asyncio.to_thread(_check_archive_files, archive, bodies)
        problems += await _check_deliveries_exist(reader, bodies)
        state.checked = last_seq - start_seq
        if progress:
            progress(state)

    if head is None:
        if last_seq > start_seq:
            problems.append(ChainProblem("chain_head", 1, "missing"))
    elif head != (last_seq, prev_hash):
        problems.append(ChainProblem("chain_head", 1, f"head is at entry {head[0]} but the chain ends at {last_seq}"))
    for tid, seq, outcome, *_ in await reader.transactions_beyond(last_seq):
        problems.append(ChainProblem("transactions", tid, f"no {outcome} entry {seq} behind this row"))

    # 2. Every delivery row whose state was set after `since`: is it the last word of the journal?
    after = (start_seq, 0)
    while deliveries := await reader.deliveries_after(*after, page):
        problems += _check_deliveries(deliveries, await reader.entries_of(list({d[1] for d in deliveries})))
        after = (deliveries[-1][4], deliveries[-1][0])
        state.deliveries += len(deliveries)
        if progress:
            progress(state)
    return problems


async def _archived_digests(reader: AuditReader, transactions: list[tuple[Any, ...]]) -> dict[str, set[str]]:
    """msg_id -> digests named by `archived` entries, for the page's accepted rows without a packet
    (their entries come later in the chain than the page, so they are looked up by msg_id)."""
    missing = [t[3] for t in transactions if t[2] == "accepted" and t[8] is None and t[3] is not None]
    found: dict[str, set[str]] = {}
    if not missing:
        return found
    for _seq, body in await reader.entries_of(missing):
        try:
            e = json.loads(body)
        except ValueError:
            continue  # named by the chain's part of the audit
        if isinstance(e, dict) and e.get("kind") == "archived":
            found.setdefault(e.get("msg_id"), set()).add(e.get("digest"))
    return found


def _check_archive_files(archive: Path, bodies: dict[int, dict[str, Any]]) -> list[ChainProblem]:
    """Blocking: each archived entry's file, read in chunks, against the entry's digest."""
    problems = []
    for seq, e in sorted(bodies.items()):
        if e.get("kind") != "archived":
            continue
        name = str(e.get("file", ""))
        relative = PurePosixPath(name)
        if not name or relative.is_absolute() or ".." in relative.parts:
            problems.append(ChainProblem("archive", name or f"of entry {seq}", "not a file name inside the archive"))
            continue
        h = hashlib.sha256()
        try:
            with open(archive / relative, "rb") as file:
                while chunk := file.read(1024 * 1024):
                    h.update(chunk)
        except FileNotFoundError:
            problems.append(ChainProblem("archive", name, f"missing (archived by entry {seq})"))
            continue
        except OSError as exc:
            problems.append(ChainProblem("archive", name, f"cannot be read: {exc.strerror}"))
            continue
        if h.hexdigest() != e.get("digest"):
            problems.append(ChainProblem("archive", name, f"does not match the digest of entry {seq}"))
    return problems


def _check_transactions(bodies: dict[int, dict[str, Any]], transactions: list[tuple[Any, ...]],
                        archived: dict[str, set[str]] | None = None) -> list[ChainProblem]:
    problems = []
    archived = archived or {}
    seen: set[int] = set()
    for tid, seq, outcome, msg_id, sender, digest, size, codes, raw_sha256, answer_sha256 in transactions:
        seen.add(seq)
        e = bodies.get(seq)
        if e is None or e.get("kind") != outcome:
            problems.append(ChainProblem("transactions", tid, f"no {outcome} entry {seq} behind this row"))
            continue
        if (e.get("msg_id"), e.get("sender"), e.get("digest"), e.get("size")) != (msg_id, sender, digest, size):
            problems.append(ChainProblem("transactions", tid, f"differs from journal entry {seq}"))
        if outcome == "rejected" and json.loads(codes) != e.get("codes"):
            problems.append(ChainProblem("transactions", tid, f"codes differ from journal entry {seq}"))
        if outcome == "accepted":
            moved_out = raw_sha256 is None and digest in archived.get(msg_id, ())
            if raw_sha256 != digest and not moved_out:
                problems.append(ChainProblem("transactions", tid, "stored packet does not match its digest"))
            if answer_sha256 is None or answer_sha256 != e.get("answer_sha256"):
                problems.append(ChainProblem("transactions", tid, "stored answer does not match the journal"))
    for seq, e in bodies.items():
        if e.get("kind") in ("accepted", "rejected") and seq not in seen:
            problems.append(ChainProblem("transactions", f"of entry {seq}", "deleted"))
    return problems


async def _check_deliveries_exist(reader: AuditReader, bodies: dict[int, dict[str, Any]]) -> list[ChainProblem]:
    """Each delivery an accepted entry of the page made still has its row."""
    wanted = {(e["msg_id"], d[0]) for e in bodies.values() if e.get("kind") == "accepted"
              for d in e.get("deliveries", [])}
    if not wanted:
        return []
    present = set(await reader.delivery_keys(list({m for m, _ in wanted})))
    return [ChainProblem("deliveries", f"{m}/{r}", "deleted") for m, r in sorted(wanted - present)]


def _check_deliveries(deliveries: list[tuple[Any, ...]], entries: list[tuple[int, str]]) -> list[ChainProblem]:
    """Each row's state is the one its packet's last entry about that receiver set."""
    last: dict[tuple[str, str], tuple[int, str | None]] = {}
    for seq, body in sorted(entries):
        try:
            e = json.loads(body)
        except ValueError:
            continue  # named by the chain's part of the audit
        if e.get("kind") == "accepted":
            for receiver, _mode in e.get("deliveries", []):
                last[(e["msg_id"], receiver)] = (seq, "accepted")
        elif e.get("kind") == "state":
            last[(e["msg_id"], e["receiver"])] = (seq, e.get("state"))
    problems = []
    for did, msg_id, receiver, state, seq in deliveries:
        expected = last.get((msg_id, receiver))
        if expected is None:
            problems.append(ChainProblem("deliveries", did, "no journal entry for this delivery"))
        elif expected != (seq, state):
            problems.append(ChainProblem("deliveries", did, f"state '{state}' differs from journal entry {expected[0]}"))
    return problems
