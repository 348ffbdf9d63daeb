"""Building X.509 certificates and CRLs signed with any registered algorithm (RSA, ECDSA, bign).

`cryptography`'s builders sign only with its own key types and cannot put a bign key into a
certificate, so the TBS structures are assembled here from DER pieces: names and extension
values come from `cryptography` (`public_bytes()`), the key's SubjectPublicKeyInfo and the
signature from `signing.algorithms`. The result is parsed back with `cryptography`, which
reads certificates and CRLs of any algorithm, so the rest of the code keeps one certificate type.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Sequence

from cryptography import x509

from signing import algorithms, der

Extension = tuple[x509.ExtensionType, bool]  # (value, critical)


def _algorithm_identifier(signature: algorithms.SignatureAlgorithm) -> bytes:
    return der.sequence(der.oid(signature.x509_oid), der.NULL if signature.x509_parameters_null else b"")


def _extensions(extensions: Sequence[Extension]) -> bytes:
    items = []
    for value, critical in extensions:
        items.append(der.sequence(der.oid(value.oid.dotted_string), der.boolean(True) if critical else b"",
                                  der.octet_string(value.public_bytes())))
    return der.sequence(*items)


def _signed(tbs: bytes, issuer_key: Any, digest: str | None) -> bytes:
    signature = algorithms.signature_for(issuer_key, digest)
    value = signature.sign(issuer_key, tbs)
    return der.sequence(tbs, _algorithm_identifier(signature), der.bit_string(value))


def subject_key_identifier(public_key: Any) -> x509.SubjectKeyIdentifier:
    """RFC 5280 method 1: SHA-1 of the subjectPublicKey bits, for every key kind."""
    kind = algorithms.key_kind(public_key)
    if kind.spki is None:
        return x509.SubjectKeyIdentifier.from_public_key(public_key)
    # a suite-read key's public_bytes are exactly its subjectPublicKey bits (bign: x || y)
    return x509.SubjectKeyIdentifier(hashlib.sha1(kind.public_bytes(public_key)).digest())


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = subject_key_identifier(algorithms.certificate_public_key(issuer))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def build_certificate(*, subject: x509.Name, issuer: x509.Name, public_key: Any, issuer_key: Any,
                      serial: int, not_before: dt.datetime, not_after: dt.datetime,
                      extensions: Sequence[Extension], digest: str | None = None) -> x509.Certificate:
    """A v3 certificate for `public_key`, signed by `issuer_key` with its kind's algorithm."""
    signature = algorithms.signature_for(issuer_key, digest)
    tbs = der.sequence(
        der.explicit(0, der.integer(2)),
        der.integer(serial),
        _algorithm_identifier(signature),
        issuer.public_bytes(),
        der.sequence(der.time(not_before), der.time(not_after)),
        subject.public_bytes(),
        algorithms.spki_der(public_key),
        der.explicit(3, _extensions(extensions)),
    )
    return x509.load_der_x509_certificate(_signed(tbs, issuer_key, digest))


def build_crl(*, issuer: x509.Name, issuer_key: Any, last_update: dt.datetime, next_update: dt.datetime,
              revoked: Sequence[tuple[int, dt.datetime]], extensions: Sequence[Extension],
              digest: str | None = None) -> x509.CertificateRevocationList:
    """A v2 CRL listing `revoked` (serial, revocation date), signed by `issuer_key`."""
    signature = algorithms.signature_for(issuer_key, digest)
    entries = b"".join(der.sequence(der.integer(serial), der.time(when)) for serial, when in revoked)
    tbs = der.sequence(
        der.integer(1),
        _algorithm_identifier(signature),
        issuer.public_bytes(),
        der.time(last_update),
        der.time(next_update),
        der.sequence(entries) if revoked else b"",
        der.explicit(0, _extensions(extensions)),
    )
    return x509.load_der_x509_crl(_signed(tbs, issuer_key, digest))
