"""Rows as every store selects them, turned into records and views (no SQL, no rules)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from smdo.journal.records import Accepted, Carried, Claimed, DeliveryView, ReceiverBacklog, TransactionView
from smdo.journal.transitions import PENDING

#: A packet's bytes: in `packet` (the last column, so SQLite can write a large one in place) since
#: SQLite schema 3 / PostgreSQL migration 5, in `raw` before.
PACKET = "coalesce(packet, raw)"
#: Columns (deliveries d JOIN transactions t) in `Claimed` order.
CLAIMED_COLUMNS = ("d.id, d.msg_id, d.receiver, t.sender, d.mode, d.attempts, d.deadline, t.acknow, t.msg_type,"
                   " coalesce(t.packet, t.raw)")
ACCEPTED_COLUMNS = ("msg_id, sender, receivers, msg_type, acknow, digest, size, received_at, deadline, "
                    f"{PACKET}, answer,"
                    " ack_for, origin")
VIEW_COLUMNS = ("t.msg_id, t.outcome, t.sender, t.receivers, t.msg_type, t.digest, t.size, t.received_at,"
                " t.codes, t.origin, t.ack_for,"
                " (t.outcome = 'accepted' AND t.packet IS NULL AND t.raw IS NULL)")
DELIVERY_VIEW_COLUMNS = "receiver, mode, state, attempts, updated_at, next_at, detail"


#: Transaction outcomes; any other searched state is a delivery's.
OUTCOMES = ("accepted", "rejected")


def claim_filter(placeholder: str, mode: str, receiver: str | None, now: float) -> tuple[str, list[Any]]:
    """The WHERE clause (over deliveries d) and arguments of the deliveries a claim may take: this
    mode's, pending, due, before their deadline and leased by nobody (optionally one receiver's)."""
    p = placeholder
    where = (f"d.mode = {p} AND d.state IN {PENDING} AND d.next_at <= {p} AND d.deadline > {p}"
             f" AND (d.claim_until IS NULL OR d.claim_until < {p})")
    args: list[Any] = [mode, now, now, now]
    if receiver is not None:
        where += f" AND d.receiver = {p}"
        args.append(receiver)
    return where, args


def transaction_filter(placeholder: str, *, since: float | None, until: float | None, sender: str | None,
                       receiver: str | None, state: str | None, documents_only: bool) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (over transactions t) and its arguments of a transaction search, written with
    the store's `placeholder` (`?` or `%s`): one search, whatever the store. A receiver or a delivery
    state is not in it: those are `delivery_filter`'s (the search then walks deliveries)."""
    where, args = ["1 = 1"], []
    if since is not None:
        where.append(f"t.received_at >= {placeholder}")
        args.append(since)
    if until is not None:
        where.append(f"t.received_at < {placeholder}")
        args.append(until)
    if sender:
        where.append(f"t.sender = {placeholder}")
        args.append(sender)
    if documents_only:  # leave out acknowledgements (msg_type 0); refusals have no type and stay
        where.append("(t.msg_type IS NULL OR t.msg_type <> 0)")
    if state in OUTCOMES:  # index transactions_outcome (outcome, id): newest first, no scan
        where.append(f"t.outcome = {placeholder}")
        args.append(state)
    return " AND ".join(where), tuple(args)


def delivery_filter(placeholder: str, *, receiver: str | None, state: str | None) -> tuple[str, tuple[Any, ...]] | None:
    """The WHERE clause over deliveries d for a search by receiver and/or delivery state, or None.

    Such a search walks deliveries newest first through `deliveries_receiver (receiver, id)` or
    `deliveries_state (state, id)`, joins each to its transaction by msg_id and stops at the limit
    (`search_pages`): it reads as many rows as it answers with (more only where the transaction's
    own filters refuse some), not a subquery over every delivery of that receiver or state."""
    where, args = [], []
    if receiver:
        where.append(f"d.receiver = {placeholder}")
        args.append(receiver)
    if state and state not in OUTCOMES:
        where.append(f"d.state = {placeholder}")
        args.append(state)
    return (" AND ".join(where), tuple(args)) if where else None


def search_sql(placeholder: str, t_where: str, d_where: str) -> str:
    """One page of a delivery-driven search: VIEW_COLUMNS and d.id, newest delivery first, after a
    keyset bound (`d.id < ?`)."""
    return (f"SELECT {VIEW_COLUMNS}, d.id FROM deliveries d JOIN transactions t ON t.msg_id = d.msg_id"
            f" AND t.outcome = 'accepted' WHERE {d_where} AND {t_where} AND d.id < {placeholder}"
            f" ORDER BY d.id DESC LIMIT {placeholder}")


def search_pages(limit: int) -> int:
    """Rows per page of a delivery-driven search: a page usually answers it whole."""
    return max(limit, 50)


def distinct_newest(rows: Iterable[Sequence[Any]], found: dict[str, tuple[Any, ...]], limit: int) -> None:
    """Add a page's rows (VIEW_COLUMNS..., d.id) to `found` (msg_id -> row without d.id), newest
    first, one per transaction (a packet to two receivers in that state appears twice), up to `limit`."""
    for row in rows:
        if len(found) >= limit:
            return
        found.setdefault(row[0], tuple(row[:-1]))


