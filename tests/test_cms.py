"""Detached CMS signatures of files: round trip, tampering (-21), trust (-23), and interop with openssl."""
from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from asn1crypto import cms as asn1_cms

from signing.cms import sign_detached, verify_detached
from signing.errors import InvalidSignature, UntrustedCertificate

DATA = b"%PDF-1.7 the signed order no. 42\n" * 100


@pytest.mark.parametrize("code", ["ORG-A", "ORG-EC"])
def test_sign_then_verify_returns_the_signer(test_pki, trust_store, code):
    signer = test_pki.signer(code)
    signature = sign_detached(DATA, signer)
    assert verify_detached(DATA, signature, trust_store) == signer.certificate
    info = asn1_cms.ContentInfo.load(signature)["content"]
    assert info["encap_content_info"]["content"].native is None  # detached: the file is not inside


@pytest.mark.parametrize("digest", ["sha384", "sha512"])
def test_other_digests(test_pki, digest):
    signature = sign_detached(DATA, test_pki.signer("ORG-A"), digest=digest)
    assert verify_detached(DATA, signature) == test_pki.certificate("ORG-A")


def test_one_changed_byte_of_the_file_is_invalid(test_pki):
    signature = sign_detached(DATA, test_pki.signer("ORG-A"))
    tampered = DATA[:10] + b"X" + DATA[11:]
    with pytest.raises(InvalidSignature, match="digest does not match") as caught:
        verify_detached(tampered, signature)
    assert caught.value.code == -21


def test_a_changed_signature_value_is_invalid(test_pki):
    signature = bytearray(sign_detached(DATA, test_pki.signer("ORG-A")))
    # The RSA signature value is the last 256 bytes of this structure (no unsigned attributes).
    signature[-5] ^= 0x01
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_detached(DATA, bytes(signature))


def test_garbage_is_invalid_not_a_crash():
    with pytest.raises(InvalidSignature, match="not a CMS"):
        verify_detached(DATA, b"\x30\x03\x02\x01\x01")


def test_the_signature_of_another_file_is_invalid(test_pki):
    signature = sign_detached(b"another file", test_pki.signer("ORG-B"))
    with pytest.raises(InvalidSignature):
        verify_detached(DATA, signature)


def test_signer_from_another_ca_is_untrusted(other_pki, trust_store):
    signature = sign_detached(DATA, other_pki.signer("ORG-A"))
    assert verify_detached(DATA, signature) == other_pki.certificate("ORG-A")  # valid, but...
    with pytest.raises(UntrustedCertificate, match="unknown CA") as caught:
        verify_detached(DATA, signature, trust_store)
    assert caught.value.code == -23


def test_expired_signer_is_untrusted(issue_cert, trust_store):
    old = issue_cert("CMS-OLD", not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40), days=30)
    signature = sign_detached(DATA, old.signer())
    with pytest.raises(UntrustedCertificate, match="expired"):
        verify_detached(DATA, signature, trust_store)


@pytest.mark.parametrize("code", ["ORG-A", "ORG-EC"])
def test_openssl_made_signature_verifies(test_pki, trust_store, tmp_path, code):
    """An independent CMS implementation: `openssl cms -sign` (detached by default)."""
    data_path = tmp_path / "file.bin"
    data_path.write_bytes(DATA)
    out = tmp_path / "file.p7s"
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-in", str(data_path), "-signer",
                    str(test_pki.cert_path(code)), "-inkey", str(test_pki.key_path(code)), "-outform", "DER",
                    "-md", "sha256", "-out", str(out)], check=True, capture_output=True)
    assert verify_detached(DATA, out.read_bytes(), trust_store) == test_pki.certificate(code)
    with pytest.raises(InvalidSignature):
        verify_detached(DATA + b"!", out.read_bytes())


def test_our_signature_verifies_with_openssl(test_pki, tmp_path):
    data_path = tmp_path / "file.bin"
    data_path.write_bytes(DATA)
    sig_path = tmp_path / "file.p7s"
    sig_path.write_bytes(sign_detached(DATA, test_pki.signer("ORG-A")))
    command = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig_path), "-content",
               str(data_path), "-CAfile", str(test_pki.ca_bundle_path), "-purpose", "any", "-out", "/dev/null"]
    assert subprocess.run(command, capture_output=True).returncode == 0
    data_path.write_bytes(DATA + b"!")
    assert subprocess.run(command, capture_output=True).returncode != 0
