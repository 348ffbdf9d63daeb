"""The hub's journal: every transaction and delivery state, durable and hash-chained."""
from smdo.journal.committer import GroupCommitter
from smdo.journal.sqlite import SqliteJournal
from smdo.journal.store import (
    Accepted,
    Claimed,
    DeliveryState,
    Duplicate,
    JournalStore,
    ReceiverBacklog,
    Record,
    Rejected,
    StateChange,
    TransactionView,
)

__all__ = [
    "Accepted", "Claimed", "DeliveryState", "Duplicate", "GroupCommitter", "JournalStore", "ReceiverBacklog", "Record", "Rejected",
    "SqliteJournal", "StateChange", "TransactionView",
]
