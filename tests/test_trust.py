"""Certificate path validation: root -> republican CA -> subscriber, with CRLs; every failure is -23."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signing.errors import UntrustedCertificate
from signing.keys import load_private_key
from signing.pki import revoke_certificate
from signing.trust import TrustStore, load_crl



@pytest.fixture
def now() -> dt.datetime:
    """The time when the test runs (not when the module was imported: a slow suite would drift)."""
    return dt.datetime.now(dt.timezone.utc)


def _cert(subject: str, key, issuer_cert, issuer_key, *, ca: bool, path_length=None, key_cert_sign=True):
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_cert.subject).public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=True, encipher_only=False,
            decipher_only=False), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def test_a_subscriber_chains_to_the_root(test_pki, trust_store):
    chain = trust_store.validate(test_pki.certificate("ORG-A"))
    assert chain == [test_pki.certificate("ORG-A"), test_pki.ca_cert, test_pki.root_cert]


def test_from_paths_takes_a_bundle_file(test_pki):
    store = TrustStore.from_paths(test_pki.ca_bundle_path)
    assert store.anchors == (test_pki.root_cert,)
    assert store.intermediates == (test_pki.ca_cert,)
    assert len(store.validate(test_pki.certificate("ORG-B"))) == 3


def test_from_paths_needs_an_anchor(test_pki):
    with pytest.raises(ValueError, match="no self-signed root"):
        TrustStore.from_paths(test_pki.ca_cert_path)


def test_a_certificate_from_another_ca_is_untrusted(other_pki, trust_store):
    with pytest.raises(UntrustedCertificate, match="ORG-A.*unknown CA") as caught:
        trust_store.validate(other_pki.certificate("ORG-A"))
    assert caught.value.code == -23


def test_a_foreign_root_is_not_an_anchor(other_pki, trust_store):
    with pytest.raises(UntrustedCertificate, match="self-signed certificate that is not a trust anchor"):
        trust_store.validate(other_pki.root_cert)


def test_an_expired_certificate_is_untrusted(issue_cert, trust_store, now):
    old = issue_cert("EXPIRED", not_before=now - dt.timedelta(days=40), days=30)
    with pytest.raises(UntrustedCertificate, match="CN=EXPIRED.* expired on"):
        trust_store.validate(old.certificate)


def test_a_certificate_not_yet_valid_is_untrusted(issue_cert, trust_store, now):
    future = issue_cert("FUTURE", not_before=now + dt.timedelta(days=2))
    with pytest.raises(UntrustedCertificate, match="CN=FUTURE.* not yet valid"):
        trust_store.validate(future.certificate)


def test_wrong_key_usage_is_untrusted(issue_cert, trust_store):
    encipher_only = issue_cert("KEY-ENC", wrong_key_usage=True)
    with pytest.raises(UntrustedCertificate, match="CN=KEY-ENC.*wrong key usage"):
        trust_store.validate(encipher_only.certificate)


def test_revoked_after_pki_revoke(test_pki, issue_cert):
    issued = issue_cert("TO-REVOKE")
    store = test_pki.trust_store()
    assert store.validate(issued.certificate)  # cached now: revocation must clear that
    crl_path = revoke_certificate(test_pki.directory, "TO-REVOKE")
    store.add_crl(load_crl(crl_path))
    with pytest.raises(UntrustedCertificate, match="CN=TO-REVOKE.* revoked on 20"):
        store.validate(issued.certificate)
    before = issued.certificate.not_valid_before_utc + dt.timedelta(seconds=1)
    assert store.validate(issued.certificate, at=before)  # signed before revocation
    assert test_pki.index()["certificates"]["TO-REVOKE"]["revoked_at"]
    # a fresh store built from the files sees it too
    with pytest.raises(UntrustedCertificate, match="revoked"):
        test_pki.trust_store().validate(issued.certificate)
    assert test_pki.trust_store().validate(test_pki.certificate("ORG-A"))


def test_an_out_of_date_crl_is_untrusted(test_pki, trust_store, now):
    later = now + dt.timedelta(days=60)  # certificates are still valid, the CRL is not
    with pytest.raises(UntrustedCertificate, match="CRL of .*Republican CA.* is out of date"):
        trust_store.validate(test_pki.certificate("ORG-C"), at=later)


def test_a_crl_with_a_bad_signature_is_refused(test_pki, now):
    forged = (x509.CertificateRevocationListBuilder().issuer_name(test_pki.ca_cert.subject)
              .last_update(now - dt.timedelta(hours=1)).next_update(now + dt.timedelta(days=1))
              .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    store = TrustStore([test_pki.root_cert], [test_pki.ca_cert], [forged])
    with pytest.raises(UntrustedCertificate, match="CRL of .*Republican CA.* has an invalid signature"):
        store.validate(test_pki.certificate("ORG-A"))


def test_an_issuer_that_is_not_a_ca_is_refused(test_pki):
    """A subscriber's key cannot act as a CA, even if someone configures its certificate."""
    subscriber = test_pki.certificate("ORG-B")
    leaf = _cert("Issued by a subscriber", ec.generate_private_key(ec.SECP256R1()), subscriber,
                 load_private_key(test_pki.key_path("ORG-B")), ca=False)
    store = TrustStore([test_pki.root_cert], [test_pki.ca_cert, subscriber])
    with pytest.raises(UntrustedCertificate, match="CN=Organisation B.* is not a CA"):
        store.validate(leaf)


