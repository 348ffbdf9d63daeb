"""An emulated EDMS's own SQLite store: documents sent and received, their status, numbering,
and the queue of packets waiting to go to the hub.

Stdlib sqlite3 in WAL mode: an emulated agency handles a few documents a second, and one process
owns the file, so a synchronous store called from the event loop is the simple, honest choice.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    msg_id TEXT NOT NULL,
    msg_type INTEGER NOT NULL,
    idnumber TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    counterpart TEXT NOT NULL DEFAULT '',
    number TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    native BLOB,
    packet BLOB,
    created_at TEXT NOT NULL,
    UNIQUE (direction, msg_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    msg_id TEXT NOT NULL,
    receiver TEXT NOT NULL,
    state TEXT NOT NULL,
    code INTEGER,
    number TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    history TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (msg_id, receiver)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL UNIQUE,
    packet BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# Per-receiver states of a sent document, in the order they can happen. A state never moves
# backwards: a delivery acknowledgement that arrives after the registration one is ignored.
STATE_RANK = {
    "created": 0,
    "accepted": 1,
    "delivered": 2,
    "registered": 3,
    "refused": 3,
    "not-registrable": 3,
    "untrusted": 3,
    "not-delivered": 3,
    "rejected": 3,
}
FINAL_STATES = frozenset(s for s, rank in STATE_RANK.items() if rank == 3)


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Delivery:
    receiver: str
    state: str
    code: int | None
    number: str
    reason: str
    history: list[dict[str, object]]


@dataclass(frozen=True)
class StoredDocument:
    direction: str
    msg_id: str
    msg_type: int
    idnumber: str
    kind: str
    title: str
    counterpart: str
    number: str
    status: str
    reason: str
    created_at: str
    deliveries: tuple[Delivery, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class QueuedPacket:
    id: int
    msg_id: str
    packet: bytes
    attempts: int


class EdmsStore:
    """One EDMS's documents, their per-receiver status, numbering and outgoing queue."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an ack goes out only after its record is durable
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- numbering ---------------------------------------------------------------------------
    def next_number(self, prefix: str) -> str:
        """The next number in the series `prefix`, e.g. "R-2026/0001"."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO counters(name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (prefix,),
            )
            (value,) = self._db.execute(
                "SELECT value FROM counters WHERE name = ?", (prefix,)
            ).fetchone()
        return f"{prefix}{value:04d}"

    # -- documents ---------------------------------------------------------------------------
    def add_sent(
        self, *, msg_id: str, msg_type: int, idnumber: str, kind: str, title: str,
        receivers: tuple[str, ...], number: str, native: bytes | None, packet: bytes,
    ) -> None:
        """Record a sent document and queue its packet for the hub, in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO documents(direction, msg_id, msg_type, idnumber, kind, title, "
                "counterpart, number, status, native, packet, created_at) "
                "VALUES ('sent', ?, ?, ?, ?, ?, ?, ?, 'created', ?, ?, ?)",
                (msg_id, msg_type, idnumber, kind, title, ",".join(receivers), number, native,
                 packet, now_text()),
            )
            for receiver in receivers:
                self._db.execute(
                    "INSERT INTO deliveries(msg_id, receiver, state, history) VALUES (?, ?, 'created', ?)",
                    (msg_id, receiver, json.dumps([{"state": "created", "at": now_text()}])),
                )
            self._queue(msg_id, packet)

    def add_received(
        self, *, msg_id: str, msg_type: int, idnumber: str, kind: str, title: str, sender: str,
        number: str, status: str, reason: str, native: bytes | None, packet: bytes,
        answer: tuple[str, bytes] | None,
    ) -> bool:
        """Record a received document (and queue its registration answer) unless it is a duplicate.

        Returns False when this msg_id was already received: nothing is registered twice.
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute(
                "INSERT OR IGNORE INTO documents(direction, msg_id, msg_type, idnumber, kind, title, "
                "counterpart, number, status, reason, native, packet, created_at) "
                "VALUES ('received', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (msg_id, msg_type, idnumber, kind, title, sender, number, status, reason, native,
                 packet, now_text()),
            )
            if cur.rowcount == 0:
                return False
            if answer is not None:  # (msg_id, signed registration acknowledgement)
                self._queue(*answer)
        return True

    def is_received(self, msg_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM documents WHERE direction = 'received' AND msg_id = ?", (msg_id,)
        ).fetchone()
        return row is not None

    def received_native(self, msg_id: str) -> tuple[bytes | None, str, str] | None:
        """(native record, sender code, incoming number) of a received document."""
        row = self._db.execute(
            "SELECT native, counterpart, number FROM documents "
            "WHERE direction = 'received' AND msg_id = ?",
            (msg_id,),
        ).fetchone()
        return None if row is None else (row["native"], row["counterpart"], row["number"])

    def native(self, direction: str, msg_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT native FROM documents WHERE direction = ? AND msg_id = ?", (direction, msg_id)
        ).fetchone()
        return None if row is None else row["native"]

    def sent_packet(self, msg_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT packet FROM documents WHERE direction = 'sent' AND msg_id = ?", (msg_id,)
        ).fetchone()
        return None if row is None else row["packet"]

    def advance(
        self, msg_id: str, receiver: str | None, state: str, *, code: int | None = None,
        number: str = "", reason: str = "",
    ) -> int:
        """Move a sent document's delivery to `state` (all receivers when `receiver` is None).

        Only moves forward; returns how many deliveries changed.
        """
        changed = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            sql = "SELECT receiver, state, history FROM deliveries WHERE msg_id = ?"
            args: tuple[str, ...] = (msg_id,)
            if receiver is not None:
                sql += " AND receiver = ?"
                args = (msg_id, receiver)
            for row in self._db.execute(sql, args).fetchall():
                history = json.loads(row["history"])
                entry: dict[str, object] = {"state": state, "at": now_text()}
                if code is not None:
                    entry["code"] = code
                if number:
                    entry["number"] = number
                if reason:
                    entry["reason"] = reason
                if STATE_RANK[state] <= STATE_RANK[row["state"]]:
                    # Overtaken (e.g. the hub's 101 after the registration ack): the state stays,
                    # the history notes it once, so the document's life still shows every step.
                    if not any(h["state"] == state for h in history):
                        history.append({**entry, "late": True})
                        self._db.execute(
                            "UPDATE deliveries SET history = ? WHERE msg_id = ? AND receiver = ?",
                            (json.dumps(history), msg_id, row["receiver"]),
                        )
                    continue
                history.append(entry)
                self._db.execute(
                    "UPDATE deliveries SET state = ?, code = ?, number = ?, reason = ?, history = ? "
                    "WHERE msg_id = ? AND receiver = ?",
                    (state, code, number, reason, json.dumps(history), msg_id, row["receiver"]),
                )
                changed += 1
            if changed:
                self._db.execute(
                    "UPDATE documents SET status = ? WHERE direction = 'sent' AND msg_id = ?",
                    (self._summary(msg_id), msg_id),
                )
        return changed

    def _summary(self, msg_id: str) -> str:
        states = [r[0] for r in self._db.execute(
            "SELECT state FROM deliveries WHERE msg_id = ?", (msg_id,))]
        return min(states, key=STATE_RANK.__getitem__) if states else "created"

    def documents(self, direction: str | None = None) -> list[StoredDocument]:
        sql = ("SELECT direction, msg_id, msg_type, idnumber, kind, title, counterpart, number, "
               "status, reason, created_at FROM documents")
        rows = (self._db.execute(sql + " WHERE direction = ? ORDER BY id", (direction,))
                if direction else self._db.execute(sql + " ORDER BY id"))
        result = []
        for row in rows.fetchall():
            deliveries = tuple(
                Delivery(d["receiver"], d["state"], d["code"], d["number"], d["reason"],
                         json.loads(d["history"]))
                for d in self._db.execute(
                    "SELECT * FROM deliveries WHERE msg_id = ? ORDER BY receiver", (row["msg_id"],)
                ) if row["direction"] == "sent"
            )
            result.append(StoredDocument(**dict(row), deliveries=deliveries))
        return result

    # -- outgoing queue ----------------------------------------------------------------------
    def queue(self, msg_id: str, packet: bytes) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._queue(msg_id, packet)

    def _queue(self, msg_id: str, packet: bytes) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO outbox(msg_id, packet) VALUES (?, ?)", (msg_id, packet)
        )

    def due(self, limit: int = 20) -> list[QueuedPacket]:
        rows = self._db.execute(
            "SELECT id, msg_id, packet, attempts FROM outbox WHERE done = 0 AND next_at <= ? "
            "ORDER BY id LIMIT ?",
            (time.time(), limit),
        ).fetchall()
        return [QueuedPacket(r["id"], r["msg_id"], r["packet"], r["attempts"]) for r in rows]

    def mark_sent(self, item_id: int) -> None:
        self._db.execute("UPDATE outbox SET done = 1 WHERE id = ?", (item_id,))

    def mark_failed(self, item_id: int, error: str, *, retry_in: float | None) -> None:
        """Record a failed attempt; retry after `retry_in` seconds, or never when None."""
        if retry_in is None:
            self._db.execute(
                "UPDATE outbox SET done = 2, attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, item_id),
            )
        else:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
                (time.time() + retry_in, error, item_id),
            )
