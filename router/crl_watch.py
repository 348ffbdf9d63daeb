"""Certificate revocation lists change while the hub runs (every revocation re-issues one): notice
a changed CRL file and hand the new list to the TrustStore, which forgets its cached verdicts."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from signing.algorithms import crl_signed_by
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


@dataclass(frozen=True)
class CrlHealth:
    """Whether the hub holds a current CRL of one CA it trusts."""

    issuer: str  # the CA's subject
    next_update: dt.datetime | None  # of the CRL held, None without one
    problem: str | None  # why revocation cannot be checked for this CA's certificates, or None


def crl_health(trust: TrustStore, now: dt.datetime) -> list[CrlHealth]:
    """For every CA in the trust store: is its CRL present, signed by it, and not past next update?
    Without one, the hub cannot tell a revoked certificate from a good one (it answers -23 to all
    certificates of that CA once the CRL is stale), so the hub reports itself unhealthy."""
    out = []
    for ca in (*trust.anchors, *trust.intermediates):
        name = ca.subject.rfc4514_string()
        crl = next((c for c in trust.crls if c.issuer == ca.subject), None)
        if crl is None:
            out.append(CrlHealth(name, None, f"no CRL of {name}"))
            continue
        next_update = crl.next_update_utc
        problem = None
        if not crl_signed_by(crl, ca):
            problem = f"the CRL of {name} has an invalid signature"
        elif next_update is not None and now > next_update:
            problem = f"the CRL of {name} is stale: its next update was due {next_update:%Y-%m-%d %H:%M:%S}Z"
        out.append(CrlHealth(name, next_update, problem))
    return out
