"""Journal checkpoints: the chain's head, signed by the hub, kept outside the journal database.

The hash chain proves that no entry was edited or removed *relative to the chain head*; but the head
lives in the same database, so a journal replaced by an earlier copy of itself, cut short, or
rewritten with every later hash recomputed is still a consistent chain. A checkpoint pins the head at
a moment: (sequence number, hash, time), signed with the hub's key (detached CMS), optionally
timestamped by an RFC 3161 authority, appended as one JSON line to a file the journal's store never
writes. Checking a journal against its checkpoints then names the first checkpoint it no longer
matches.

File format (`<data>/checkpoints.jsonl`), one checkpoint per line:

    {"seq": 812, "head": "<sha256 hex>", "at": "2026-12-01T15:04:00Z",
     "signature": "<base64 DER CMS over payload()>", "timestamp": "<base64 DER RFC 3161 token>" | null}

Only store methods are used (JournalStore.chain_head, entry_hashes), so any store works.
"""
from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from signing.cms import sign_detached, verify_detached
from signing.errors import SignatureError
from signing.keys import Signer, certificate_fingerprint
from signing.trust import TrustStore

from smdo.journal.store import JournalStore

FILE_NAME = "checkpoints.jsonl"
PAYLOAD_TYPE = "smdo-journal-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: str
    at: str  # ISO 8601 UTC, seconds
    signature: bytes  # DER CMS SignedData over payload(), detached, with the hub's certificate
    timestamp: bytes | None = None  # DER RFC 3161 TimeStampToken over payload()

    def payload(self) -> bytes:
        return payload(self.seq, self.head, self.at)

    def to_line(self) -> str:
        return json.dumps({
            "seq": self.seq, "head": self.head, "at": self.at,
            "signature": base64.b64encode(self.signature).decode(),
            "timestamp": base64.b64encode(self.timestamp).decode() if self.timestamp else None,
        }, sort_keys=True) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        d = json.loads(line)
        seq, head, at = d["seq"], d["head"], d["at"]
        if not isinstance(seq, int) or not isinstance(head, str) or not isinstance(at, str):
            raise ValueError("seq, head and at must be an integer and two strings")
        stamp = d.get("timestamp")
        return cls(seq, head, at, base64.b64decode(d["signature"], validate=True),
                   base64.b64decode(stamp, validate=True) if stamp else None)


def payload(seq: int, head: str, at: str) -> bytes:
    """What the hub signs (and the TSA stamps): fixed bytes for (seq, head, at)."""
    return json.dumps({"type": PAYLOAD_TYPE, "seq": seq, "head": head, "at": at},
                      sort_keys=True, separators=(",", ":")).encode()


async def make_checkpoint(store: JournalStore, signer: Signer, now: dt.datetime,
                          stamp: Callable[[bytes], bytes] | None = None) -> Checkpoint | None:
    """A signed checkpoint of the store's current head (None while the journal is empty). `stamp`:
    payload -> RFC 3161 token; it may block (call this from a thread-friendly place)."""
    head = await store.chain_head()
    if head is None:
        return None
    at = now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = payload(head[0], head[1], at)
    return Checkpoint(head[0], head[1], at, sign_detached(data, signer), stamp(data) if stamp else None)


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line, durably; several hub workers may append to the same file (flock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, checkpoint.to_line().encode())
        os.fsync(fd)
    finally:
        os.close(fd)  # also releases the lock


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file, in file order; ValueError naming the line that is not one."""
    return list(iter_checkpoints(path))


def iter_checkpoints(path: Path) -> Iterator[Checkpoint]:
    """The file's checkpoints one by one (a hub writes one a minute: years of them need not fit in
    memory); ValueError naming the line that is not one."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield Checkpoint.from_line(line)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path} line {number} is not a checkpoint: {exc}") from None


@dataclass(frozen=True)
class CheckpointProblem:
    number: int  # 1-based position in the file
    checkpoint: Checkpoint
    message: str

    def __str__(self) -> str:
        return f"checkpoint #{self.number} ({self.checkpoint.at}, entry {self.checkpoint.seq}): {self.message}"


def check_signatures(checkpoints: list[Checkpoint], *, hub_cert: x509.Certificate | None = None,
                     trust: TrustStore | None = None, first: int = 1) -> list[CheckpointProblem]:
    """Each checkpoint is signed by the hub (`hub_cert` when given; its chain checked against `trust`
    as of the checkpoint's time when given) and its timestamp, if any, verifies (signing.tsa).
    `first`: the file position of checkpoints[0] (checking a long file in batches)."""
    from signing.tsa import TimestampError, verify_timestamp

    problems = []
    pinned = certificate_fingerprint(hub_cert) if hub_cert is not None else None
    for number, cp in enumerate(checkpoints, first):
        try:
            at = dt.datetime.strptime(cp.at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
            signer = verify_detached(cp.payload(), cp.signature, trust, at=at)
        except (SignatureError, ValueError) as exc:
            problems.append(CheckpointProblem(number, cp, f"signature does not verify: {exc}"))
            continue
        if pinned is not None and certificate_fingerprint(signer) != pinned:
            problems.append(CheckpointProblem(number, cp, f"signed by {signer.subject.rfc4514_string()}, "
                                                          "not by the hub's certificate"))
        if cp.timestamp is not None:
            try:
                verify_timestamp(cp.timestamp, cp.payload(), trust)
            except TimestampError as exc:
                problems.append(CheckpointProblem(number, cp, f"timestamp does not verify: {exc}"))
    return problems


async def check_journal(store: JournalStore, checkpoints: list[Checkpoint], first: int = 1) -> list[CheckpointProblem]:
    """Does the journal still hold, at each checkpoint's sequence number, the hash it had then?
    Problems in file order; the first one is the first checkpoint the journal no longer matches.
    `first`: the file position of checkpoints[0]."""
    head = await store.chain_head()
    last = head[0] if head else 0
    hashes = await store.entry_hashes([cp.seq for cp in checkpoints])
    problems = []
    for number, cp in enumerate(checkpoints, first):
        if cp.seq > last:
            problems.append(CheckpointProblem(number, cp, f"the journal ends at entry {last}, before this "
                                                          "checkpoint: its tail was cut or it was replaced by an "
                                                          "earlier copy"))
        elif cp.seq not in hashes:
            problems.append(CheckpointProblem(number, cp, f"entry {cp.seq} is missing: a row was deleted"))
        elif hashes[cp.seq] != cp.head:
            problems.append(CheckpointProblem(number, cp, f"entry {cp.seq} has another hash than when it was "
                                                          "checkpointed: the journal up to there was rewritten "
                                                          "(hashes recomputed)"))
    return problems
