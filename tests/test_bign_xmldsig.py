"""XMLDSig with bign-with-hbelt and belt-hash under the hub's strict profile."""
from __future__ import annotations

import base64

import pytest
from bign_fixtures import bign_pki  # noqa: F401 - fixture
from lxml import etree

from signing import bign
from signing.errors import InvalidSignature
from signing.xmldsig import DS, _c14n, sign_enveloped, verify_enveloped

NS = {"ds": DS}
DOCUMENT = b"""<Envelop xmlns="urn:sdip" msg_id="7f1c"><Header msg_type="1"><Sender id="ORG-A"/></Header>
  <Body><Document idnumber="42">Pay 100 &amp; more</Document></Body></Envelop>"""
OID_METHOD = "urn:oid:1.2.112.0.2.0.34.101.45.12"
OID_DIGEST = "urn:oid:1.2.112.0.2.0.34.101.31.81"


def signed(signer, **options) -> etree._Element:
    root = etree.fromstring(DOCUMENT)
    sign_enveloped(root, signer, **options)
    return etree.fromstring(etree.tostring(root))


def test_bign_sign_and_verify_with_the_oid_identifiers(bign_pki) -> None:
    root = signed(bign_pki.signer("ORG-A"))
    assert root.find(".//ds:SignatureMethod", NS).get("Algorithm") == OID_METHOD
    assert root.find(".//ds:DigestMethod", NS).get("Algorithm") == OID_DIGEST
    assert len(base64.b64decode(root.find(".//ds:SignatureValue", NS).text)) == 48
    result = verify_enveloped(root)
    assert (result.signature_method, result.digest_method) == ("bign-with-hbelt", "belt-hash")
    assert result.certificate == bign_pki.certificate("ORG-A")


def test_a_changed_document_or_signature_is_refused(bign_pki) -> None:
    root = signed(bign_pki.signer("ORG-A"))
    root.find(".//{urn:sdip}Document").text = "Pay 1000 & more"
    with pytest.raises(InvalidSignature, match="digest does not match"):
        verify_enveloped(root)
    root = signed(bign_pki.signer("ORG-A"))
    value = root.find(".//ds:SignatureValue", NS)
    raw = bytearray(base64.b64decode(value.text))
    raw[0] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_enveloped(root)


@pytest.mark.parametrize("method, digest", [
    ("http://www.w3.org/2009/xmldsig11#bign-with-hbelt", "http://www.w3.org/2009/xmldsig11#belt-hash256"),
    ("http://www.w3.org/2001/04/xmldsig-more#bign-with-hbelt", "http://www.w3.org/2001/04/xmldsig-more#belt-hash256"),
])
def test_the_uri_families_of_public_code_are_accepted(bign_pki, method: str, digest: str) -> None:
    signer = bign_pki.signer("ORG-B")
    root = signed(signer)
    root.find(".//ds:SignatureMethod", NS).set("Algorithm", method)
    root.find(".//ds:DigestMethod", NS).set("Algorithm", digest)
    signed_info = root.find(".//ds:SignedInfo", NS)  # re-sign SignedInfo as such a signer would have
    value = bign.sign(signer.key, _c14n(signed_info, True, False))
    root.find(".//ds:SignatureValue", NS).text = base64.b64encode(value).decode()
    assert verify_enveloped(root).signature_method == "bign-with-hbelt"


def test_bign_method_with_a_non_bign_certificate_is_refused(bign_pki, signer_for) -> None:
    root = signed(bign_pki.signer("ORG-A"))
    from cryptography.hazmat.primitives.serialization import Encoding

    other = signer_for("ORG-A").certificate.public_bytes(Encoding.DER)  # an RSA certificate
    root.find(".//ds:X509Certificate", NS).text = base64.b64encode(other).decode()
    with pytest.raises(InvalidSignature, match="needs a bign key"):
        verify_enveloped(root)


def test_a_bign_key_with_a_sha256_document_digest(bign_pki) -> None:
    with pytest.raises(ValueError, match="cannot sign with digest"):
        signed(bign_pki.signer("ORG-A"), digest="sha256")
    root = signed(bign_pki.signer("ORG-C"), c14n="inclusive")
    assert verify_enveloped(root).c14n_method == "c14n"


def test_with_a_trust_store_an_untrusted_signer_is_refused_before_the_document_digest(bign_pki, tmp_path) -> None:
    from signing.errors import UntrustedCertificate
    from signing.pki import init_pki, issue_certificate

    other = init_pki(tmp_path / "other", key_type="bign")
    stranger = issue_certificate(other.directory, "ORG-A", key_type="bign").signer()
    root = signed(stranger)
    root.find(".//{urn:sdip}Document").text = "changed"  # the digest alone would say -21
    with pytest.raises(UntrustedCertificate) as caught:
        verify_enveloped(root, trust=bign_pki.trust_store())
    assert caught.value.code == -23
    root = signed(bign_pki.signer("ORG-A"))
    assert verify_enveloped(root, trust=bign_pki.trust_store()).certificate == bign_pki.certificate("ORG-A")
