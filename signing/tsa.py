"""RFC 3161 time-stamps: ask a time-stamping authority (TSA) to stamp data, verify a token, and
answer requests as a TSA (the test PKI's, `smdo pki tsa serve`).

The ASN.1 is asn1crypto's (`tsp`, `cms`); signatures are cryptography's. A token is a CMS SignedData
whose content is a TSTInfo (the data's hash, the time, the request's nonce), signed by a certificate
whose extendedKeyUsage is (only, and critically) timeStamping.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import urllib.error
import urllib.request

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature as _BadSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.errors import SignatureError
from signing.keys import Signer
from signing.trust import TrustStore

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
MAX_RESPONSE_BYTES = 64 * 1024
TEST_POLICY = "1.3.6.1.4.1.55555.1.1"  # the test TSA's policy (an example arc: a test PKI only)


class TimestampError(Exception):
    """A time-stamp request failed, or a token does not verify; the message says which part."""


def timestamp_request(data: bytes, nonce: int) -> bytes:
    """DER TimeStampReq for SHA-256 of `data`, asking for the TSA's certificate in the token."""
    return tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(data).digest()},
        "nonce": nonce,
        "cert_req": True,
    }).dump()


def request_timestamp(url: str, data: bytes, *, timeout: float = 10.0, trust: TrustStore | None = None) -> bytes:
    """Ask the TSA at `url` (HTTP POST, application/timestamp-query) to stamp `data`; the DER token,
    checked (imprint, nonce, signature, and chain to `trust` when given)."""
    nonce = secrets.randbits(63)
    request = urllib.request.Request(url, data=timestamp_request(data, nonce), method="POST",
                                     headers={"Content-Type": "application/timestamp-query"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise TimestampError(f"the TSA at {url} did not answer: {exc}") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise TimestampError(f"the TSA's answer exceeds {MAX_RESPONSE_BYTES} bytes")
    try:
        answer = tsp.TimeStampResp.load(body, strict=True)
        status = answer["status"]["status"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"the TSA's answer is not a TimeStampResp: {exc}") from None
    if status not in ("granted", "granted_with_mods"):
        text = answer["status"]["status_string"].native
        raise TimestampError(f"the TSA refused: {status} {text or ''}".strip())
    token = answer["time_stamp_token"].dump()
    info = verify_timestamp(token, data, trust)
    if info["nonce"].native != nonce:
        raise TimestampError("the TSA's token answers another request (nonce differs)")
    return token


def verify_timestamp(token: bytes, data: bytes, trust: TrustStore | None = None) -> tsp.TSTInfo:
    """The token's TSTInfo if it stamps `data`, its signature verifies with the TSA certificate it
    carries, that certificate is for time-stamping and (with `trust`) chains to it at the stamped time."""
    try:
        content = cms.ContentInfo.load(token, strict=True)
        if content["content_type"].native != "signed_data":
            raise TimestampError("the token is not a CMS SignedData")
        signed = content["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TimestampError("the token's content is not a TSTInfo")
        tst_der = encap["content"].contents
        info = tsp.TSTInfo.load(tst_der, strict=True)
        imprint = info["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in _HASHES:
            raise TimestampError(f"the token hashes with {algorithm}, which is not accepted")
        if not hmac.compare_digest(hashlib.new(algorithm, data).digest(), imprint["hashed_message"].native):
            raise TimestampError("the token stamps other data (message imprint differs)")
        [signer_info] = signed["signer_infos"]
        certificate = _signer_certificate(signed, signer_info)
        _check_signature(signer_info, certificate, tst_der)
        stamped_at = info["gen_time"].native
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"the token is malformed: {exc}") from None
    _check_tsa_certificate(certificate)
    if trust is not None:
        try:
            trust.validate(certificate, at=stamped_at)
        except SignatureError as exc:
            raise TimestampError(f"the TSA's certificate is not trusted: {exc.message}") from None
    return info


def _signer_certificate(signed: cms.SignedData, signer_info: cms.SignerInfo) -> x509.Certificate:
    sid = signer_info["sid"]
    for choice in signed["certificates"] or []:
        cert = choice.chosen
        if not isinstance(cert, asn1_x509.Certificate):
            continue
        if sid.name == "issuer_and_serial_number":
            if cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native:
                return x509.load_der_x509_certificate(cert.dump())
        elif cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise TimestampError("the token does not carry the TSA's certificate")


def _check_signature(signer_info: cms.SignerInfo, certificate: x509.Certificate, tst_der: bytes) -> None:
    digest = signer_info["digest_algorithm"]["algorithm"].native
    if digest not in _HASHES:
        raise TimestampError(f"the token is signed with {digest}, which is not accepted")
    attrs = signer_info["signed_attrs"]
    values = {a["type"].native: a["values"] for a in attrs}
    if values.get("content_type") is None or values["content_type"][0].native != "tst_info":
        raise TimestampError("the token's signed attributes do not say its content is a TSTInfo")
    if values.get("message_digest") is None or not hmac.compare_digest(
            hashlib.new(digest, tst_der).digest(), values["message_digest"][0].native):
        raise TimestampError("the token's TSTInfo was changed after signing (messageDigest differs)")
    signed_bytes = b"\x31" + attrs.dump()[1:]  # signed as a SET OF, stored as [0] IMPLICIT
    signature = signer_info["signature"].native
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), _HASHES[digest])
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(_HASHES[digest]))
        else:
            raise TimestampError(f"the TSA's key type {type(key).__name__} is not supported")
    except _BadSignature:
        raise TimestampError("the token's signature does not verify with the TSA's certificate") from None


