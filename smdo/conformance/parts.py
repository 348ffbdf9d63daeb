"""Files the suite sends beside the envelope (parts): made block by block from a seed, so a file of
hundreds of MB is streamed to the hub (or served to an EDMS under --endpoint) and never held whole.

`PartFile.swapped` is the tampered variant: the same file with one byte changed, so it has another
digest (the envelope names that one, the hub takes it) but no longer matches what the official signed.
`Shelf` is what the suite serves under --endpoint, where it plays the hub: digest -> the bytes to
serve, which for the digest-mismatch case are deliberately not those of the digest.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

BLOCK = 1024 * 1024


@dataclass(frozen=True)
class PartFile:
    size: int
    seed: bytes
    swapped_at: int | None = None  # this byte is changed (inverted) from the seed's file

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes from `start` to `stop` (default: the end), at most `BLOCK` at a time."""
        stop = self.size if stop is None else min(stop, self.size)
        block = start // BLOCK
        while block * BLOCK < stop:
            data = bytearray(_block(self.seed, block, min(BLOCK, self.size - block * BLOCK)))
            offset = block * BLOCK
            if self.swapped_at is not None and offset <= self.swapped_at < offset + len(data):
                data[self.swapped_at - offset] ^= 0xFF
            yield bytes(data[max(0, start - offset):stop - offset])
            block += 1

    @cached_property
    def digest(self) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks():
            h.update(chunk)
        return h.hexdigest()

    def read(self) -> bytes:
        """The whole file: only for the small files whose official's signature the suite makes."""
        return b"".join(self.chunks())

    def swapped(self, at: int) -> PartFile:
        return PartFile(self.size, self.seed, at)


def _block(seed: bytes, n: int, size: int) -> bytes:
    # SHA-256 of (seed, block number), repeated: fast to make and different in every block, so a
    # copy with a block lost, repeated or out of order has another digest.
    pattern = hashlib.sha256(seed + n.to_bytes(8, "big")).digest()
    return (pattern * (size // 32 + 1))[:size]


class Shelf:
    """The parts the suite serves when it plays the hub (--endpoint): digest -> the file served."""

    def __init__(self) -> None:
        self._parts: dict[str, PartFile] = {}

    def put(self, digest: str, part: PartFile) -> None:
        self._parts[digest] = part

    def get(self, digest: str) -> PartFile | None:
        return self._parts.get(digest)
