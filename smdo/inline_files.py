"""Large inline files kept out of the parsed tree, so a packet is held in memory about once.

A file inside the envelope (`<Data>` + base64) is most of a large packet's bytes. Parsed into a tree,
checked, canonicalised for the signature digest and decoded for its officials' signatures, it would be
copied four or five times. Instead, before parsing, every `<Data>` whose content is a run of valid
base64 of at least `min_bytes` is *set aside*: the bytes the parser sees carry a random placeholder
(itself valid base64) in its place, and the file's characters stay where they are, in the body (a
spool file or the received bytes), read back in chunks when the signature digest or a file's hash
needs them.

Why the digest is still the document's: the scan reads the body as a UTF-8/ASCII byte stream. A run
starts right after a `<Data ...>` start tag and is followed by `</Data>`; it holds only base64
characters and whitespace, which need no escaping in canonical XML and parse as plain characters in
element content. If the parser then finds the placeholder as the whole text of an element with no
children (`confirm`), the run was that element's character data, so the document's canonical form is
the reduced document's with each placeholder replaced by the run's characters (line ends normalised
as XML parsing does). A placeholder found anywhere else (a run the scan saw inside a comment, say)
fails `confirm`, and the body is reduced again with that run left in place.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from lxml import etree

from signing.suite import DigestAlgorithm
from smdo.xmlparse import byte_scan_is_conclusive

#: Runs shorter than this stay in the tree: setting them aside would cost more than it saves.
MIN_BYTES = 64 * 1024
BLOCK = 1024 * 1024
_START_TAG = re.compile(rb"<Data(?:[ \t\r\n][^<>]{0,4096})?>")
_END_TAG = re.compile(rb"</Data[ \t\r\n]*>")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/= \t\r\n]")
_WHITESPACE = b" \t\r\n"

Opener = Callable[[], BinaryIO]


@dataclass(frozen=True)
class Run:
    """A file's base64 characters in the body: `length` bytes from `offset`, `lines` line ends."""

    offset: int
    length: int
    lines: int


@dataclass(frozen=True)
class Reduced:
    """The body as the parser sees it, and the runs set aside from it (by placeholder)."""

    xml: bytes
    runs: Mapping[str, Run]
    open_body: Opener
    size: int  # of the whole body

    @property
    def set_aside(self) -> int:
        """Bytes of the body not held in memory."""
        return sum(run.length for run in self.runs.values())

    def canonical(self, placeholder: str) -> Iterator[bytes]:
        """The run's characters as canonical XML has them: line ends normalised to LF."""
        carry = b""
        for chunk in self._chunks(self.runs[placeholder]):
            chunk = carry + chunk
            carry = b"\r" if chunk.endswith(b"\r") else b""  # a CR LF may straddle two chunks
            if carry:
                chunk = chunk[:-1]
            yield chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if carry:
            yield b"\n"

    def canonical_texts(self) -> dict[str, Callable[[], Iterator[bytes]]]:
        return {p: (lambda p=p: self.canonical(p)) for p in self.runs}

    def decoded(self, placeholder: str) -> Iterator[bytes]:
        """The file's bytes, decoded in chunks (the run was proved valid base64 by the scan)."""
        carry = b""
        for chunk in self._chunks(self.runs[placeholder]):
            significant = carry + chunk.translate(None, _WHITESPACE)
            cut = len(significant) - len(significant) % 4
            carry = significant[cut:]
            if cut:
                yield binascii.a2b_base64(significant[:cut])
        if carry:
            yield binascii.a2b_base64(carry)

    def _chunks(self, run: Run) -> Iterator[bytes]:
        with self.open_body() as body:
            body.seek(run.offset)
            left = run.length
            while left > 0:
                chunk = body.read(min(BLOCK, left))
                if not chunk:
                    raise ValueError("the body is shorter than when it was scanned")
                left -= len(chunk)
                yield chunk


def reduce(open_body: Opener, size: int, min_bytes: int = MIN_BYTES,
           keep: frozenset[int] = frozenset()) -> Reduced:
    """Scan the body and set aside every qualifying run, except those starting at an offset in `keep`.

    Bodies the byte scan cannot read (UTF-16, an encoding that is not ASCII-compatible) come back
    whole, as do bodies without large runs."""
    with open_body() as body:
        head = body.read(512)
        # A body smaller than `min_bytes` holds no run to set aside: most packets skip the scan.
        scan = size >= min_bytes and byte_scan_is_conclusive(head)
        runs = _runs(body, size, min_bytes, keep) if scan else []
        if not runs:
            body.seek(0)
            return Reduced(body.read(), {}, open_body, size)
        pieces, placed, position = [], {}, 0
        for run in runs:
            body.seek(position)
            # Random, so nobody can write it into a packet; as many line ends as the run, so the
            # parser's line numbers are the body's.
            placeholder = base64.b64encode(secrets.token_bytes(24)).decode("ascii") + "\n" * run.lines
            pieces += [body.read(run.offset - position), placeholder.encode("ascii")]
            placed[placeholder] = run
            position = run.offset + run.length
        body.seek(position)
        pieces.append(body.read())
    return Reduced(b"".join(pieces), placed, open_body, size)


