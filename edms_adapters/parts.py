"""Files beside the envelope, as an EDMS does it (docs/design.md, "Files beside the envelope").

Sending: a file larger than `part_threshold` leaves the envelope; it is written to the EDMS's file
folder (`<data>/files/<sha256>`), named in the envelope as `Data@referenceid="sha256-<hex>"`, and
uploaded (`PUT /smdo/v1/parts/{sha256}`) just before the envelope is posted. Receiving: the parts an
envelope names are downloaded into the same folder (resumed with Range after an interruption) before
the packet is taken, and put back into the card, so each adapter keeps its own way of naming and
storing files, and the officials' signatures of every file are checked on the whole file
(edms_adapters/checks.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from lxml import etree

from smdo import packet as p
from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.parts import digest_of_reference, files_of, reference_for


def stage_large_files(env: p.Envelope, files_dir: Path, threshold: int) -> p.Envelope:
    """The envelope with every file over `threshold` bytes moved to `files_dir` and referenced."""
    body = env.body
    files = getattr(body, "files", ())
    if not any(f.data is not None and len(f.data) > threshold for f in files):
        return env
    files_dir.mkdir(parents=True, exist_ok=True)
    moved = []
    for f in files:
        if f.data is not None and len(f.data) > threshold:
            digest = hashlib.sha256(f.data).hexdigest()
            target = files_dir / digest
            if not target.exists():
                temporary = files_dir / f".{digest}.tmp"
                temporary.write_bytes(f.data)
                temporary.replace(target)
            f = replace(f, data=None, reference_id=reference_for(digest))
        moved.append(f)
    return replace(env, body=replace(body, files=tuple(moved)))


def referenced_parts(root: etree._Element) -> list[str]:
    """The digests of the parts an envelope names (hub parts only)."""
    return [ref.digest for ref in files_of(root) if ref.digest is not None]


def with_files(env: p.Envelope, files_dir: Path, *, drop: bool = False) -> p.Envelope:
    """The envelope with each referenced part's bytes put back (they were downloaded beforehand);
    `drop`: without the parts (the planted defects "drops-parts", "ignores-part-signatures")."""
    body = env.body
    files = getattr(body, "files", ())
    if not any(f.reference_id for f in files):
        return env
    restored = []
    for f in files:
        digest = digest_of_reference(f.reference_id) if f.reference_id else None
        if digest is not None and drop:
            continue
        if digest is not None:
            try:
                f = replace(f, data=(files_dir / digest).read_bytes(), reference_id=None)
            except FileNotFoundError:
                raise PacketRejected([Problem(ErrorCode.SIGNATURE_INVALID, f"a referenced file is missing: "
                                                                            f"{f.name!r} ({f.reference_id})")]) from None
        restored.append(f)
    return replace(env, body=replace(body, files=tuple(restored)))
