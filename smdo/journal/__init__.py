"""The hub's journal: every transaction and delivery state, durable and hash-chained."""
from smdo.journal.committer import GroupCommitter
from smdo.journal.opener import journal_store
from smdo.journal.records import (
    Accepted,
    Archived,
    Carried,
    Claimed,
    DeliveryState,
    Duplicate,
    Lanes,
    RawFile,
    ReceiverBacklog,
    Record,
    Rejected,
    StateChange,
    TransactionView,
)
from smdo.journal.store import JournalStore

__all__ = [
    "Accepted", "Archived", "Carried", "Claimed", "DeliveryState", "Duplicate", "GroupCommitter", "JournalStore", "Lanes", "RawFile", "ReceiverBacklog", "Record", "Rejected",
    "StateChange", "TransactionView", "journal_store",
]
