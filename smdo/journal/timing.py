"""Where a store's write transactions spend their time; one object per store, no globals."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LockTimes:
    lock_wait: float = 0.0  # waiting for the write lock (SQLite's, or the chain head's row lock)
    locked_work: float = 0.0  # statements run under it
    commit: float = 0.0  # the commit (the fsync)
    transactions: int = 0

    def add(self, wait: float, work: float, commit: float) -> None:
        self.lock_wait += wait
        self.locked_work += work
        self.commit += commit
        self.transactions += 1

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)
