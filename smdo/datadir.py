"""One process per data folder, held by an advisory lock file for the process's lifetime."""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO


class DataDirBusy(RuntimeError):
    """Another process already holds this data folder."""


def lock_data_dir(data_dir: Path, lock_name: str, holder: str) -> IO[bytes]:
    """Take `data_dir/lock_name` or raise DataDirBusy naming who holds it; keep the handle open.

    The kernel drops the lock when the process dies (even by kill -9), so no stale lock survives.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / lock_name, "wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirBusy(f"{holder} is already running in {data_dir} ({lock_name} is held)") from None
    return handle


# A data folder is one `smdo init DIR` (or the first `smdo serve`) created. Commands that read
# or change a registry or journal refuse any other folder, so a typo in --data fails loudly
# instead of creating an empty registry the hub never reads.
MARKER = "smdo-data.txt"
_STORES = ("registry.db", "journal.db")  # folders from before the marker existed


class DataDirMissing(ValueError):
    """The folder was never initialised as an smdo data folder."""


def is_data_dir(data_dir: Path) -> bool:
    return any((data_dir / name).exists() for name in (MARKER, *_STORES))


def init_data_dir(data_dir: Path) -> bool:
    """Make `data_dir` an smdo data folder; True if it was not one before."""
    created = not is_data_dir(data_dir)
    if not (data_dir / MARKER).exists():  # also marks a folder from before the marker existed
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / MARKER).write_text("smdo-hub data folder: registry.db (subscribers), journal.db (packets)\n")
    return created


def require_data_dir(data_dir: Path) -> Path:
    """`data_dir` if it is an smdo data folder, else DataDirMissing saying how to make one."""
    if not is_data_dir(data_dir):
        raise DataDirMissing(f"{data_dir} is not an smdo data folder (no registry or journal in it): check "
                             f"--data / SMDO_DATA, or create it with `smdo init {data_dir}`")
    return data_dir
