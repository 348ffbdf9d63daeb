"""bign certificates and CRLs as GosSUOK issues them, validated by the same TrustStore as RSA/EC."""
from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from bign_fixtures import bign_pki  # noqa: F401 - fixture
from cryptography.hazmat.primitives.serialization import Encoding

from signing import algorithms, bign
from signing.errors import UntrustedCertificate
from signing.keys import Signer, load_certificates
from signing.pki import init_pki, issue_certificate, revoke_certificate
from signing.suites import stb
from signing.trust import TrustStore

# bee2's cmd/test/zed.csr: a PKCS#10 request made by the reference implementation, signed with
# bign-with-hbelt (its public key is the base point G, d = 1): an outside check of our encodings.
ZED_CSR = bytes.fromhex(
    "3081b83074020100300e310c300a06035504030c035a6564305d3018060a2a7000020022652d0201060a2a7000020022652d03"
    "010341000000000000000000000000000000000000000000000000000000000000000000936a510418cf291e52f608c4663991"
    "785d83d651a3c9e45c9fd616fb3cfcf76ba000300d06092a7000020022652d0c0500033100b8ce3601c18afa2e30406a5fd550"
    "1763e03576a7831ecf80a3130737e0cf60cf33e017ad8e982b5b6c44350c078c7a72")


def test_a_request_signed_by_the_reference_implementation_verifies() -> None:
    request = asn1_csr.CertificationRequest.load(ZED_CSR)
    info_der = request["certification_request_info"].dump()
    assert request["signature_algorithm"].dump() == bytes.fromhex("300d06092a7000020022652d0c0500")  # with NULL
    spki = request["certification_request_info"]["subject_pk_info"].dump()
    value = request["signature"].contents[1:]
    assert bign.verify(stb.public_from_spki(spki), value, info_der)
    assert not bign.verify(stb.public_from_spki(spki), value, info_der[:-1] + bytes([info_der[-1] ^ 1]))


def test_certificates_have_the_standard_layout(bign_pki) -> None:
    cert = asn1_x509.Certificate.load(bign_pki.certificate("ORG-A").public_bytes(Encoding.DER))
    spki = stb.PublicKeyInfo.load(cert["tbs_certificate"]["subject_public_key_info"].dump())
    assert spki["algorithm"]["algorithm"].dotted == stb.BIGN_PUBKEY
    assert spki["algorithm"]["parameters"].dump() == bytes.fromhex("060a2a7000020022652d0301")
    assert len(spki["public_key"].contents) == 1 + 64
    assert cert["signature_algorithm"].dump() == bytes.fromhex("300d06092a7000020022652d0c0500")  # with NULL
    assert len(cert["signature_value"].contents) == 1 + 48
    root = bign_pki.root_cert
    assert root.signature_algorithm_oid.dotted_string == stb.BIGN_WITH_HBELT


def test_a_bign_chain_validates_and_signer_loads(bign_pki) -> None:
    chain = bign_pki.trust_store().validate(bign_pki.certificate("ORG-A"))
    assert [c.subject.rfc4514_string() for c in chain][1:] == [
        bign_pki.ca_cert.subject.rfc4514_string(), bign_pki.root_cert.subject.rfc4514_string()]
    signer = bign_pki.signer("ORG-A")
    assert isinstance(signer.key, bign.BignPrivateKey)
    with pytest.raises(ValueError, match="not the private key"):
        Signer.from_files(bign_pki.key_path("ORG-B"), bign_pki.cert_path("ORG-A"))


def test_mixed_trust_store_validates_rsa_ec_and_bign_chains(bign_pki, test_pki) -> None:
    certs = load_certificates(bign_pki.trust_dir) + load_certificates(test_pki.trust_dir)
    store = TrustStore([c for c in certs if c.issuer == c.subject],
                       [c for c in certs if c.issuer != c.subject])
    for layout, code in ((bign_pki, "ORG-B"), (test_pki, "ORG-A"), (test_pki, "ORG-EC"), (bign_pki, "HUB")):
        expected = 2 if code == "HUB" else 3  # HUB: leaf -> TLS CA (an anchor)
        assert len(store.validate(layout.certificate(code))) == expected


def test_from_paths_finds_bign_and_tls_anchors(bign_pki) -> None:
    store = bign_pki.trust_store()
    assert {c.subject.rfc4514_string() for c in store.anchors} == {
        bign_pki.root_cert.subject.rfc4514_string(),
        "CN=smdo-hub Test TLS CA,O=smdo-hub test PKI,C=BY"}


def test_same_names_other_bign_pki_is_an_unknown_ca(bign_pki, tmp_path) -> None:
    other = init_pki(tmp_path / "other", key_type="bign")
    stranger = issue_certificate(other.directory, "ORG-A", key_type="bign").certificate
    with pytest.raises(UntrustedCertificate, match="no configured CA of that name signed it"):
        bign_pki.trust_store().validate(stranger)


def test_expired_and_wrong_usage_bign_certificates_are_refused(bign_pki) -> None:
    old = issue_certificate(bign_pki.directory, "ORG-OLD", key_type="bign", days=1,
                            not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    with pytest.raises(UntrustedCertificate, match="expired"):
        bign_pki.trust_store().validate(old.certificate)
    wrong = issue_certificate(bign_pki.directory, "ORG-ENC", key_type="bign", wrong_key_usage=True)
    with pytest.raises(UntrustedCertificate, match="wrong key usage"):
        bign_pki.trust_store().validate(wrong.certificate)


def test_revocation_through_a_crl_signed_with_bign(bign_pki) -> None:
    issued = issue_certificate(bign_pki.directory, "ORG-GONE", key_type="bign")
    assert bign_pki.trust_store().validate(issued.certificate)
    crl_path = revoke_certificate(bign_pki.directory, "ORG-GONE")
    from signing.trust import load_crl

    crl = load_crl(crl_path)
    assert crl.signature_algorithm_oid.dotted_string == stb.BIGN_WITH_HBELT
    assert algorithms.crl_signed_by(crl, bign_pki.ca_cert)
    assert not algorithms.crl_signed_by(crl, bign_pki.root_cert)
    with pytest.raises(UntrustedCertificate, match="revoked"):
        bign_pki.trust_store().validate(issued.certificate)


def test_tls_certificates_in_a_bign_pki_are_ec_from_the_tls_ca(bign_pki) -> None:
    hub = bign_pki.certificate("HUB")
    assert hub.issuer.rfc4514_string() == "CN=smdo-hub Test TLS CA,O=smdo-hub test PKI,C=BY"
    assert algorithms.key_kind(algorithms.certificate_public_key(hub)).name == "ec"
    with pytest.raises(ValueError, match="cannot serve TLS"):
        issue_certificate(bign_pki.directory, "WEB", key_type="bign", tls_hostnames=("localhost",))
    # a bign CA may still certify an EC key (signed with bign) for signing, outside TLS
    mixed = issue_certificate(bign_pki.directory, "ORG-MIXED", key_type="ec")
    assert mixed.certificate.signature_algorithm_oid.dotted_string == stb.BIGN_WITH_HBELT
    assert bign_pki.trust_store().validate(mixed.certificate)
