"""Certificate revocation lists change while the hub runs (every revocation re-issues one): notice
a changed CRL file and hand the new list to the TrustStore, which forgets its cached verdicts."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from signing.trust import TrustStore, load_crl

log = logging.getLogger(__name__)


class CrlWatch:
    def __init__(self, trust: TrustStore, paths: Iterable[Path]) -> None:
        self.trust = trust
        self.mtimes = {Path(p): _mtime(Path(p)) for p in paths}

    def check(self) -> int:
        """Reload every CRL file that changed since the last look; returns how many did."""
        reloaded = 0
        for path, seen in self.mtimes.items():
            now = _mtime(path)
            if now == seen:
                continue
            try:
                self.trust.add_crl(load_crl(path))
            except (OSError, ValueError):  # half-written: keep the old list, look again next time
                log.warning("could not read the changed CRL %s; will retry", path)
                continue
            self.mtimes[path] = now
            reloaded += 1
            log.info("reloaded CRL %s", path)
        return reloaded


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def crl_files(trust: Path, crls: Iterable[Path]) -> list[Path]:
    """The CRLs a TrustStore.from_paths(trust, crls) loads: the given ones and *.crl in a trust folder."""
    files = [Path(p) for p in crls]
    if trust.is_dir():
        files += sorted(p for p in trust.iterdir() if p.suffix.lower() == ".crl")
    return files