def confirm(root: etree._Element, reduced: Reduced) -> frozenset[int]:
    """The offsets of runs whose placeholder is not the whole text of a childless element: to be kept
    in place (`reduce(..., keep=...)`). Empty when every run set aside is an element's content."""
    if not reduced.runs:
        return frozenset()
    found = {element.text for element in root.iter("Data")
             if len(element) == 0 and element.text in reduced.runs}
    return frozenset(run.offset for placeholder, run in reduced.runs.items() if placeholder not in found)


def bytes_opener(data: bytes) -> Opener:
    return lambda: io.BytesIO(data)


#: A file's content as what a detached signature check needs of it: its digest by an algorithm.
FileHash = Callable[[DigestAlgorithm], bytes]


def file_content(data: bytes) -> FileHash:
    return lambda algorithm: algorithm.hash(data)


def inline_content(data_element: etree._Element | None, reduced: Reduced | None = None) -> FileHash:
    """A DocTransfer's inline file: hashed from the body in chunks when it was set aside, else
    decoded from the tree (when it is asked for, not before)."""
    text = data_element.text if data_element is not None and len(data_element) == 0 else None
    if reduced is not None and text in reduced.runs:
        def hash_set_aside(algorithm: DigestAlgorithm) -> bytes:
            hasher = algorithm.new()
            for chunk in reduced.decoded(text):
                hasher.update(chunk)
            return hasher.digest()
        return hash_set_aside

    def hash_from_tree(algorithm: DigestAlgorithm) -> bytes:
        encoded = "".join(data_element.itertext()) if data_element is not None else ""
        return algorithm.hash(base64.b64decode("".join(encoded.split())))
    return hash_from_tree


def _runs(body: BinaryIO, size: int, min_bytes: int, keep: frozenset[int]) -> list[Run]:
    runs: list[Run] = []
    position = 0
    while position < size:
        body.seek(position)
        block = body.read(BLOCK)
        at_end = position + len(block) >= size
        found = block.find(b"<Data")
        if found < 0:
            if at_end:
                break
            position += len(block) - 4  # "<Data" may straddle two blocks
            continue
        if found > 0 and len(block) - found < 8192 and not at_end:
            position += found  # read the start tag whole, from its first byte
            continue
        tag = _START_TAG.match(block, found)
        if tag is None:
            position += found + 1
            continue
        start = position + tag.end()
        run = _scan_run(body, start, size)
        if run is not None and run.length >= min_bytes and start not in keep:
            runs.append(run)
        position = start + (run.length if run is not None else 0)
    return runs


def _scan_run(body: BinaryIO, start: int, size: int) -> Run | None:
    """The base64 characters from `start`, if they are valid base64 and `</Data>` follows them."""
    body.seek(start)
    check = _Base64Check()
    length = 0
    while True:
        chunk = body.read(BLOCK)
        if not chunk:
            return None
        stop = _NOT_BASE64.search(chunk)
        piece = chunk if stop is None else chunk[:stop.start()]
        check.feed(piece)
        length += len(piece)
        if stop is not None:
            break
    body.seek(start + length)
    if not _END_TAG.match(body.read(64)) or not check.valid():
        return None
    return Run(start, length, check.lines)


class _Base64Check:
    """Strict base64 across chunks: padding only at the end, whole quanta (whitespace anywhere)."""

    def __init__(self) -> None:
        self.count = 0
        self.padding = 0
        self.broken = False
        self.lines = 0
        self._cr_pending = False

    def feed(self, piece: bytes) -> None:
        self.lines += piece.count(b"\n") + piece.count(b"\r") - piece.count(b"\r\n")
        if self._cr_pending and piece.startswith(b"\n"):
            self.lines -= 1  # the CR at the end of the last piece and this LF are one line end
        self._cr_pending = piece.endswith(b"\r")
        significant = piece.translate(None, _WHITESPACE)
        if not significant:
            return
        if self.padding and significant.strip(b"="):
            self.broken = True  # characters after padding
        pad = len(significant) - len(significant.rstrip(b"="))
        if b"=" in significant[:len(significant) - pad]:
            self.broken = True
        self.padding += pad
        self.count += len(significant)

    def valid(self) -> bool:
        return not self.broken and self.padding <= 2 and self.count % 4 == 0 and self.count > 0
