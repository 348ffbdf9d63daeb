"""The signing keys of the trust cases: certificates a conforming EDMS must not trust.

- foreign: chains to a CA made fresh for the run, which nobody trusts (needs nothing from anyone);
- revoked, expired, not yet valid: issued by the certification PKI (`--pki DIR`, the test PKI whose
  CA the EDMS under test trusts during certification); the revoked one is put on that CA's CRL,
  which the PKI re-publishes at once (`<pki>/<ca>.crl`). The EDMS learns it the way it learns any
  CRL: it reads that file (or the copy the hub operator publishes) and re-reads it when it changes
  (the emulated EDMS: `smdo edms run --crl FILE`). The hub loads the same file (its `crl` setting).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from signing.keys import Signer
from signing.pki import PkiLayout, default_key_type, init_pki, issue_certificate, revoke_certificate

# Certificate codes the suite issues in the certification PKI (re-issued on every run).
REVOKED, EXPIRED, NOT_YET_VALID = "CONFORMANCE-REVOKED", "CONFORMANCE-EXPIRED", "CONFORMANCE-NOT-YET-VALID"


@dataclass(frozen=True)
class TrustKit:
    foreign: Signer
    revoked: Signer | None = None  # None: no certification PKI was given
    expired: Signer | None = None
    not_yet_valid: Signer | None = None
    crl: Path | None = None  # where the revocation was published


def foreign_signer(work: Path) -> Signer:
    """A key and certificate from a brand-new CA (same kind of names, different keys)."""
    layout = init_pki(work / "foreign-pki", key_type="ec")
    issue_certificate(layout.directory, "FOREIGN", "Conformance foreign signer", key_type="ec")
    return layout.signer("FOREIGN")


def make_trust_kit(work: Path, pki: Path | None, *, now: dt.datetime | None = None) -> TrustKit:
    foreign = foreign_signer(work)
    if pki is None:
        return TrustKit(foreign)
    key_type = default_key_type(PkiLayout(pki), tls=False)  # the PKI's own kind (rsa, ec or bign)
    now = now or dt.datetime.now(dt.timezone.utc)
    expired = issue_certificate(pki, EXPIRED, "Conformance expired signer", key_type=key_type,
                                not_before=now - dt.timedelta(days=3), days=1)
    not_yet = issue_certificate(pki, NOT_YET_VALID, "Conformance future signer", key_type=key_type,
                                not_before=now + dt.timedelta(days=1), days=30)
    revoked = issue_certificate(pki, REVOKED, "Conformance revoked signer", key_type=key_type)
    # Revoked a minute ago, so "revoked at" is already past for any clock a little behind ours.
    crl = revoke_certificate(pki, REVOKED, when=now - dt.timedelta(minutes=1))
    return TrustKit(foreign, revoked=revoked.signer(), expired=expired.signer(), not_yet_valid=not_yet.signer(),
                    crl=crl)
