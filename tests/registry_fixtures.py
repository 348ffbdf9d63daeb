"""Fixtures for the registry, subscribers CLI, directory and conformance tests."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smdo.unp import make_unp

# Valid UNPs (check digit computed), one per test subscriber.
UNP_A = make_unp("10000000")
UNP_B = make_unp("20098854")  # 200988541, the published example


def quick_certificate(common_name: str, *, days: int = 30) -> x509.Certificate:
    """A self-signed certificate, for registry tests that only bind and fingerprint certificates.

    Tests of trust decisions use the project's test PKI (signing.pki) instead.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The project's test PKI (EC keys: quick to issue), shared by a test session."""
    from signing.pki import init_pki

    return init_pki(tmp_path_factory.mktemp("pki"), key_type="ec")


def issue(pki, code: str, **kwargs):
    from signing.pki import issue_certificate

    return issue_certificate(pki.directory, code, key_type="ec", **kwargs)
