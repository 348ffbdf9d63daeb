"""What an algorithm suite declares: its key kind, digests and signature algorithms.

A suite (signing/suites/*.py) is one module exposing `SUITE`; `signing.algorithms` lists the
suites and answers every lookup (by XML URI, by OID, by key) from them. XMLDSig, CMS,
certificates, CRLs and path validation all go through those lookups, so adding a national suite
is one module plus one line in `signing.algorithms.SUITES`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


class Hasher(Protocol):
    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class DigestAlgorithm:
    name: str  # "sha256", "belt-hash"
    xml_uris: tuple[str, ...]  # the first is what the hub writes; all are accepted
    oid: str
    new: Callable[[], Hasher]
    cms_names: tuple[str, ...] = ()  # how asn1crypto names the OID, when it knows it

    def hash(self, data: bytes) -> bytes:
        hasher = self.new()
        hasher.update(data)
        return hasher.digest()


@dataclass(frozen=True)
class SignatureAlgorithm:
    """One signature algorithm: `sign`/`verify` work on the message itself (hashing inside).

    Values are in X.509/CMS form (for ECDSA a DER SEQUENCE of r, s); `to_xml`/`from_xml`
    convert to the XMLDSig SignatureValue form where it differs (ECDSA's fixed-size r || s).
    """

    name: str  # "rsa-sha256", "ecdsa-sha256", "bign-with-hbelt"
    key_kind: str  # the KeyKind.name it needs
    digest: str  # the DigestAlgorithm.name it hashes with
    xml_uris: tuple[str, ...]
    x509_oid: str  # signatureAlgorithm in certificates and CRLs
    x509_parameters_null: bool  # AlgorithmIdentifier carries NULL parameters (RSA, bign) or none (ECDSA)
    sign: Callable[[Any, bytes], bytes]
    verify: Callable[[Any, bytes, bytes], bool]
    cms_names: tuple[str, ...] = ()  # SignerInfo.signatureAlgorithm values accepted (asn1crypto names or OIDs)
    to_xml: Callable[[bytes], bytes] = lambda value: value
    from_xml: Callable[[bytes], bytes] = lambda value: value


@dataclass(frozen=True)
class KeyKind:
    """A family of keys: how to recognise, describe, compare, make and read them."""

    name: str  # "rsa", "ec", "bign"
    is_private: Callable[[Any], bool]
    is_public: Callable[[Any], bool]
    public_bytes: Callable[[Any], bytes]  # a comparable encoding of a public key
    default_digest: str
    check_public: Callable[[Any], str | None] = lambda key: None  # None when acceptable, else why not
    generate: Callable[[], Any] | None = None
    spki_oid: str | None = None  # set when cryptography cannot read the key: the suite reads it
    public_from_spki: Callable[[bytes], Any] | None = None  # DER SubjectPublicKeyInfo -> public key
    spki: Callable[[Any], bytes] | None = None  # public key -> DER SubjectPublicKeyInfo
    private_from_pkcs8: Callable[[bytes], Any] | None = None
    pkcs8: Callable[[Any], bytes] | None = None  # private key -> DER PrivateKeyInfo


@dataclass(frozen=True)
class Suite:
    name: str
    key_kinds: tuple[KeyKind, ...]
    digests: tuple[DigestAlgorithm, ...]
    signatures: tuple[SignatureAlgorithm, ...]
    notes: dict[str, str] = field(default_factory=dict)
