"""Detached CMS signatures with bign, including the labelling real GosSUOK signatures use."""
from __future__ import annotations

import pytest
from asn1crypto import cms as asn1_cms
from bign_fixtures import bign_pki  # noqa: F401 - fixture

from signing import algorithms, bign, der
from signing.cms import sign_detached, verify_detached
from signing.errors import InvalidSignature, UntrustedCertificate
from signing.pki import issue_certificate, revoke_certificate
from signing.suites import stb

DATA = b"%PDF-1.7 the signed order no. 42\n" * 50


def test_bign_cms_round_trip_with_the_national_identifiers(bign_pki) -> None:
    signer = bign_pki.signer("ORG-A")
    signature = sign_detached(DATA, signer)
    assert verify_detached(DATA, signature, bign_pki.trust_store()) == signer.certificate
    info = asn1_cms.ContentInfo.load(signature)["content"]["signer_infos"][0]
    assert info["digest_algorithm"]["algorithm"].dotted == stb.BELT_HASH
    assert info["signature_algorithm"]["algorithm"].dotted == stb.BIGN_WITH_HBELT
    assert len(info["signature"].native) == 48


def test_bign_cms_tampering_is_refused(bign_pki) -> None:
    signature = sign_detached(DATA, bign_pki.signer("ORG-A"))
    with pytest.raises(InvalidSignature, match="digest does not match"):
        verify_detached(DATA[:-1] + b"!", signature)
    raw = bytearray(signature)
    raw[-1] ^= 1  # the last octet of the 48-octet value
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_detached(DATA, bytes(raw))


def _relabelled(signature: bytes, oid: str) -> bytes:
    """The same signature with SignerInfo.signatureAlgorithm re-labelled (as other software writes it)."""
    signed_data = asn1_cms.ContentInfo.load(signature)["content"]
    info = signed_data["signer_infos"][0]
    new_info = der.sequence(*(info[f].dump() for f in ("version", "sid", "digest_algorithm", "signed_attrs")),
                            der.sequence(der.oid(oid), der.NULL), info["signature"].dump())
    new_data = der.sequence(*(signed_data[f].dump() for f in (
        "version", "digest_algorithms", "encap_content_info", "certificates")), der.set_of(new_info))
    return der.sequence(der.oid("1.2.840.113549.1.7.2"), der.explicit(0, new_data))


def test_the_gossuok_labelling_with_bign_pubkey_is_accepted(bign_pki) -> None:
    signer = bign_pki.signer("ORG-B")
    relabelled = _relabelled(sign_detached(DATA, signer), stb.BIGN_PUBKEY)
    assert asn1_cms.ContentInfo.load(relabelled)["content"]["signer_infos"][0]["signature_algorithm"][
        "algorithm"].dotted == stb.BIGN_PUBKEY
    assert verify_detached(DATA, relabelled, bign_pki.trust_store()) == signer.certificate


def test_an_rsa_label_on_a_bign_signature_is_refused(bign_pki) -> None:
    relabelled = _relabelled(sign_detached(DATA, bign_pki.signer("ORG-B")), "1.2.840.113549.1.1.11")
    with pytest.raises(InvalidSignature, match="does not fit the key"):
        verify_detached(DATA, relabelled)


def test_a_revoked_bign_signer_is_untrusted(bign_pki) -> None:
    issued = issue_certificate(bign_pki.directory, "ORG-CMS-GONE", key_type="bign")
    signature = sign_detached(DATA, issued.signer())
    revoke_certificate(bign_pki.directory, "ORG-CMS-GONE")
    with pytest.raises(UntrustedCertificate, match="revoked") as caught:
        verify_detached(DATA, signature, bign_pki.trust_store())
    assert caught.value.code == -23


def test_signed_attributes_are_what_the_bign_value_covers(bign_pki) -> None:
    signer = bign_pki.signer("ORG-C")
    info = asn1_cms.ContentInfo.load(sign_detached(DATA, signer))["content"]["signer_infos"][0]
    covered = b"\x31" + info["signed_attrs"].dump()[1:]
    key = algorithms.certificate_public_key(signer.certificate)
    assert bign.verify(key, info["signature"].native, covered)