def _check_tsa_certificate(certificate: x509.Certificate) -> None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError("the TSA's certificate has no extendedKeyUsage timeStamping") from None
    if list(usage.value) != [ExtendedKeyUsageOID.TIME_STAMPING] or not usage.critical:
        raise TimestampError("the TSA's certificate is not (only, and critically) for timeStamping")


# --------------------------------------------------------------------------- answering as a TSA


def timestamp_response(request_der: bytes, signer: Signer, now: dt.datetime, serial: int,
                       policy: str = TEST_POLICY) -> bytes:
    """DER TimeStampResp to a DER TimeStampReq: granted with a token signed by `signer`, or rejection."""
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
    except (ValueError, TypeError, KeyError):
        return _rejection("bad_data_format", "not a TimeStampReq")
    if algorithm not in _HASHES or len(hashed) != _HASHES[algorithm].digest_size:
        return _rejection("bad_alg", f"hash algorithm {algorithm} is not accepted")
    tst = tsp.TSTInfo({
        "version": "v1",
        "policy": policy,
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": hashed},
        "serial_number": serial,
        "gen_time": now.astimezone(dt.timezone.utc),
        "nonce": request["nonce"].native,
    })
    tst_der = tst.dump()
    cert = asn1_x509.Certificate.load(signer.certificate.public_bytes(serialization.Encoding.DER))
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "signing_time", "values": [cms.Time({"utc_time": core.UTCTime(now.astimezone(dt.timezone.utc))})]},
        {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
        {"type": "signing_certificate_v2", "values": [{"certs": [{"cert_hash": hashlib.sha256(cert.dump()).digest()}]}]},
    ])
    if isinstance(signer.key, rsa.RSAPrivateKey):
        signature = signer.key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
        signature_algorithm = "sha256_rsa"
    else:
        signature = signer.key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signature_algorithm = "sha256_ecdsa"
    signed = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(tst_der)},
        "certificates": [cert] if request["cert_req"].native else [],
        "signer_infos": [{
            "version": "v1",
            "sid": {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}},
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": signature_algorithm},
            "signature": signature,
        }],
    })
    return tsp.TimeStampResp({
        "status": {"status": "granted"},
        "time_stamp_token": {"content_type": "signed_data", "content": signed},
    }).dump()


def _rejection(failure: str, text: str) -> bytes:
    return tsp.TimeStampResp({"status": {"status": "rejection", "status_string": [text],
                                         "fail_info": {failure}}}).dump()
