"""What an operator must watch besides traffic: CRLs and certificates that run out, and the
deliveries piling up per receiver. Shared by the console's overview and /metrics."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from signing.keys import certificate_fingerprint, load_certificates
from signing.trust import load_crl

from router.hub import Hub


@dataclass(frozen=True)
class CrlState:
    path: Path
    issuer: str
    next_update: datetime | None  # None: the file cannot be read
    problem: str = ""


@dataclass(frozen=True)
class CertificateState:
    owner: str  # "hub" or a subscriber's code
    subject: str
    fingerprint: str
    not_after: datetime


def crls(hub: Hub) -> list[CrlState]:
    out = []
    for path in sorted(hub.crls.mtimes):
        try:
            crl = load_crl(path)
        except (OSError, ValueError) as exc:
            out.append(CrlState(path, "", None, f"cannot read: {exc}"[:200]))
            continue
        out.append(CrlState(path, crl.issuer.rfc4514_string(), crl.next_update_utc))
    return out


def certificates(hub: Hub) -> list[CertificateState]:
    """The hub's own certificate and every subscriber's bound certificate."""
    out = []
    if hub.config.cert is not None:
        for cert in load_certificates(hub.config.cert)[:1]:
            out.append(CertificateState("hub", cert.subject.rfc4514_string(), certificate_fingerprint(cert),
                                        cert.not_valid_after_utc))
    snapshot = hub.registry.snapshot
    for subscriber in snapshot.subscribers():
        for bound in snapshot.certificates(subscriber.code):
            out.append(CertificateState(subscriber.code, bound.subject, bound.fingerprint, _utc(bound.not_after)))
    return out


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

