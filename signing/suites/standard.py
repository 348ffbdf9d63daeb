"""The international suite: RSA (PKCS#1 v1.5) and ECDSA with SHA-2, on `cryptography`."""
from __future__ import annotations

import hashlib
from functools import partial

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from signing.suite import DigestAlgorithm, KeyKind, SignatureAlgorithm, Suite

_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
MIN_RSA_BITS = 2048


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _rsa_check(key: rsa.RSAPublicKey) -> str | None:
    if key.key_size < MIN_RSA_BITS:
        return f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are needed"
    return None


def _ec_check(key: ec.EllipticCurvePublicKey) -> str | None:
    return None if key.curve.name == "secp256r1" else f"the EC key is on {key.curve.name}, not P-256"


RSA = KeyKind(
    name="rsa", is_private=lambda k: isinstance(k, rsa.RSAPrivateKey), is_public=lambda k: isinstance(k, rsa.RSAPublicKey),
    public_bytes=_public_der, default_digest="sha256", check_public=_rsa_check,
    generate=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC = KeyKind(
    name="ec", is_private=lambda k: isinstance(k, ec.EllipticCurvePrivateKey),
    is_public=lambda k: isinstance(k, ec.EllipticCurvePublicKey), public_bytes=_public_der, default_digest="sha256",
    check_public=_ec_check, generate=lambda: ec.generate_private_key(ec.SECP256R1()))


def _rsa_sign(digest: str, key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    return key.sign(data, padding.PKCS1v15(), _HASHES[digest])


def _rsa_verify(digest: str, key: rsa.RSAPublicKey, value: bytes, data: bytes) -> bool:
    try:
        key.verify(value, data, padding.PKCS1v15(), _HASHES[digest])
    except InvalidSignature:
        return False
    return True


def _ecdsa_sign(digest: str, key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(_HASHES[digest]))


def _ecdsa_verify(digest: str, key: ec.EllipticCurvePublicKey, value: bytes, data: bytes) -> bool:
    try:
        key.verify(value, data, ec.ECDSA(_HASHES[digest]))
    except InvalidSignature:
        return False
    return True


def _ecdsa_to_xml(value: bytes) -> bytes:
    r, s = decode_dss_signature(value)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _ecdsa_from_xml(value: bytes) -> bytes:
    if len(value) != 64:
        raise ValueError(f"an ECDSA P-256 SignatureValue is 64 bytes (r||s), found {len(value)}")
    return encode_dss_signature(int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big"))


_DIGEST_URIS = {
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha384": _MORE + "sha384",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
}
_DIGEST_OIDS = {"sha256": "2.16.840.1.101.3.4.2.1", "sha384": "2.16.840.1.101.3.4.2.2", "sha512": "2.16.840.1.101.3.4.2.3"}
_RSA_OIDS = {"sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12", "sha512": "1.2.840.113549.1.1.13"}
# CMS SignerInfo labels (asn1crypto's names): the hash is the SignerInfo's digestAlgorithm, whatever the label says
_RSA_CMS_NAMES = ("rsassa_pkcs1v15", "sha256_rsa", "sha384_rsa", "sha512_rsa")
_ECDSA_CMS_NAMES = ("ecdsa", "sha256_ecdsa", "sha384_ecdsa", "sha512_ecdsa")
_ECDSA_OIDS = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3", "sha512": "1.2.840.10045.4.3.4"}

SUITE = Suite(
    name="international (RSA, ECDSA, SHA-2)",
    key_kinds=(RSA, EC),
    digests=tuple(
        DigestAlgorithm(name=name, xml_uris=(_DIGEST_URIS[name],), oid=_DIGEST_OIDS[name],
                        new=partial(hashlib.new, name), cms_names=(name,))
        for name in ("sha256", "sha384", "sha512")),
    signatures=(
        *(SignatureAlgorithm(
            name=f"rsa-{d}", key_kind="rsa", digest=d, xml_uris=(_MORE + f"rsa-{d}",), x509_oid=_RSA_OIDS[d],
            x509_parameters_null=True, sign=partial(_rsa_sign, d), verify=partial(_rsa_verify, d),
            cms_names=_RSA_CMS_NAMES) for d in ("sha256", "sha384", "sha512")),
        *(SignatureAlgorithm(
            name=f"ecdsa-{d}", key_kind="ec", digest=d,
            # the hub's XML profile: ECDSA-SHA256 on P-256 only
            xml_uris=(_MORE + "ecdsa-sha256",) if d == "sha256" else (), x509_oid=_ECDSA_OIDS[d],
            x509_parameters_null=False, sign=partial(_ecdsa_sign, d), verify=partial(_ecdsa_verify, d),
            cms_names=_ECDSA_CMS_NAMES, to_xml=_ecdsa_to_xml, from_xml=_ecdsa_from_xml)
          for d in ("sha256", "sha384", "sha512")),
    ),
)
