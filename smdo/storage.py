"""Where the hub's data lives, named by one URL for the journal and the registry alike.

    sqlite:///var/smdo   a data folder holding journal.db and registry.db (embedded, one machine)
    /var/smdo            the same, as a bare folder (the default: ./var)
    postgresql://user@host:5432/smdo   one PostgreSQL database, shared by every hub node

`smdo serve --db URL`, `SMDO_DB`, and the same `--db` on every command that reads or writes them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


class StorageError(RuntimeError):
    """The storage cannot be used: unreachable, or at a schema version this code does not know."""


@dataclass(frozen=True)
class StorageUrl:
    kind: str  # "sqlite" | "postgresql"
    folder: Path | None = None  # sqlite: the data folder
    dsn: str | None = None  # postgresql: the libpq URL

    @property
    def shown(self) -> str:
        """For messages: the folder, or the URL without its password."""
        return str(self.folder) if self.folder is not None else _PASSWORD.sub(r"\1***@", self.dsn or "")

    @property
    def journal_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "journal.db"

    @property
    def registry_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "registry.db"


def parse_storage(url: str | Path | StorageUrl | None, default_folder: Path = Path("var")) -> StorageUrl:
    """A StorageUrl from `sqlite:///folder`, `postgresql://...`/`postgres://...`, a bare folder, or None
    (the default folder). Raises ValueError naming what is wrong."""
    if isinstance(url, StorageUrl):
        return url
    if url is None or url == "":
        return StorageUrl("sqlite", folder=Path(default_folder))
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return StorageUrl("postgresql", dsn=text)
    if text.startswith("sqlite://"):
        path = text[len("sqlite://"):]
        if not path.startswith("/"):
            raise ValueError(f"not a storage URL: {text!r} (use sqlite:///absolute/folder)")
        return StorageUrl("sqlite", folder=Path(path))
    if "://" in text:
        raise ValueError(f"unknown storage URL scheme in {text!r}: use sqlite:///folder or postgresql://...")
    return StorageUrl("sqlite", folder=Path(text))
