"""The journal's storage interface: every method the hub, the CLI and the tests call on a journal.

A store only stores: the rules (which state may follow which, what a chain entry says, what the
audit checks) are in `entries`, `transitions` and `audit`, shared by every store. Every write is a
list of records committed together; a store returns only after they are durable, and every record
also becomes an entry of the one hash chain. Stores: `smdo.journal.sqlite` (embedded default) and
`smdo.journal.postgres` (several hub nodes); `smdo.journal.opener.open_journal(url)` picks one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from smdo.journal.audit import Progress
from smdo.journal.chain import ChainProblem
from smdo.journal.records import (  # noqa: F401 - re-exported: the interface's vocabulary
    PENDING_STATES,
    REGISTRATION_STATES,
    Accepted,
    Carried,
    Claimed,
    DeliveryState,
    DeliveryView,
    Duplicate,
    Lanes,
    ReceiverBacklog,
    Record,
    Rejected,
    StateChange,
    TransactionView,
)


class JournalStore(Protocol):
    #: Where the journal lives, for messages (a path or a URL without its password).
    location: str

    async def open(self) -> None:
        """Connect and check the schema (a store refuses a schema version it does not know)."""

    async def close(self) -> None: ...

    async def write(self, records: Sequence[Record]) -> list[Duplicate | None]:
        """Commit all records in one durable transaction; per record, a Duplicate or None."""

    async def claim_push(self, worker: str, now: float, lease: float, limit: int,
                         lanes: Lanes | None = None) -> list[Claimed]:
        """Due push deliveries, marked forwarding and leased to `worker`; rows another node holds
        are skipped, and a lease that ran out (its holder died) is due again. With `lanes`, no more
        per receiver than its lane has room for (`Lanes.admit`)."""

    async def claim_mailbox(self, receiver: str, now: float, visibility: float, limit: int,
                            lanes: Lanes | None = None) -> list[Claimed]:
        """Pull deliveries waiting for `receiver` (or offered earlier and not confirmed in time);
        with `lanes`, only as many as fit its room (its `bytes_room` bounds the bodies' bytes)."""

    async def past_deadline(self, now: float, limit: int) -> list[Claimed]:
        """Pending deliveries whose deadline has passed and that nobody holds a lease on."""

    async def next_due(self) -> float:
        """The earliest time a pending push delivery becomes claimable (its next attempt, or its
        lease running out) or any pending delivery, unleased, is past its deadline; +inf if none.
        What the delivery loop sleeps until when idle (one read through the pending-only indexes)."""

    async def delivery(self, delivery_id: int) -> Claimed | None: ...

    async def delivery_state(self, msg_id: str, receiver: str) -> str | None: ...

    async def accepted(self, msg_id: str) -> Accepted | None:
        """The accepted transaction with this msg_id (without `also`), or None."""

    async def carried(self, msg_id: str) -> Carried | None:
        """Who sent the accepted packet with this msg_id, to whom and how, without its bytes; or None."""

    async def transaction(self, msg_id: str) -> list[TransactionView]: ...

    async def acknowledgements(self, msg_id: str) -> list[TransactionView]:
        """Accepted acknowledgements of msg_id (the hub's 101/102, receivers' registration acks)."""

    async def list_transactions(
        self, *, since: float | None = None, sender: str | None = None, state: str | None = None,
        limit: int = 100, until: float | None = None, receiver: str | None = None, documents_only: bool = False,
    ) -> list[TransactionView]:
        """The latest `limit` transactions matching the filters (received in [since, until); state:
        accepted, rejected, or a delivery state; documents_only: no acknowledgements), oldest first."""

    async def release_claims(self) -> int:
        """Forget every lease. Only for a hub with exclusive use of the journal (one node, just
        started: the holders are gone); in a cluster leases simply run out."""

    async def counts(self) -> dict[str, int]:
        """Deliveries per state, for metrics: counts kept as states change (no table scan), read
        on another connection than the one that commits."""

    # For journal checkpoints (smdo/journal/checkpoints.py): what the hub signs, and what is checked later.
    async def chain_head(self) -> tuple[int, str] | None:
        """(sequence number, hash) of the chain's last entry, or None while the journal is empty."""

    async def entry_hashes(self, seqs: Sequence[int]) -> dict[int, str]:
        """The stored hash of each of these entries that exists (a missing seq is left out)."""

    async def verify(self, *, since: tuple[int, str] | None = None,
                     progress: Callable[[Progress], None] | None = None,
                     archive: Path | None = None) -> list[ChainProblem]:
        """The audit (`smdo.journal.audit`) over this store's entries and rows, streamed in pages
        from one snapshot; `since`: a trusted (seq, hash) to start after; `progress` is called per page;
        `archive`: the folder packets were archived to, each archived file re-hashed against its entry."""

    # For archiving (smdo/journal/archive.py): finished packets' bytes moved out, an `Archived` record each.
    async def archive_candidates(self, before: float, after: tuple[float, int],
                                 limit: int) -> list[tuple[int, str, str, int, float]]:
        """(row id, msg_id, digest, size, received_at) of up to `limit` accepted rows received before
        `before`, still holding their packet, whose every delivery is finished (`transitions.FINISHED`),
        in (received_at, id) order after the keyset bound `after`. Read through an index of the rows
        still holding a packet, so archived rows cost nothing however old the journal."""

    async def packet(self, msg_id: str) -> bytes | None:
        """The accepted packet's stored bytes; None when there is none (or it was archived)."""

    # --- operators' views: a transaction's history, backlog, hourly counts, statistics ---------

    async def history(self, msg_id: str) -> list[dict[str, Any]]:
        """Every journal entry about msg_id, oldest first (a transaction's timeline)."""

    async def backlog(self) -> list[ReceiverBacklog]:
        """Pending deliveries per receiver: count, oldest, latest failure."""

    async def hourly(self, since: float) -> list[tuple[int, int, int, int]]:
        """(hour start, accepted, refused, delivered) per hour since `since`."""

    async def period_facts(self, since: float, until: float, sink: Callable[[str, list[tuple]], None]) -> None:
        """Statistics' facts about documents received in [since, until), fed to `sink` in batches,
        by UTC day number (received_at // 86400): ("document", [(day, sender, n)]),
        ("refusal", [(day, sender, n)]), ("delivery", [(day, sender, receiver, state, n)]),
        ("durations", [(day, sender, to_delivery, to_registration)], seconds or None).
        `sink` must not block."""

    def wal_bytes(self) -> int | None:
        """Size of the store's local write-ahead log file (kept bounded), None when it has none."""

    def lock_times(self) -> dict[str, float]:
        """This store object's write transactions so far: their number, and seconds spent waiting
        for the write lock, working under it, and committing."""
