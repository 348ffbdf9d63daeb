"""A transaction row with a large packet, streamed into PostgreSQL by `COPY ... (FORMAT BINARY)`.

A query parameter is sent from memory (psycopg, then libpq, each hold the value), so a 25 MB packet
would cost the hub twice its size at the commit. In COPY's binary format every field is its length
and its bytes, so the packet can follow its length in chunks read from the spool file.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

from smdo.journal.transitions import TransactionRow

COLUMNS = ("entry_seq, outcome, msg_id, sender, receivers, msg_type, acknow, ack_for, origin, digest, size,"
           " received_at, deadline, codes, stage, packet, answer")
#: How each column is written (the column types of migration 1): `packet` is the streamed one.
_KINDS = ("int8", "text", "text", "text", "text", "int4", "int4", "text", "text", "text", "int8",
          "float8", "float8", "text", "text", "packet", "bytea")
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)


def _field(kind: str, value: object) -> bytes:
    if value is None:
        return struct.pack(">i", -1)
    if kind == "int8":
        return struct.pack(">iq", 8, value)
    if kind == "int4":
        return struct.pack(">ii", 4, value)
    if kind == "float8":
        return struct.pack(">id", 8, value)
    data = value.encode("utf-8") if kind == "text" else bytes(value)  # type: ignore[union-attr]
    return struct.pack(">i", len(data)) + data


def copy_stream(row: TransactionRow, packet_size: int, packet_chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The whole COPY input for one row whose packet is `packet_size` bytes, given in chunks."""
    fields = list(row)
    at = _KINDS.index("packet")
    yield _HEADER + struct.pack(">h", len(_KINDS)) + b"".join(
        _field(kind, value) for kind, value in zip(_KINDS[:at], fields[:at])) + struct.pack(">i", packet_size)
    sent = 0
    for chunk in packet_chunks:
        sent += len(chunk)
        yield chunk
    if sent != packet_size:
        raise ValueError(f"the packet's file holds {sent} bytes, not {packet_size}")
    yield b"".join(_field(kind, value) for kind, value in zip(_KINDS[at + 1:], fields[at + 1:])) + _TRAILER
