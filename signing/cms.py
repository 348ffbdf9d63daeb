"""Detached CMS (PKCS#7) signatures of single files: the legal signatures in DocTransfer/Signature.

Signing uses cryptography's PKCS7SignatureBuilder for RSA/EC keys (proved against OpenSSL in the
tests) and a DER builder here for keys cryptography does not know (bign: digest belt-hash,
signatureAlgorithm bign-with-hbelt, the 48-octet value in the OCTET STRING). Verification parses
the CMS SignedData with asn1crypto (cryptography has no CMS verifier) and checks each piece through
`signing.algorithms`: messageDigest against the data, the signature over the signed attributes,
then, if a TrustStore is given, the signer's certificate path. Real GosSUOK signatures label the
SignerInfo's algorithm with the key's OID (bign-pubkey), which is accepted as bign-with-hbelt.
"""
from __future__ import annotations

import datetime as dt
import hmac

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from signing import algorithms, der
from signing.errors import InvalidSignature
from signing.keys import Signer
from signing.suite import DigestAlgorithm
from signing.trust import TrustStore

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(),
}
_WEAK = {"sha1": "SHA-1", "md5": "MD5", "md2": "MD2", "sha224": "SHA-224"}


_DATA = "1.2.840.113549.1.7.1"
_SIGNED_DATA = "1.2.840.113549.1.7.2"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"


def sign_detached(data: bytes, signer: Signer, *, digest: str | None = None) -> bytes:
    """DER CMS SignedData over `data` (not included), with signed attributes and the signer's certificate.

    digest: "sha256" (default for RSA/EC), "sha384", "sha512"; bign keys always use belt-hash.
    """
    if algorithms.key_kind(signer.key).pkcs8 is not None:  # a key cryptography cannot sign with
        return _sign_detached_der(data, signer, digest)
    digest = digest or "sha256"
    if digest not in _HASHES:
        raise ValueError(f"digest must be one of {sorted(_HASHES)}, not {digest!r}")
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(
        signer.certificate, signer.key, _HASHES[digest])
    for cert in signer.chain:
        builder = builder.add_certificate(cert)
    # Binary: sign the bytes as they are (without it, line ends would be rewritten to MIME's CRLF).
    return builder.sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])


def _sign_detached_der(data: bytes, signer: Signer, digest: str | None) -> bytes:
    algorithm = algorithms.signature_for(signer.key, digest)
    digest_algorithm = algorithms.DIGESTS[algorithm.digest]
    digest_id = der.sequence(der.oid(digest_algorithm.oid), der.NULL)
    attributes = [
        der.sequence(der.oid(_CONTENT_TYPE), der.set_of(der.oid(_DATA))),
        der.sequence(der.oid(_SIGNING_TIME), der.set_of(der.time(dt.datetime.now(dt.timezone.utc)))),
        der.sequence(der.oid(_MESSAGE_DIGEST), der.set_of(der.octet_string(digest_algorithm.hash(data)))),
    ]
    signed_attributes = der.set_of(*attributes)
    value = algorithm.sign(signer.key, signed_attributes)  # over the SET OF encoding (RFC 5652 5.4)
    certificate = signer.certificate
    signer_info = der.sequence(
        der.integer(1),
        der.sequence(certificate.issuer.public_bytes(), der.integer(certificate.serial_number)),
        digest_id,
        der.explicit(0, _contents(signed_attributes)),  # [0] IMPLICIT SET OF: same contents, context tag
        der.sequence(der.oid(algorithm.x509_oid), der.NULL if algorithm.x509_parameters_null else b""),
        der.octet_string(value),
    )
    certificates = b"".join(c.public_bytes(Encoding.DER) for c in (certificate, *signer.chain))
    signed_data = der.sequence(
        der.integer(1),
        der.set_of(digest_id),
        der.sequence(der.oid(_DATA)),  # detached: no eContent
        der.explicit(0, certificates),
        der.set_of(signer_info),
    )
    return der.sequence(der.oid(_SIGNED_DATA), der.explicit(0, signed_data))


def _contents(encoded: bytes) -> bytes:
    """The contents octets of one DER TLV."""
    length = encoded[1]
    if length < 0x80:
        return encoded[2:]
    size = length & 0x7F
    return encoded[2 + size:]


