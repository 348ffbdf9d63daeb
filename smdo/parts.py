"""Files carried beside the envelope ("parts"), content-addressed by SHA-256 (docs/design.md).

Layout under one folder (the hub's `parts_dir`, default `<data>/parts`; the nodes of a cluster
all name one shared folder: uploads are written under unique names and renamed into place, two
nodes storing the same digest store the same bytes, and the one lock is a part's, below):

    staged/<sender>/<sha256>        uploaded by that sender, not yet named by an accepted envelope
    staged/<sender>/.incoming-*     an upload in progress (deleted if it breaks or mismatches)
    store/<sha256>                  named by an accepted envelope
    grants/<sha256>/<subscriber>    who may download it (its receivers and its sender)
    refs/<sha256>/<msg_id>          the accepted packets naming it (what `archive` asks the journal about)
    locks/<sha256>                  locked by a commit naming it and by its move to the archive

Everything here is plain blocking file work: callers run it off the event loop where it may block
(fsync, hashing a stored part). The envelope names a part as `Data@referenceid="sha256-<hex>"`.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import struct
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

from lxml import etree

from smdo.inline_files import FileHash, Reduced, inline_content

if TYPE_CHECKING:
    from smdo.journal import JournalStore

PREFIX = "sha256-"
CHUNK = 64 * 1024
SYNC_EVERY = 32 * 1024 * 1024
_HEX = re.compile(r"[0-9a-f]{64}")
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_MSG_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class PartError(Exception):
    """A part cannot be taken: `status` is the HTTP status that says why (400 mismatch, 507 quota)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_digest(value: str) -> bool:
    return bool(_HEX.fullmatch(value))


def digest_of_reference(reference_id: str) -> str | None:
    """The SHA-256 a `referenceid` names, or None if it is not a hub part's name."""
    if reference_id.startswith(PREFIX) and is_digest(reference_id[len(PREFIX):]):
        return reference_id[len(PREFIX):]
    return None


def reference_for(digest: str) -> str:
    return PREFIX + digest


@dataclass(frozen=True)
class FileRef:
    """One DocTransfer of an envelope: its name, its part's digest (None: inline) and signatures."""

    name: str
    reference_id: str | None
    digest: str | None
    inline: FileHash | None  # hashes an inline file (None: a part)
    signatures: tuple[bytes, ...]


def files_of(root: etree._Element, reduced: Reduced | None = None) -> list[FileRef]:
    """Every DocTransfer of a validated envelope, in document order (`reduced`: the inline files
    set aside from the tree, smdo/inline_files.py)."""
    out = []
    for transfer in root.iter("DocTransfer"):
        data = transfer.find("Data")
        reference = data.get("referenceid") if data is not None else None
        inline = None
        if data is not None and reference is None:
            inline = inline_content(data, reduced)
        signatures = tuple(base64.b64decode("".join((s.text or "").split())) for s in transfer.iterfind("Signature"))
        out.append(FileRef(transfer.get("name", ""), reference,
                           digest_of_reference(reference) if reference else None, inline, signatures))
    return out


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 4 * 1024 ** 3  # one part
    quota_bytes: int = 16 * 1024 ** 3  # staged (unreferenced) parts per sender
    quota_count: int = 1000
    ttl: float = 24 * 3600.0  # a staged part nobody referenced is deleted after this


