"""Certificate path validation: signer -> configured intermediates -> configured anchor, with CRLs.

Certificates and CRLs of every registered algorithm (RSA, ECDSA, bign) go through the same rules;
only the signature check is delegated, by algorithm OID, to `signing.algorithms`.
Written out rather than through `cryptography.x509.verification`, which has no CRL support and
whose error messages do not name the certificate and reason the way SDIP acknowledgements need.
Successful results are cached per (fingerprint, hour) so the hot path does not re-walk the chain.
"""
from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Iterable, Sequence

from cryptography import x509

from signing.algorithms import certificate_issued_by, crl_signed_by
from signing.errors import UntrustedCertificate
from signing.keys import certificate_fingerprint, load_certificates

MAX_CHAIN = 8  # root -> republican CA -> subscriber is 3; anything this long is a loop or an attack
CRL_SUFFIXES = (".crl",)


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and certificate_issued_by(cert, cert)


def _extension(cert_or_crl, kind):
    try:
        return cert_or_crl.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def load_crl(path: str | Path) -> x509.CertificateRevocationList:
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


class TrustStore:
    """Trust anchors (e.g. the national root), intermediates (the republican CA) and their CRLs."""

    def __init__(self, anchors: Iterable[x509.Certificate], intermediates: Iterable[x509.Certificate] = (),
                 crls: Iterable[x509.CertificateRevocationList] = ()) -> None:
        self.anchors: tuple[x509.Certificate, ...] = tuple(anchors)
        if not self.anchors:
            raise ValueError("a TrustStore needs at least one trust anchor")
        self.intermediates: tuple[x509.Certificate, ...] = tuple(intermediates)
        self._anchor_fingerprints = {certificate_fingerprint(c) for c in self.anchors}
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in (*self.anchors, *self.intermediates):
            self._by_subject.setdefault(cert.subject, []).append(cert)
        self._crls: list[x509.CertificateRevocationList] = []
        self._lock = threading.Lock()
        # (fingerprint, hour) -> (chain, valid from, valid until): a hit still checks `at` against the window.
        self._cache: dict[tuple[str, int], tuple[list[x509.Certificate], dt.datetime, dt.datetime]] = {}
        for crl in crls:
            self.add_crl(crl)

    @classmethod
    def from_paths(cls, trust: str | Path, crls: Iterable[str | Path] = ()) -> "TrustStore":
        """Certificates from a PEM bundle or a directory; self-signed ones are anchors, the rest intermediates.

        CRL files (*.crl) found in a trust directory are loaded too, besides those in `crls`.
        """
        trust = Path(trust)
        certs = load_certificates(trust)
        anchors = [c for c in certs if _is_self_signed(c)]
        intermediates = [c for c in certs if not _is_self_signed(c)]
        if not anchors:
            raise ValueError(f"{trust}: no self-signed root certificate to use as a trust anchor")
        crl_paths = [Path(p) for p in crls]
        if trust.is_dir():
            crl_paths += sorted(p for p in trust.iterdir() if p.suffix.lower() in CRL_SUFFIXES)
        return cls(anchors, intermediates, [load_crl(p) for p in crl_paths])

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return tuple(self._crls)

    def add_crl(self, crl: x509.CertificateRevocationList) -> None:
        """Add (or replace, by issuer) a CRL; forgets every cached result since revocations may change them."""
        with self._lock:
            self._crls = [c for c in self._crls if c.issuer != crl.issuer] + [crl]
            self._cache.clear()

    # ------------------------------------------------------------ validation

    def validate(self, cert: x509.Certificate, *, at: dt.datetime | None = None) -> list[x509.Certificate]:
        """The chain [cert, ..., anchor] if `cert` is trusted at `at` (default now); else UntrustedCertificate."""
        at = at or dt.datetime.now(dt.timezone.utc)
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.timezone.utc)
        key = (certificate_fingerprint(cert), int(at.timestamp()) // 3600)
        hit = self._cache.get(key)
        if hit is not None and hit[1] <= at <= hit[2]:
            return list(hit[0])
        chain = self._build_chain(cert)
        valid_until = self._check_chain(chain, at)
        valid_from = max(c.not_valid_before_utc for c in chain)
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: a stream of distinct certificates cannot grow it forever
                self._cache.clear()
            self._cache[key] = (chain, valid_from, valid_until)
        return list(chain)

    def _issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        # One signature check for every algorithm (RSA, ECDSA, bign): signing.algorithms picks it by OID.
        for candidate in self._by_subject.get(cert.issuer, ()):
            if certificate_issued_by(cert, candidate):
                return candidate
        return None

    def _build_chain(self, cert: x509.Certificate) -> list[x509.Certificate]:
        chain = [cert]
        current = cert
        while certificate_fingerprint(current) not in self._anchor_fingerprints:
            if len(chain) > MAX_CHAIN:
                raise UntrustedCertificate(f"certificate chain of {_subject(cert)} is longer than {MAX_CHAIN}")
            issuer = self._issuer_of(current)
            if issuer is None:
                if current.issuer == current.subject:
                    raise UntrustedCertificate(
                        f"{_subject(current)} is a self-signed certificate that is not a trust anchor")
                known = current.issuer in self._by_subject
                reason = ("but no configured CA of that name signed it (unknown CA)" if known
                          else "which is not a configured CA (unknown CA)")
                raise UntrustedCertificate(
                    f"certificate {_subject(current)} was issued by {current.issuer.rfc4514_string()}, {reason}")
            chain.append(issuer)
            current = issuer
        return chain

    def _check_chain(self, chain: Sequence[x509.Certificate], at: dt.datetime) -> dt.datetime:
        """Every rule along the chain; returns until when the result holds (earliest not_after / CRL next_update)."""
        valid_until = min(c.not_valid_after_utc for c in chain)
        for position, cert in enumerate(chain):
            subject = _subject(cert)
            if at < cert.not_valid_before_utc:
                raise UntrustedCertificate(f"certificate {subject} is not yet valid "
                                           f"(valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z)")
            if at > cert.not_valid_after_utc:
                raise UntrustedCertificate(
                    f"certificate {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z")
            usage = _extension(cert, x509.KeyUsage)
            if position == 0:
                if usage is not None and not (usage.digital_signature or usage.content_commitment):
                    raise UntrustedCertificate(
                        f"certificate {subject} has the wrong key usage: neither digitalSignature nor nonRepudiation")
            else:
                constraints = _extension(cert, x509.BasicConstraints)
                if constraints is None or not constraints.ca:
                    raise UntrustedCertificate(
                        f"certificate {subject} is not a CA (basicConstraints CA:TRUE missing)")
                below = position - 1  # CA certificates under this one, not counting the leaf
                if constraints.path_length is not None and below > constraints.path_length:
                    raise UntrustedCertificate(f"CA {subject} allows {constraints.path_length} CA(s) below it "
                                               f"(pathlen), the chain has {below}")
                if usage is not None and not usage.key_cert_sign:
                    raise UntrustedCertificate(f"CA {subject} has the wrong key usage: keyCertSign missing")
            if position + 1 < len(chain):
                until = self._check_revocation(cert, chain[position + 1], at)
                if until is not None:
                    valid_until = min(valid_until, until)
        return valid_until

    def _check_revocation(self, cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
                          ) -> dt.datetime | None:
        """Raise if a CRL of `issuer` revokes `cert` as of `at`; returns that CRL's next_update."""
        crl = next((c for c in self._crls if c.issuer == issuer.subject), None)
        if crl is None:
            return None  # no revocation information configured for this CA
        issuer_name = _subject(issuer)
        if not crl_signed_by(crl, issuer):
            raise UntrustedCertificate(f"the CRL of {issuer_name} has an invalid signature")
        usage = _extension(issuer, x509.KeyUsage)
        if usage is not None and not usage.crl_sign:
            raise UntrustedCertificate(f"CA {issuer_name} signed a CRL without the cRLSign key usage")
        next_update = crl.next_update_utc
        if next_update is not None and at > next_update:
            raise UntrustedCertificate(
                f"the CRL of {issuer_name} is out of date (next update was due {next_update:%Y-%m-%d %H:%M:%S}Z)")
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None:
            if revoked.revocation_date_utc <= at:
                raise UntrustedCertificate(
                    f"certificate {_subject(cert)} was revoked on {revoked.revocation_date_utc:%Y-%m-%d %H:%M:%S}Z")
            # Trusted at `at`, but only until the revocation: a cached result must not outlive it.
            until = revoked.revocation_date_utc - dt.timedelta(microseconds=1)
            return until if next_update is None else min(next_update, until)
        return next_update