def verify_detached(data: bytes, signature: bytes, trust: TrustStore | None = None, *,
                    at: dt.datetime | None = None) -> x509.Certificate:
    """The signer's certificate if `signature` (DER CMS, or PEM) is a valid signature of `data`.

    InvalidSignature (-21) if it is malformed or does not match; UntrustedCertificate (-23)
    if `trust` is given and the certificate does not chain to it.
    """
    signed_data = _signed_data(signature)
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise InvalidSignature(f"CMS signature has {len(signer_infos)} signerInfos; exactly one is expected")
    info = signer_infos[0]
    if signed_data["encap_content_info"]["content"].native is not None:
        raise InvalidSignature("CMS signature is not detached: it embeds content")

    digest_name = info["digest_algorithm"]["algorithm"].native
    if digest_name in _WEAK:
        raise InvalidSignature(f"CMS signature uses {_WEAK[digest_name]}, which is not accepted")
    digest_algorithm = algorithms.DIGESTS_BY_CMS_NAME.get(digest_name)
    if digest_algorithm is None:
        raise InvalidSignature(f"CMS digest algorithm {digest_name} is not supported")
    certificate = _signer_certificate(signed_data, info)

    signed_attrs = info["signed_attrs"]
    if signed_attrs.native is None:
        raise InvalidSignature("CMS signature has no signed attributes (messageDigest is required)")
    attributes = {attr["type"].native: attr["values"] for attr in signed_attrs}
    if "message_digest" not in attributes or len(attributes["message_digest"]) != 1:
        raise InvalidSignature("CMS signed attributes carry no single messageDigest")
    content_type = attributes.get("content_type")
    if content_type is None or content_type[0].native != "data":
        raise InvalidSignature("CMS signed attributes must carry contentType id-data")
    expected = attributes["message_digest"][0].native

    # The signature covers the DER of the attributes as a SET OF (tag 0x31), not as the [0] IMPLICIT
    # field they are stored in; the contents are taken as they arrived, not re-encoded.
    to_verify = b"\x31" + signed_attrs.dump()[1:]
    _check(certificate, info["signature_algorithm"]["algorithm"].native, info["signature"].native,
           to_verify, digest_algorithm)
    # Signer and trust before the file's digest: an untrusted signer must not make us hash a large
    # file (belt-hash costs ~1.3 us per byte in pure Python).
    if trust is not None:
        trust.validate(certificate, at=at)
    if not hmac.compare_digest(digest_algorithm.hash(data), expected):
        raise InvalidSignature("the file's digest does not match the CMS messageDigest: it was changed after signing")
    return certificate


def _signed_data(signature: bytes) -> asn1_cms.SignedData:
    if signature.lstrip().startswith(b"-----BEGIN"):
        signature = _pem_to_der(signature)
    try:
        content_info = asn1_cms.ContentInfo.load(signature, strict=True)
        if content_info["content_type"].native != "signed_data":
            raise InvalidSignature(f"CMS content is {content_info['content_type'].native}, not signedData")
        signed_data = content_info["content"]
        # Parse everything now so a malformed structure fails here, as -21; certificates only as
        # structures (asn1crypto cannot interpret a bign key; the registry reads it when needed).
        for field in ("version", "digest_algorithms", "encap_content_info", "signer_infos"):
            signed_data[field].native
        for choice in signed_data["certificates"] or ():
            choice.chosen["tbs_certificate"]["serial_number"].native
        return signed_data
    except InvalidSignature:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidSignature(f"not a CMS SignedData structure: {exc}") from None


def _pem_to_der(pem: bytes) -> bytes:
    import base64

    lines = [line for line in pem.decode("ascii", "replace").splitlines() if line and not line.startswith("-----")]
    try:
        return base64.b64decode("".join(lines), validate=True)
    except ValueError:
        raise InvalidSignature("the PEM CMS signature is not valid base64") from None


def _signer_certificate(signed_data: asn1_cms.SignedData, info: asn1_cms.SignerInfo) -> x509.Certificate:
    sid = info["sid"]
    for choice in signed_data["certificates"] or ():
        if choice.name != "certificate":
            continue
        candidate = choice.chosen
        if sid.name == "issuer_and_serial_number":
            match = (candidate.issuer == sid.chosen["issuer"]
                     and candidate.serial_number == sid.chosen["serial_number"].native)
        else:
            match = candidate.key_identifier == sid.chosen.native
        if match:
            return x509.load_der_x509_certificate(candidate.dump())
    raise InvalidSignature("CMS signature does not include the signer's certificate")


def _check(certificate: x509.Certificate, algorithm: str, value: bytes, data: bytes,
           digest: DigestAlgorithm) -> None:
    subject = certificate.subject.rfc4514_string()
    try:
        key = algorithms.certificate_public_key(certificate)
        method = algorithms.signature_for(key, digest.name)
    except ValueError:
        raise InvalidSignature(f"CMS signature algorithm {algorithm} with digest {digest.name} does not fit "
                               f"the key of {subject}") from None
    if algorithm not in method.cms_names:
        raise InvalidSignature(f"CMS signature algorithm {algorithm} does not fit the key of {subject}")
    if not method.verify(key, value, data):
        raise InvalidSignature(f"the CMS signature value does not verify with the key of {subject}")
