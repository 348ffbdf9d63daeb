"""Detached CMS (PKCS#7) signatures of single files: the legal signatures in DocTransfer/Signature.

Signing uses cryptography's PKCS7SignatureBuilder. Verification parses the CMS SignedData with
asn1crypto (cryptography has no CMS verifier) and checks each piece with cryptography:
messageDigest against the data, the signature over the signed attributes, then, if a TrustStore
is given, the signer's certificate path.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from signing.errors import InvalidSignature
from signing.keys import Signer
from signing.trust import TrustStore

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(),
}
_WEAK = {"sha1": "SHA-1", "md5": "MD5", "md2": "MD2", "sha224": "SHA-224"}


def sign_detached(data: bytes, signer: Signer, *, digest: str = "sha256") -> bytes:
    """DER CMS SignedData over `data` (not included), with signed attributes and the signer's certificate."""
    if digest not in _HASHES:
        raise ValueError(f"digest must be one of {sorted(_HASHES)}, not {digest!r}")
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(
        signer.certificate, signer.key, _HASHES[digest])
    for cert in signer.chain:
        builder = builder.add_certificate(cert)
    # Binary: sign the bytes as they are (without it, line ends would be rewritten to MIME's CRLF).
    return builder.sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])


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
    if digest_name not in _HASHES:
        raise InvalidSignature(f"CMS digest algorithm {digest_name} is not supported")
    hash_algorithm = _HASHES[digest_name]
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
    if not hmac.compare_digest(hashlib.new(digest_name, data).digest(), expected):
        raise InvalidSignature("the file's digest does not match the CMS messageDigest: it was changed after signing")

    # The signature covers the DER of the attributes as a SET OF (tag 0x31), not as the [0] IMPLICIT
    # field they are stored in; the contents are taken as they arrived, not re-encoded.
    to_verify = b"\x31" + signed_attrs.dump()[1:]
    _check(certificate, info["signature_algorithm"]["algorithm"].native, info["signature"].native,
           to_verify, hash_algorithm)
    if trust is not None:
        trust.validate(certificate, at=at)
    return certificate


def _signed_data(signature: bytes) -> asn1_cms.SignedData:
    if signature.lstrip().startswith(b"-----BEGIN"):
        signature = _pem_to_der(signature)
    try:
        content_info = asn1_cms.ContentInfo.load(signature, strict=True)
        if content_info["content_type"].native != "signed_data":
            raise InvalidSignature(f"CMS content is {content_info['content_type'].native}, not signedData")
        signed_data = content_info["content"]
        signed_data.native  # parse everything now so a malformed structure fails here, as -21
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
           hash_algorithm: hashes.HashAlgorithm) -> None:
    key = certificate.public_key()
    subject = certificate.subject.rfc4514_string()
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm in (
                "rsassa_pkcs1v15", "sha256_rsa", "sha384_rsa", "sha512_rsa"):
            key.verify(value, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm in (
                "ecdsa", "sha256_ecdsa", "sha384_ecdsa", "sha512_ecdsa"):
            key.verify(value, data, ec.ECDSA(hash_algorithm))
        else:
            raise InvalidSignature(f"CMS signature algorithm {algorithm} does not fit the key of {subject}")
    except _CryptoInvalidSignature:
        raise InvalidSignature(f"the CMS signature value does not verify with the key of {subject}") from None
