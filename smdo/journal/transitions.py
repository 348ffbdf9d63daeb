"""The rules a write follows, whatever the store: duplicates, which delivery state may follow which,
and which rows a group of records becomes.

A store looks up what the group needs (earlier acceptances of its msg_ids, current states of the
deliveries it changes), takes its write lock, calls `plan_write`, and stores the planned rows and
the chain entries in one transaction.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from smdo.journal.chain import ChainWriter
from smdo.journal.entries import Prepared
from smdo.journal.records import (
    PENDING_STATES,
    REGISTRATION_STATES,
    Accepted,
    Archived,
    DeliveryState,
    Duplicate,
    RawFile,
    Rejected,
    StateChange,
)

PENDING = tuple(s.value for s in PENDING_STATES)
REGISTRATION = tuple(s.value for s in REGISTRATION_STATES)
FINAL = (DeliveryState.DELIVERED.value, DeliveryState.EXPIRED.value)
#: States after which a delivery never needs its packet again: what archiving waits for.
FINISHED = FINAL + REGISTRATION


def may_change(current: str, new: str) -> bool:
    """Whether a delivery in state `current` may move to `new`."""
    if current in REGISTRATION and new not in REGISTRATION:
        return False  # a delivery ack after the registration ack is ignored
    if current in FINAL and new not in REGISTRATION:
        return False  # a late outcome of a stale attempt changes nothing
    return True


class TransactionRow(NamedTuple):
    entry_seq: int
    outcome: str  # accepted | rejected
    msg_id: str | None
    sender: str | None
    receivers: str  # JSON list
    msg_type: int | None
    acknow: int | None
    ack_for: str | None
    origin: str
    digest: str
    size: int
    received_at: float
    deadline: float | None
    codes: str  # JSON list
    stage: str | None
    raw: bytes | RawFile | None  # a RawFile is copied in by the store in chunks
    answer: bytes | None


class NewDelivery(NamedTuple):
    """A delivery row in state accepted, due at once."""

    msg_id: str
    receiver: str
    mode: str
    next_at: float
    deadline: float
    updated_at: float
    entry_seq: int


class DeliveryUpdate(NamedTuple):
    """A delivery's new state; any lease on it ends. `delivered_at` / `registered_at` are set
    (when not None) for statistics: time to delivery and to registration."""

    state: str
    next_at: float | None
    detail: str
    updated_at: float
    entry_seq: int
    delivered_at: float | None
    registered_at: float | None
    msg_id: str
    receiver: str


@dataclass
class WritePlan:
    transactions: list[TransactionRow] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
    updates: list[DeliveryUpdate] = field(default_factory=list)
    results: list[Duplicate | None] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)  # msg_ids whose packet and raw become NULL


def changed_msg_ids(prepared: list[Prepared]) -> list[str]:
    """The msg_ids whose deliveries' current states `plan_write` needs."""
    ids = {r.msg_id for r, _, _ in prepared if isinstance(r, StateChange)}
    ids |= {c.msg_id for _, _, also in prepared for c, _ in also}
    return list(ids)


def archived_msg_ids(prepared: list[Prepared]) -> list[str]:
    """The msg_ids whose stored packets' digests `plan_write` needs (for `Archived` records)."""
    return [r.msg_id for r, _, _ in prepared if isinstance(r, Archived)]


def accepted_msg_ids(prepared: list[Prepared]) -> list[str]:
    """The msg_ids whose earlier acceptances `plan_write` needs."""
    return [r.msg_id for r, _, _ in prepared if isinstance(r, Accepted)]


def plan_write(
    prepared: list[Prepared],
    earlier: Mapping[str, tuple[str, bytes]],
    states: Mapping[tuple[str, str], str],
    chain: ChainWriter,
    stored: Mapping[str, str] | None = None,
) -> WritePlan:
    """The rows a group becomes, in record order; entries are appended to `chain` as it goes.

    `earlier`: msg_id -> (digest, answer) of accepted transactions already stored;
    `states`: (msg_id, receiver) -> current state of the deliveries the group changes;
    `stored`: msg_id -> digest of the accepted rows that still hold their packet, for `Archived`
    records (one whose row holds no packet, or another digest, is skipped: archived already).
    """
    earlier, states, stored = dict(earlier), dict(states), dict(stored or {})
    plan = WritePlan()

    def change(c: StateChange, body: bytes) -> None:
        current = states.get((c.msg_id, c.receiver))
        if current is None:
            raise LookupError(f"no delivery of {c.msg_id} to {c.receiver}")
        new = DeliveryState(c.state).value
        if not may_change(current, new):
            return
        seq = chain.append(body, c.msg_id)
        delivered_at = c.at if new == DeliveryState.DELIVERED.value else None
        registered_at = c.at if new in REGISTRATION else None
        plan.updates.append(DeliveryUpdate(new, c.next_at, c.detail, c.at, seq, delivered_at, registered_at,
                                           c.msg_id, c.receiver))
        states[(c.msg_id, c.receiver)] = new

    for r, body, also in prepared:
        result: Duplicate | None = None
        if isinstance(r, Accepted):
            if r.msg_id in earlier:
                digest, answer = earlier[r.msg_id]
                result = Duplicate(r.msg_id, digest, answer)
            else:
                seq = chain.append(body, r.msg_id)
                earlier[r.msg_id] = (r.digest, r.answer)
                plan.transactions.append(TransactionRow(
                    seq, "accepted", r.msg_id, r.sender, json.dumps(list(r.receivers)), r.msg_type, r.acknow,
                    r.ack_for, r.origin, r.digest, r.size, r.received_at, r.deadline, "[100]", None, r.raw,
                    r.answer))
                for receiver, mode in r.deliveries:
                    plan.deliveries.append(
                        NewDelivery(r.msg_id, receiver, mode, r.received_at, r.deadline, r.received_at, seq))
                    states[(r.msg_id, receiver)] = DeliveryState.ACCEPTED.value
                for c, c_body in also:
                    change(c, c_body)
        elif isinstance(r, Archived):
            if stored.pop(r.msg_id, None) == r.digest:
                chain.append(body, r.msg_id)
                plan.archived.append(r.msg_id)
        elif isinstance(r, Rejected):
            seq = chain.append(body, r.msg_id)
            plan.transactions.append(TransactionRow(
                seq, "rejected", r.msg_id, r.sender, "[]", None, None, None, "ingress", r.digest, r.size,
                r.received_at, None, json.dumps(list(r.codes)), r.stage, None, None))
        else:
            change(r, body)
        plan.results.append(result)
    return plan
