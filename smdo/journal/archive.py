"""Moving finished packets' bytes out of the journal, tamper-evidently.

A packet accepted more than `retention` ago whose every delivery is finished (delivered, expired or
a registration result: none will ever be sent again) is written to `<to>/packets/<msg_id>.xml`
(fsynced, file and folder), and only then, in one journal transaction, an `Archived` record is
written: a chain entry {"kind": "archived", msg_id, digest, size, file, at} and the row's packet
set to NULL. So the bytes are never only in flight: a crash before the commit leaves the packet in
the journal (the next run finds the identical file and goes on), and after it the chain says where
they went and what they hash to (`smdo journal verify --archive DIR` re-hashes the files).

Bounded memory: candidates are read a page at a time by row id, and one packet at a time.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from smdo.journal.records import Archived
from smdo.journal.store import JournalStore

log = logging.getLogger(__name__)

#: Candidates read per page (their packets are then read one at a time).
PAGE = 20
FOLDER = "packets"
#: A msg_id that is safe as a file name as it is (a UUID is); any other is filed under its digest.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass
class ArchiveResult:
    archived: list[str] = field(default_factory=list)  # msg_ids
    bytes: int = 0
    problems: list[str] = field(default_factory=list)  # packets left in the journal, and why


def file_name(msg_id: str, digest: str) -> str:
    """The archived file's name relative to the archive folder (what the entry records)."""
    stem = msg_id if _SAFE_NAME.fullmatch(msg_id) else digest
    return f"{FOLDER}/{stem}.xml"


async def archive_packets(journal: JournalStore, to: Path, *, retention: float, now: float,
                          page: int = PAGE) -> ArchiveResult:
    """Archive every finished packet received before `now - retention`; see the module's docstring."""
    result = ArchiveResult()
    after = (float("-inf"), 0)
    while rows := await journal.archive_candidates(now - retention, after, page):
        records = []
        for row_id, msg_id, digest, size, received_at in rows:
            after = (received_at, row_id)
            packet = await journal.packet(msg_id)
            if packet is None:
                continue  # archived meanwhile (another node)
            if hashlib.sha256(packet).hexdigest() != digest:
                # Left in place for `smdo journal verify` to name: archiving must not launder a bad row.
                result.problems.append(f"{msg_id}: stored packet does not match its digest: left in the journal")
                continue
            name = file_name(msg_id, digest)
            try:
                await asyncio.to_thread(write_durably, to / name, packet, digest)
            except OSError as exc:  # a full or read-only archive volume, or a clash: say so, go on
                result.problems.append(f"{msg_id}: not archived: {exc}")
                continue
            records.append(Archived(msg_id, digest, size, name, now))
            del packet
        if records:
            await journal.write(records)
            result.archived += [r.msg_id for r in records]
            result.bytes += sum(r.size for r in records)
    return result


def write_durably(path: Path, data: bytes, digest: str) -> None:
    """Blocking: `data` at `path` (via a temporary file, fsynced, then the folder fsynced), unless a
    file with the same digest is already there. A different file under that name is an error: a
    msg_id is unique in the journal, so it is not ours to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if _file_digest(path) == digest:
            return
        raise FileExistsError(f"{path} exists with other content: not overwritten")
    # Unique per writer: two hub workers (or nodes on a shared volume) may archive the same packet.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()
