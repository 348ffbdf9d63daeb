"""The rules of a claim, one copy for both journal stores: which of the due deliveries are taken
(the receivers' lanes admit them, at most `limit`), in which order, and what each taken one gets
(a lease to its holder and its chain entry). A store only runs the SQL around them: find the
candidates, lock them its own way, read the chosen rows, write the updates."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smdo.journal.chain import ChainWriter
from smdo.journal.entries import claim_entry
from smdo.journal.records import Lanes

#: Candidates are read as (delivery id, receiver, packet size), oldest due first.
CANDIDATE_COLUMNS = "d.id, d.receiver, t.size"


def candidate_limit(limit: int, lanes: Lanes | None) -> int:
    """How many candidates to read: the lanes look further ahead, past receivers already full."""
    return limit if lanes is None else lanes.lookahead(limit)


def choose(candidates: Sequence[Sequence[Any]], limit: int, lanes: Lanes | None) -> dict[int, int]:
    """Delivery id -> its place in the claim, for the candidates the lanes admit (all, without lanes)."""
    if lanes is not None:
        admitted = lanes.admit([c[1] for c in candidates], [c[2] for c in candidates])
        candidates = [candidates[i] for i in admitted][:limit]
    return {c[0]: i for i, c in enumerate(candidates)}


def update_sql(placeholder: str) -> str:
    p = placeholder
    return (f"UPDATE deliveries SET state = 'forwarding', attempts = attempts + 1, updated_at = {p},"
            f" entry_seq = {p}, claimed_by = {p}, claim_until = {p} WHERE id = {p}")


def lease(rows: Sequence[Sequence[Any]], order: dict[int, int], chain: ChainWriter, holder: str, now: float,
          lease_for: float) -> tuple[list[Sequence[Any]], list[tuple[Any, ...]]]:
    """The chosen rows (rows.CLAIMED_COLUMNS) in claim order, and each one's `update_sql` arguments:
    leased to `holder` until `now + lease_for`, with the claim's chain entry appended."""
    ordered = sorted(rows, key=lambda r: order[r[0]])
    updates = [(now, chain.append(claim_entry(r[1], r[2], now, r[5] + 1, holder), r[1]), holder, now + lease_for, r[0])
               for r in ordered]
    return ordered, updates
