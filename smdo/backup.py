"""A consistent copy of a data folder while the hub runs, and putting one back.

Each SQLite file is copied with SQLite's online backup API in one step: the copy is one
snapshot of that file (a read transaction in WAL mode), while the hub keeps writing. The
registry is copied before the journal, so every subscriber a journalled packet names is in the
copy; the signed checkpoints too (whole lines, under the writers' lock), so each one they hold
covers a prefix of the copied journal. Other stores (PostgreSQL) have their own tools.
"""
from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

from smdo.datadir import MARKER, init_data_dir, is_data_dir, require_data_dir
from smdo.journal.checkpoints import FILE_NAME as CHECKPOINTS

STORES = ("registry.db", CHECKPOINTS, "journal.db")  # in this order: see above


def _copy(source: Path, target: Path) -> None:
    if source.name == CHECKPOINTS:
        with open(source, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)  # appenders hold LOCK_EX for each whole line
            target.write_bytes(handle.read())
        return
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30.0)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # pages=-1: the whole file as one snapshot
            dst.execute("PRAGMA journal_mode=WAL")
        finally:
            dst.close()
    finally:
        src.close()


def _fresh_target(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} is not empty: give a new or empty folder (nothing there is overwritten)")


def backup_data_dir(data_dir: Path, target: Path) -> list[Path]:
    """Copy `data_dir`'s stores into the new folder `target`; the copied files."""
    require_data_dir(data_dir)
    _fresh_target(target)
    init_data_dir(target)
    return _copy_stores(data_dir, target)


def restore_data_dir(backup: Path, data_dir: Path) -> list[Path]:
    """Make the new data folder `data_dir` from `backup` (a folder `backup_data_dir` wrote)."""
    if not is_data_dir(backup) or not (backup / MARKER).exists():
        raise ValueError(f"{backup} is not a backup made by `smdo backup`")
    _fresh_target(data_dir)
    init_data_dir(data_dir)
    return _copy_stores(backup, data_dir)


def _copy_stores(source: Path, target: Path) -> list[Path]:
    """Each store `source` holds, copied consistently into `target`, in STORES order; the copies."""
    copied = []
    for name in STORES:
        if (source / name).exists():
            _copy(source / name, target / name)
            copied.append(target / name)
    return copied
