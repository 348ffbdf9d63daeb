"""The one way to get a journal store: from the storage URL (`smdo.storage`)."""
from __future__ import annotations

from pathlib import Path

from smdo.journal.store import JournalStore
from smdo.storage import StorageUrl, parse_storage


def journal_store(url: str | Path | StorageUrl | None) -> JournalStore:
    """The journal at `url` (not yet opened: `await store.open()`)."""
    where = parse_storage(url)
    if where.kind == "postgresql":
        from smdo.journal.postgres import PostgresJournal

        assert where.dsn is not None
        return PostgresJournal(where.dsn)
    from smdo.journal.sqlite import SqliteJournal

    return SqliteJournal(where.journal_path)
