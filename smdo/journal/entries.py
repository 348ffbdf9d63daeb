"""What a chain entry says about each record: the journal's format of truth, the same in every store.

Entries are made (as canonical JSON) before a store takes its write lock, so the lock is held only
for numbering, hashing and the SQL.
"""
from __future__ import annotations

import hashlib

from smdo.journal.chain import canonical
from smdo.journal.records import Accepted, Archived, DeliveryState, Record, Rejected, StateChange


def entry(r: Record) -> dict[str, object]:
    if isinstance(r, Accepted):
        return {
            "kind": "accepted",
            "at": r.received_at,
            "msg_id": r.msg_id,
            "sender": r.sender,
            "receivers": list(r.receivers),
            "msg_type": r.msg_type,
            "acknow": r.acknow,
            "ack_for": r.ack_for,
            "origin": r.origin,
            "profile": r.profile,
            "digest": r.digest,
            "size": r.size,
            "deadline": r.deadline,
            "answer_sha256": hashlib.sha256(r.answer).hexdigest(),
            "deliveries": [list(d) for d in r.deliveries],
        }
    if isinstance(r, Rejected):
        return {
            "kind": "rejected",
            "at": r.received_at,
            "msg_id": r.msg_id,
            "sender": r.sender,
            "stage": r.stage,
            "codes": list(r.codes),
            "digest": r.digest,
            "size": r.size,
            "message": r.message,
        }
    if isinstance(r, Archived):
        return {"kind": "archived", "at": r.at, "msg_id": r.msg_id, "digest": r.digest, "size": r.size,
                "file": r.file}
    return state_entry(r.msg_id, r.receiver, DeliveryState(r.state).value, r.at, next_at=r.next_at,
                       detail=r.detail, codes=list(r.codes))


def state_entry(msg_id: str, receiver: str, state: str, at: float, **extra: object) -> dict[str, object]:
    return {"kind": "state", "at": at, "msg_id": msg_id, "receiver": receiver, "state": state, **extra}


def claim_entry(msg_id: str, receiver: str, at: float, attempt: int, holder: str) -> bytes:
    """A delivery handed to `holder` (a push worker or a mailbox fetch): state forwarding."""
    return canonical(state_entry(msg_id, receiver, DeliveryState.FORWARDING.value, at, attempt=attempt, by=holder))


Prepared = tuple[Record, bytes, list[tuple[StateChange, bytes]]]


def prepare(records: list[Record]) -> list[Prepared]:
    """Each record with its entry (and those of the state changes it carries), ready to append."""
    return [(r, canonical(entry(r)), [(c, canonical(entry(c))) for c in getattr(r, "also", ())]) for r in records]
