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
