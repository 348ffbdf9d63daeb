"""The journal's hash chain: each entry's hash covers the previous hash and the entry itself.

    hash(n) = sha256(hash(n-1) + canonical(entry n)),   hash(0) = GENESIS

Editing an entry changes its hash; deleting one breaks the link of the next; deleting the last ones
is caught by the chain head, which is written in the same transaction as the entries.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS = "0" * 64


def canonical(entry: Mapping[str, object]) -> bytes:
    """One fixed byte form of an entry: sorted keys, no spaces, UTF-8."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, canonical_entry: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_entry).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    """Something wrong in the journal, naming the row (table and key) where it shows."""

    table: str
    row: object
    message: str

    def __str__(self) -> str:
        return f"{self.table} row {self.row}: {self.message}"


def verify_chain(
    rows: Iterable[tuple[int, str, str]], head: tuple[int, str] | None
) -> list[ChainProblem]:
    """Check (seq, body, hash) rows in seq order against each other and the chain head."""
    problems: list[ChainProblem] = []
    prev_hash, expected_seq = GENESIS, 1
    for seq, body, stored_hash in rows:
        if seq != expected_seq:
            problems.append(ChainProblem("entries", expected_seq, f"missing (next row is {seq})"))
        computed = entry_hash(prev_hash, body.encode())
        if computed != stored_hash:
            problems.append(ChainProblem("entries", seq, "hash does not match its content and predecessor"))
        else:
            try:
                if json.loads(body).get("seq") != seq:
                    problems.append(ChainProblem("entries", seq, "sequence number was changed"))
            except ValueError:
                problems.append(ChainProblem("entries", seq, "entry is not JSON"))
        prev_hash, expected_seq = stored_hash, seq + 1
    last_seq = expected_seq - 1
    if head is None:
        if last_seq:
            problems.append(ChainProblem("chain_head", 1, "missing"))
    elif head != (last_seq, prev_hash):
        problems.append(
            ChainProblem("chain_head", 1, f"head is at entry {head[0]} but the chain ends at {last_seq}")
        )
    return problems


class ChainWriter:
    """Appends entries within one open write transaction, continuing from the stored head.

    The store reads the head under its write lock, the writer numbers and hashes the entries, and
    the store then inserts `rows` and sets the head to `(seq, hash)` in the same transaction.
    """

    def __init__(self, seq: int, hash_: str) -> None:
        self.seq, self.hash = seq, hash_
        self.rows: list[tuple[int, str, str, str | None]] = []  # (seq, body, hash, msg_id)

    def append(self, body: bytes, msg_id: str | None) -> int:
        """`body`: canonical JSON of the entry without its seq (prepared before the lock was
        taken); the stored entry is that object with its sequence number put first. `msg_id` is
        the entry's, copied into a column so a transaction's history is one index lookup."""
        self.seq += 1
        text = b'{"seq":%d,%s' % (self.seq, body[1:])
        self.hash = entry_hash(self.hash, text)
        self.rows.append((self.seq, text.decode(), self.hash, msg_id))
        return self.seq
