"""What a conforming EDMS checks before it registers a packet it received: the packet's own
signature and its signer's certificate path (against the CRLs, re-read when they change), and the
detached signature of every file. Each failure is a reason for registration result 3 (signature
not trusted).

The trust-related fault switches (edms_adapters.config.FAULTS) each waive exactly one of these
checks, the way a real integration gets one of them wrong.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from lxml import etree

from signing.cms import verify_detached
from signing.errors import MissingSignature, SignatureError, UntrustedCertificate
from signing.trust import TrustStore, load_crl
from signing.xmldsig import verify_enveloped
from smdo import packet as p

log = logging.getLogger("edms")

# fault -> words of signing.trust's refusal that the faulty EDMS overlooks
WAIVED_BY: dict[str, tuple[str, ...]] = {
    "trusts-unknown-ca": ("unknown CA", "is not a trust anchor"),
    "ignores-revocation": ("was revoked on", "the CRL of"),
    "accepts-expired": ("expired on",),
    "accepts-not-yet-valid": ("is not yet valid",),
}


class CrlFiles:
    """The CRL files an EDMS was given; hands a changed one to the TrustStore (it forgets its cache)."""

    def __init__(self, trust: TrustStore, paths: Iterable[Path]) -> None:
        self.trust = trust
        self.seen = {Path(path): _mtime(Path(path)) for path in paths}

    def refresh(self) -> None:
        for path, seen in self.seen.items():
            now = _mtime(path)
            if now == seen or now is None:
                continue
            try:
                self.trust.add_crl(load_crl(path))
            except (OSError, ValueError):  # half-written: keep the old list, look again next time
                continue
            self.seen[path] = now
            log.info("reloaded CRL %s", path)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _waived(error: SignatureError, faults: frozenset[str]) -> bool:
    return isinstance(error, UntrustedCertificate) and any(
        word in error.message for fault in faults for word in WAIVED_BY.get(fault, ()))


def _trusted(certificate, trust: TrustStore, faults: frozenset[str]) -> str | None:
    try:
        trust.validate(certificate)
    except SignatureError as exc:
        return None if _waived(exc, faults) else str(exc)
    return None


def signature_problem(root: etree._Element, trust: TrustStore, faults: frozenset[str]) -> str | None:
    """Why the packet's own signature is not trusted, or None when it is."""
    try:
        verified = verify_enveloped(root)
    except MissingSignature as exc:
        return None if "accepts-unsigned" in faults else f"{exc}: every packet must be signed"
    except SignatureError as exc:
        return str(exc)
    return _trusted(verified.certificate, trust, faults)


def file_signature_problem(envelope: p.Envelope, trust: TrustStore, faults: frozenset[str]) -> str | None:
    """Why a file's detached signature (DocTransfer/Signature) does not hold, or None."""
    if "ignores-file-signatures" in faults:
        return None
    for file in files_of(envelope.body):
        for signature in file.signatures:
            try:
                certificate = verify_detached(file.data or b"", signature)
            except SignatureError as exc:
                return f"the signature of file {file.name!r} does not verify: {exc}"
            problem = _trusted(certificate, trust, faults)
            if problem is not None:
                return f"the signer of file {file.name!r} is not trusted: {problem}"
    return None


def files_of(zone: p.Zone) -> tuple[p.DocTransfer, ...]:
    if isinstance(zone, (p.Document, p.Task)):
        return tuple(zone.files)
    if isinstance(zone, p.AddDocuments):
        return tuple(f for folder in zone.folders for f in folder.files)
    return ()
