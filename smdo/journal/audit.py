"""The journal's audit, the same for every store: the chain itself, then every transaction and
delivery row against the entries, the stored packet against its digest and the answer against its
hash, so `smdo journal verify` names any edited or deleted row."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from smdo.journal.chain import ChainProblem, verify_chain

#: Column order a store hands rows over in.
ENTRY_COLUMNS = "seq, body, hash, msg_id"
TRANSACTION_COLUMNS = "id, entry_seq, outcome, msg_id, sender, digest, size, codes, raw, answer"
DELIVERY_COLUMNS = "id, msg_id, receiver, state, entry_seq"


def audit(
    entries: list[tuple[int, str, str, str | None]],
    head: tuple[int, str] | None,
    transactions: Iterable[tuple[Any, ...]],
    deliveries: Iterable[tuple[Any, ...]],
) -> list[ChainProblem]:
    """`entries`: (seq, body, hash, msg_id) in seq order; `head`: the stored chain head;
    `transactions` and `deliveries`: rows in TRANSACTION_COLUMNS / DELIVERY_COLUMNS order."""
    problems = verify_chain([row[:3] for row in entries], head)
    bodies: dict[int, dict[str, Any]] = {}
    for seq, body, _, msg_id in entries:
        try:
            bodies[seq] = json.loads(body)
        except ValueError:
            continue
        if bodies[seq].get("msg_id") != msg_id:  # the column a transaction's timeline is read by
            problems.append(ChainProblem("entries", seq, "msg_id column differs from the entry"))

    last_state: dict[tuple[str, str], int] = {}
    txn_entries: set[int] = set()
    for seq, e in bodies.items():
        if e.get("kind") in ("accepted", "rejected"):
            txn_entries.add(seq)
        if e.get("kind") == "accepted":
            for receiver, _mode in e.get("deliveries", []):
                last_state[(e["msg_id"], receiver)] = seq
        elif e.get("kind") == "state":
            last_state[(e["msg_id"], e["receiver"])] = seq

    seen_txn: set[int] = set()
    for tid, seq, outcome, msg_id, sender, digest, size, codes, raw, answer in transactions:
        seen_txn.add(seq)
        e = bodies.get(seq)
        if e is None or e.get("kind") != outcome:
            problems.append(ChainProblem("transactions", tid, f"no {outcome} entry {seq} behind this row"))
            continue
        if (e.get("msg_id"), e.get("sender"), e.get("digest"), e.get("size")) != (msg_id, sender, digest, size):
            problems.append(ChainProblem("transactions", tid, f"differs from journal entry {seq}"))
        if outcome == "rejected" and json.loads(codes) != e.get("codes"):
            problems.append(ChainProblem("transactions", tid, f"codes differ from journal entry {seq}"))
        if outcome == "accepted":
            if raw is None or hashlib.sha256(bytes(raw)).hexdigest() != digest:
                problems.append(ChainProblem("transactions", tid, "stored packet does not match its digest"))
            if answer is None or hashlib.sha256(bytes(answer)).hexdigest() != e.get("answer_sha256"):
                problems.append(ChainProblem("transactions", tid, "stored answer does not match the journal"))
    for seq in sorted(txn_entries - seen_txn):
        problems.append(ChainProblem("transactions", f"of entry {seq}", "deleted"))

    seen_delivery: set[tuple[str, str]] = set()
    for did, msg_id, receiver, state, seq in deliveries:
        key = (msg_id, receiver)
        seen_delivery.add(key)
        expected_seq = last_state.get(key)
        e = bodies.get(seq)
        expected_state = "accepted" if e and e.get("kind") == "accepted" else (e or {}).get("state")
        if expected_seq is None:
            problems.append(ChainProblem("deliveries", did, "no journal entry for this delivery"))
        elif seq != expected_seq or expected_state != state:
            problems.append(ChainProblem("deliveries", did, f"state '{state}' differs from journal entry {expected_seq}"))
    for msg_id, receiver in sorted(set(last_state) - seen_delivery):
        problems.append(ChainProblem("deliveries", f"{msg_id}/{receiver}", "deleted"))
    return problems