def _packet(blob: Any) -> bytes:
    """A stored packet; b"" for an archived one (NULL). Only finished deliveries' packets are
    archived, and no path that sends a packet reads a finished delivery (claims take pending ones),
    so an empty packet is only ever seen where it is not sent: a late ack about a finished delivery."""
    return b"" if blob is None else bytes(blob)


def claimed(row: Sequence[Any], attempt_added: int = 0) -> Claimed:
    return Claimed(row[0], row[1], row[2], row[3], row[4], row[5] + attempt_added, row[6], row[7], row[8],
                   _packet(row[9]))


CARRIED_COLUMNS = "msg_id, sender, receivers, origin"


def carried(row: Sequence[Any], deliveries: Iterable[Sequence[Any]]) -> Carried:
    return Carried(msg_id=row[0], sender=row[1], receivers=tuple(json.loads(row[2])), origin=row[3],
                   deliveries=tuple((r, m) for r, m in deliveries))


def accepted(row: Sequence[Any], deliveries: Iterable[Sequence[Any]]) -> Accepted:
    return Accepted(
        msg_id=row[0], sender=row[1], receivers=tuple(json.loads(row[2])), msg_type=row[3], acknow=row[4],
        digest=row[5], size=row[6], received_at=row[7], deadline=row[8], raw=_packet(row[9]), answer=bytes(row[10]),
        deliveries=tuple((r, m) for r, m in deliveries), ack_for=row[11], origin=row[12],
    )


def view(row: Sequence[Any], deliveries: Iterable[Sequence[Any]]) -> TransactionView:
    return TransactionView(
        msg_id=row[0], outcome=row[1], sender=row[2], receivers=tuple(json.loads(row[3])), msg_type=row[4],
        digest=row[5], size=row[6], received_at=row[7], codes=tuple(json.loads(row[8])), origin=row[9],
        ack_for=row[10], deliveries=tuple(DeliveryView(*d) for d in deliveries), archived=bool(row[11]),
    )


def archive_candidates_sql(placeholder: str, finished: Sequence[str]) -> str:
    """Accepted rows still holding their packet, received before a time, every delivery finished:
    (id, msg_id, digest, size, received_at), in (received_at, id) order after a keyset bound, with a
    limit. Arguments: (before, after received_at, after id, limit). The WHERE repeats the partial
    index `transactions_unarchived`'s, so the walk reads only rows not yet archived."""
    states = ", ".join(f"'{s}'" for s in finished)
    return (f"SELECT t.id, t.msg_id, t.digest, t.size, t.received_at FROM transactions t"
            f" WHERE t.outcome = 'accepted' AND coalesce(t.packet, t.raw) IS NOT NULL"
            f" AND t.received_at < {placeholder} AND (t.received_at, t.id) > ({placeholder}, {placeholder})"
            f" AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = t.msg_id AND d.state NOT IN ({states}))"
            f" ORDER BY t.received_at, t.id LIMIT {placeholder}")


#: A delivery still pending after a failed attempt: waiting for its retry, or a push retry under
#: way (counted too, so an operator's alert does not vanish for the seconds each retry lasts).
FAILED_BEFORE = ("(d.state = 'retry-wait' AND d.attempts > 0"
                 " OR d.state = 'forwarding' AND d.mode = 'push' AND d.attempts > 1)")
#: Per receiver and mode: waiting, oldest deadline, most attempts, failing.
BACKLOG_SQL = ("SELECT d.receiver, d.mode, count(*), min(d.deadline), max(d.attempts),"
               f" sum(CASE WHEN {FAILED_BEFORE} THEN 1 ELSE 0 END)"
               f" FROM deliveries d WHERE d.state IN {PENDING} GROUP BY d.receiver, d.mode ORDER BY d.receiver")


def backlog_oldest_sql(placeholder: str) -> str:
    """When the receiver's delivery nearest its deadline was received."""
    return ("SELECT t.received_at FROM deliveries d JOIN transactions t ON t.msg_id = d.msg_id"
            f" AND t.outcome = 'accepted' WHERE d.receiver = {placeholder} AND d.state IN {PENDING}"
            " ORDER BY d.deadline LIMIT 1")


def backlog_failure_sql(placeholder: str) -> str:
    """The receiver's latest failure: its detail, when, and the next try (none while one is under way)."""
    return ("SELECT d.detail, d.updated_at, CASE WHEN d.state = 'retry-wait' THEN d.next_at END"
            f" FROM deliveries d WHERE d.receiver = {placeholder} AND {FAILED_BEFORE}"
            " ORDER BY d.updated_at DESC LIMIT 1")


def backlog(row: Sequence[Any], oldest: Sequence[Any] | None, failure: Sequence[Any] | None) -> ReceiverBacklog:
    receiver, mode, waiting, oldest_deadline, attempts, failing = row
    return ReceiverBacklog(
        receiver=receiver, mode=mode, waiting=waiting, oldest_received_at=oldest[0] if oldest else None,
        oldest_deadline=oldest_deadline, failing=int(failing), max_attempts=attempts,
        last_error=failure[0] if failure else "", last_error_at=failure[1] if failure else None,
        next_try_at=failure[2] if failure else None)
