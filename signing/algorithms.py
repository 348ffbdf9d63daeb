"""The one registry of signature and digest algorithms, built from the suites in `SUITES`.

Every layer asks here: XMLDSig (by URI), CMS (by asn1crypto name or OID), certificates and CRLs
(by X.509 OID, for building and for path validation), keys (which kind, its default algorithm,
the public key of a certificate). A key kind that `cryptography` cannot read (bign) is read by
its suite from the certificate's SubjectPublicKeyInfo.
"""
from __future__ import annotations

import threading
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signing.suite import DigestAlgorithm, KeyKind, SignatureAlgorithm, Suite
from signing.suites import standard, stb

SUITES: tuple[Suite, ...] = (standard.SUITE, stb.SUITE)  # a new suite: one module, one entry here

KEY_KINDS: dict[str, KeyKind] = {k.name: k for s in SUITES for k in s.key_kinds}
DIGESTS: dict[str, DigestAlgorithm] = {d.name: d for s in SUITES for d in s.digests}
SIGNATURES: dict[str, SignatureAlgorithm] = {a.name: a for s in SUITES for a in s.signatures}

DIGESTS_BY_URI: dict[str, DigestAlgorithm] = {u: d for d in DIGESTS.values() for u in d.xml_uris}
SIGNATURES_BY_URI: dict[str, SignatureAlgorithm] = {u: a for a in SIGNATURES.values() for u in a.xml_uris}
DIGESTS_BY_CMS_NAME: dict[str, DigestAlgorithm] = {n: d for d in DIGESTS.values() for n in (*d.cms_names, d.oid)}
SIGNATURES_BY_X509_OID: dict[str, SignatureAlgorithm] = {a.x509_oid: a for a in SIGNATURES.values()}
_KINDS_BY_SPKI_OID: dict[str, KeyKind] = {k.spki_oid: k for k in KEY_KINDS.values() if k.spki_oid}


class UnsupportedKey(ValueError):
    """A key of no registered kind."""


def key_kind(key: Any) -> KeyKind:
    """The kind of a private or public key object."""
    for kind in KEY_KINDS.values():
        if kind.is_private(key) or kind.is_public(key):
            return kind
    raise UnsupportedKey(f"unsupported key type {type(key).__name__}; known: {', '.join(KEY_KINDS)}")


def signature_for(key: Any, digest: str | None = None) -> SignatureAlgorithm:
    """The signature algorithm a key signs with, for `digest` (default: its kind's)."""
    kind = key_kind(key)
    digest = digest or kind.default_digest
    for algorithm in SIGNATURES.values():
        if algorithm.key_kind == kind.name and algorithm.digest == digest:
            return algorithm
    raise ValueError(f"a {kind.name} key cannot sign with digest {digest!r}")


def generate_key(kind_name: str) -> Any:
    kind = KEY_KINDS.get(kind_name)
    if kind is None or kind.generate is None:
        raise ValueError(f"unknown key type {kind_name!r}: use one of {', '.join(KEY_KINDS)}")
    return kind.generate()


def same_public_key(a: Any, b: Any) -> bool:
    kind = key_kind(a)
    return kind.is_public(b) and kind.public_bytes(a) == kind.public_bytes(b)


# ---------------------------------------------------------------- keys in files and certificates


def private_key_der(key: Any) -> bytes:
    """PKCS#8 DER of a private key of any kind (unencrypted: the test PKI's keys are files 0600)."""
    kind = key_kind(key)
    if kind.pkcs8 is not None:
        return kind.pkcs8(key)
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key_der(data: bytes, password: bytes | None = None) -> Any:
    algorithm = _pkcs8_algorithm(data)
    kind = _KINDS_BY_SPKI_OID.get(algorithm or "")
    if kind is not None:
        if password is not None:
            raise ValueError(f"encrypted {kind.name} keys are not supported")
        return kind.private_from_pkcs8(data)
    key = serialization.load_der_private_key(data, password=password)
    key_kind(key)  # refuse kinds no suite signs with (DSA, Ed25519...)
    return key


def _pkcs8_algorithm(data: bytes) -> str | None:
    """The algorithm OID of an unencrypted PKCS#8 structure, or None if it is not one."""
    try:
        return stb.PrivateKeyInfo.load(data)["algorithm"]["algorithm"].dotted
    except (ValueError, TypeError, KeyError):
        return None  # not PKCS#8 (or encrypted): cryptography's loader says what it is


def spki_der(public: Any) -> bytes:
    kind = key_kind(public)
    if kind.spki is not None:
        return kind.spki(public)
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


_public_keys: dict[int, tuple[x509.Certificate, Any]] = {}
_public_keys_lock = threading.Lock()


def certificate_public_key(cert: x509.Certificate) -> Any:
    """The certificate's public key, of any registered kind (cached by certificate object)."""
    entry = _public_keys.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    kind = _KINDS_BY_SPKI_OID.get(cert.public_key_algorithm_oid.dotted_string)
    if kind is not None:
        spki = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))[
            "tbs_certificate"]["subject_public_key_info"].dump()
        key = kind.public_from_spki(spki)
    else:
        key = cert.public_key()
    with _public_keys_lock:
        if len(_public_keys) >= 4096:
            _public_keys.clear()
        _public_keys[id(cert)] = (cert, key)
    return key


# ---------------------------------------------------------------- X.509 signatures (certificates, CRLs)


def x509_signature(signature_oid: str) -> SignatureAlgorithm | None:
    return SIGNATURES_BY_X509_OID.get(signature_oid)


def verify_signed_by(issuer: x509.Certificate, signature_oid: str, signature: bytes, signed: bytes) -> bool:
    """Whether `issuer`'s key made `signature` (algorithm `signature_oid`) over `signed`."""
    algorithm = x509_signature(signature_oid)
    if algorithm is None:
        return False
    try:
        key = certificate_public_key(issuer)
    except ValueError:
        return False
    if key_kind(key).name != algorithm.key_kind:
        return False
    return algorithm.verify(key, signature, signed)


def certificate_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` names and signed `cert`: the path validation's one signature check."""
    if cert.issuer != issuer.subject:
        return False
    return verify_signed_by(issuer, cert.signature_algorithm_oid.dotted_string, cert.signature,
                            cert.tbs_certificate_bytes)


def crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    return verify_signed_by(issuer, crl.signature_algorithm_oid.dotted_string, crl.signature, crl.tbs_certlist_bytes)