class Upload:
    """One upload in progress: write chunks, then `finish()` (hash checked, fsynced, staged)."""

    def __init__(self, store: PartStore, owner: str, digest: str) -> None:
        self.store, self.owner, self.digest = store, owner, digest
        folder = store.staged_dir(owner)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f".incoming-{uuid.uuid4().hex}"
        self.file = open(self.path, "xb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.store.limits.max_bytes:
            raise PartError(413, f"part exceeds the limit of {self.store.limits.max_bytes} bytes")
        self.hash.update(chunk)
        self.file.write(chunk)

    def write_all(self, chunks: list[bytes]) -> None:
        """Blocking: a batch of chunks; every `SYNC_EVERY` bytes the file so far is pushed to disk
        while the rest is still arriving (the event loop keeps reading meanwhile), so `finish()`'s
        fsync, which the 201 waits for, has only the tail left (a 1 GB part: seconds otherwise)."""
        before = self.size
        for chunk in chunks:
            self.write(chunk)
        if self.size // SYNC_EVERY != before // SYNC_EVERY:
            self.file.flush()
            os.fdatasync(self.file.fileno())

    def finish(self) -> Path:
        """Blocking (fsync): the staged part, or PartError(400) when the bytes are not the digest."""
        self.file.flush()
        actual = self.hash.hexdigest()
        if actual != self.digest:
            self.abort()
            raise PartError(400, f"the part's bytes have SHA-256 {actual}, not {self.digest} "
                                 f"({self.size} bytes received: truncated or changed)")
        os.fsync(self.file.fileno())
        self.file.close()
        target = self.store.staged_dir(self.owner) / self.digest
        os.replace(self.path, target)
        _fsync_dir(target.parent)
        return target

    def abort(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class PartStore:
    def __init__(self, root: Path, limits: Limits = Limits(), clock: Callable[[], float] = time.time) -> None:
        self.root, self.limits, self.clock = root, limits, clock
        for name in ("staged", "store", "grants", "refs", "locks"):
            (root / name).mkdir(parents=True, exist_ok=True)

    def staged_dir(self, owner: str) -> Path:
        if not _CODE.fullmatch(owner):
            raise ValueError(f"not a subscriber code: {owner!r}")
        return self.root / "staged" / owner

    def stored_path(self, digest: str) -> Path:
        assert is_digest(digest)
        return self.root / "store" / digest

    def has(self, owner: str, digest: str) -> bool:
        """The sender has it staged, or it is stored already and the sender may read it."""
        return (self.staged_dir(owner) / digest).is_file() or self.may_read(owner, digest)

    def begin(self, owner: str, digest: str, announced: int | None) -> Upload:
        """Checks the bounds before a byte is read: size (413), the sender's quota (507)."""
        if announced is not None and announced > self.limits.max_bytes:
            raise PartError(413, f"part of {announced} bytes exceeds the limit of {self.limits.max_bytes}")
        self.expire(owner)
        staged = _sizes(self.staged_dir(owner))
        if len(staged) >= self.limits.quota_count:
            raise PartError(507, f"{owner} has {len(staged)} parts waiting for an envelope (limit "
                                 f"{self.limits.quota_count}); send their envelopes or wait {self.limits.ttl:.0f} s")
        used = sum(staged.values())
        if used + (announced or 0) > self.limits.quota_bytes:
            raise PartError(507, f"{owner} has {used} bytes of parts waiting for an envelope (limit "
                                 f"{self.limits.quota_bytes})")
        return Upload(self, owner, digest)

    def expire(self, owner: str) -> None:
        """Delete this sender's staged parts (and broken uploads) older than the time-to-live."""
        cutoff = self.clock() - self.limits.ttl
        for path, stat in _listing(self.staged_dir(owner)):
            if stat.st_mtime < cutoff:
                path.unlink(missing_ok=True)

    def missing(self, owner: str, digests: list[str]) -> list[str]:
        return [d for d in digests if not self.has(owner, d)]

    def commit(self, owner: str, digests: list[str], readers: list[str], msg_id: str) -> list[str]:
        """Blocking: move the sender's staged parts to the store, grant them to `readers` and note
        that `msg_id` names them, all fsynced (called before the journal commit, so a 100 means the
        parts are durable). Returns the digests no longer stored: a part the sender had not uploaded
        again, archived between the check and this commit (the packet must then be refused)."""
        if not _MSG_ID.fullmatch(msg_id):
            raise ValueError(f"not a msg_id: {msg_id!r}")
        gone = []
        for digest in dict.fromkeys(digests):
            with self.locked(digest):
                self._commit_one(owner, digest, readers, msg_id)
                if not self.stored_path(digest).is_file():
                    (self.root / "refs" / digest / msg_id).unlink()  # a refused packet must not pin a later copy
                    gone.append(digest)
        _fsync_dir(self.root / "store")
        if self.staged_dir(owner).exists():
            _fsync_dir(self.staged_dir(owner))
        return gone

    def _commit_one(self, owner: str, digest: str, readers: list[str], msg_id: str) -> None:
        refs = self.root / "refs" / digest
        refs.mkdir(exist_ok=True)
        (refs / msg_id).touch()
        _fsync_dir(refs)
        staged = self.staged_dir(owner) / digest
        target = self.stored_path(digest)
        if staged.is_file():
            os.replace(staged, target)
        grants = self.root / "grants" / digest
        grants.mkdir(exist_ok=True)
        for reader in dict.fromkeys([owner, *readers]):
            grant = grants / reader
            if not grant.exists():
                with open(grant, "wb") as f:
                    os.fsync(f.fileno())
        _fsync_dir(grants)

    @contextlib.contextmanager
    def locked(self, digest: str) -> Iterator[None]:
        """An exclusive lock on `locks/<sha256>`, held by a commit naming the part and by its move to
        the archive, so neither sees the other half done. An open-file-description lock: it excludes
        the threads of one hub as well as other processes and (NFS, cluster file systems) nodes,
        where a classic POSIX lock is the process's and lets its own threads through. The lock
        file stays: removing it while another waits on it would let a third lock a new file."""
        assert is_digest(digest)
        fd = os.open(self.root / "locks" / digest, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
            yield
        finally:
            os.close(fd)  # releases the lock

    def may_read(self, subscriber: str, digest: str) -> bool:
        return (self.root / "grants" / digest / subscriber).exists() and self.stored_path(digest).is_file()

    def naming(self, digest: str) -> list[str]:
        """The msg_ids of the packets that named this part when they were committed."""
        return sorted(path.name for path, _ in _listing(self.root / "refs" / digest))

    def hash_file(self, owner: str, digest: str, new_hash: Callable[[], Any]) -> bytes:
        """Blocking: a part of this sender (staged or stored) hashed with another algorithm, in chunks."""
        staged = self.staged_dir(owner) / digest
        path = staged if staged.is_file() else self.stored_path(digest)
        h = new_hash()
        with open(path, "rb") as f:
            while chunk := f.read(1024 * 1024):
                h.update(chunk)
        return h.digest()


    def stored(self) -> list[tuple[str, list[str]]]:
        """Every stored part and the msg_ids of the packets naming it."""
        out = []
        for path in sorted((self.root / "store").iterdir()):
            if is_digest(path.name):
                out.append((path.name, self.naming(path.name)))
        return out

    def move_out(self, digest: str, to: Path, finished: Collection[str]) -> Path | None:
        """Blocking: the stored part moved to `to/<sha256>` (checked, fsynced), then forgotten here.
        None, and nothing moved, when it is gone already (another node of a cluster moved it) or a
        packet not in `finished` has named it since the caller asked the journal."""
        with self.locked(digest):
            if not set(self.naming(digest)) <= set(finished):
                return None
            return self._move_out(digest, to)

    def _move_out(self, digest: str, to: Path) -> Path | None:
        to.mkdir(parents=True, exist_ok=True)
        target = to / digest
        temporary = to / f".{digest}.{uuid.uuid4().hex}.tmp"
        h = hashlib.sha256()
        try:
            src = open(self.stored_path(digest), "rb")
        except FileNotFoundError:
            return None
        with src, open(temporary, "wb") as dst:
            while chunk := src.read(1024 * 1024):
                h.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if h.hexdigest() != digest:
            temporary.unlink()
            raise ValueError(f"stored part {digest} does not match its digest: left in place")
        os.replace(temporary, target)
        _fsync_dir(to)
        self.stored_path(digest).unlink(missing_ok=True)
        for folder in (self.root / "grants" / digest, self.root / "refs" / digest):
            for path, _ in _listing(folder):
                path.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                folder.rmdir()
        return target


FINAL_STATES = ("delivered", "expired", "registered", "refused", "not-registrable", "signature-not-trusted")


async def archive(store: PartStore, journal: JournalStore, to: Path, *, retention: float, now: float) -> list[str]:
    """Move out every stored part whose packets are all finished (each receiver's delivery in a
    final state) and older than `retention`. The journal keeps the envelopes, which name each
    part by its digest, so the chain verifies as before and an archived file can be checked."""
    moved = []
    for digest, msg_ids in await asyncio.to_thread(store.stored):
        done = bool(msg_ids)
        for msg_id in msg_ids:
            views = [v for v in await journal.transaction(msg_id) if v.outcome == "accepted"]
            if not views or any(v.received_at > now - retention or
                                any(d.state not in FINAL_STATES for d in v.deliveries) for v in views):
                done = False
                break
        if done and await asyncio.to_thread(store.move_out, digest, to, msg_ids) is not None:
            moved.append(digest)
    return moved


def _listing(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """The files in `folder` with their stat; a file gone between the listing and its stat (another
    upload finished and renamed it, or another node of a cluster expired it) is left out."""
    try:
        paths = list(folder.iterdir())
    except FileNotFoundError:
        return
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if S_ISREG(stat.st_mode):
            yield path, stat


def _sizes(folder: Path) -> dict[Path, int]:
    return {path: stat.st_size for path, stat in _listing(folder)}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