def test_path_length_is_enforced(test_pki):
    """The republican CA has pathlen 0: a sub-CA below it may not issue certificates."""
    sub_key = ec.generate_private_key(ec.SECP256R1())
    sub_ca = _cert("Sub CA", sub_key, test_pki.ca_cert, load_private_key(test_pki.ca_key_path), ca=True)
    leaf = _cert("Below the sub CA", ec.generate_private_key(ec.SECP256R1()), sub_ca, sub_key, ca=False)
    store = TrustStore([test_pki.root_cert], [test_pki.ca_cert, sub_ca])
    with pytest.raises(UntrustedCertificate, match=r"Republican CA.* allows 0 CA\(s\) below it \(pathlen\)"):
        store.validate(leaf)


def test_an_issuer_without_key_cert_sign_is_refused(test_pki):
    root_key = load_private_key(test_pki.root_key_path)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    weak_ca = _cert("CA without keyCertSign", ca_key, test_pki.root_cert, root_key, ca=True, key_cert_sign=False)
    leaf = _cert("Leaf", ec.generate_private_key(ec.SECP256R1()), weak_ca, ca_key, ca=False)
    store = TrustStore([test_pki.root_cert], [weak_ca])
    with pytest.raises(UntrustedCertificate, match="keyCertSign missing"):
        store.validate(leaf)


def test_a_cached_result_still_respects_expiry(issue_cert, test_pki, now):
    store = test_pki.trust_store()
    short = issue_cert("SHORT", not_before=now - dt.timedelta(days=1), days=1)  # expires about now
    at = short.certificate.not_valid_after_utc - dt.timedelta(seconds=1)
    assert store.validate(short.certificate, at=at)
    with pytest.raises(UntrustedCertificate, match="expired"):
        store.validate(short.certificate, at=at + dt.timedelta(seconds=2))  # same hour bucket


def test_a_cached_result_does_not_outlive_a_future_revocation(test_pki, issue_cert):
    """A certificate revoked at T is trusted just before T; the cached answer must stop at T."""
    issued = issue_cert("REVOKED-LATER")
    # half past the next hour: the two checks below fall in the same (fingerprint, hour) cache slot
    when = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(minute=30, second=0, microsecond=0)
    store = TrustStore([test_pki.root_cert], [test_pki.ca_cert],
                       [load_crl(revoke_certificate(test_pki.directory, "REVOKED-LATER", when=when))])
    assert store.validate(issued.certificate, at=when - dt.timedelta(seconds=1))
    with pytest.raises(UntrustedCertificate, match="revoked"):
        store.validate(issued.certificate, at=when)
