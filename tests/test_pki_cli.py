"""`smdo pki init|issue|revoke`: the files it writes, their permissions, index.json, the CRL."""
from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from cli.main import main
from signing.errors import UntrustedCertificate
from signing.keys import load_certificate, load_certificates
from signing.pki import PkiLayout
from signing.trust import TrustStore, load_crl


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli") / "pki"
    run("pki", "init", "--dir", str(directory), "--key-type", "ec")
    return directory


def test_init_writes_the_chain_and_private_keys_0600(pki_dir):
    layout = PkiLayout(pki_dir)
    for path in (layout.root_cert_path, layout.ca_cert_path, layout.crl_path, layout.root_crl_path,
                 layout.ca_bundle_path, layout.index_path):
        assert path.is_file(), path
    for key in (layout.root_key_path, layout.ca_key_path):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert layout.ca_cert.issuer == layout.root_cert.subject
    assert {c.subject for c in load_certificates(layout.trust_dir)} == {layout.root_cert.subject,
                                                                       layout.ca_cert.subject}


def test_init_twice_is_refused(pki_dir):
    result = CliRunner().invoke(main, ["pki", "init", "--dir", str(pki_dir)])
    assert result.exit_code == 1
    assert "already holds a PKI" in result.output


def test_issue_writes_key_cert_chain_and_index(pki_dir):
    output = run("pki", "issue", "--dir", str(pki_dir), "ORG-X", "--name", "Organisation X", "--key-type", "ec",
                 "--tls-host", "localhost", "--tls-host", "127.0.0.1")
    layout = PkiLayout(pki_dir)
    assert str(layout.cert_path("ORG-X")) in output
    assert stat.S_IMODE(layout.key_path("ORG-X").stat().st_mode) == 0o600
    cert = load_certificate(layout.cert_path("ORG-X"))
    assert "CN=Organisation X" in cert.subject.rfc4514_string()
    assert [c.subject for c in load_certificates(layout.chain_path("ORG-X"))] == [cert.subject, layout.ca_cert.subject]
    entry = json.loads(layout.index_path.read_text())["certificates"]["ORG-X"]
    assert entry["name"] == "Organisation X" and entry["tls_hostnames"] == ["localhost", "127.0.0.1"]
    assert entry["revoked_at"] is None
    assert layout.trust_store().validate(cert)[-1] == layout.root_cert


def test_issue_with_a_bad_code_is_refused(pki_dir):
    result = CliRunner().invoke(main, ["pki", "issue", "--dir", str(pki_dir), "../evil"])
    assert result.exit_code == 1
    assert "subscriber code" in result.output


def test_issue_without_init_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["pki", "issue", "--dir", str(tmp_path), "ORG-A"])
    assert result.exit_code == 1
    assert "holds no PKI" in result.output


def test_issue_an_expired_certificate(pki_dir):
    run("pki", "issue", "--dir", str(pki_dir), "ORG-OLD", "--key-type", "ec", "--valid-from", "2020-01-01",
        "--days", "30")
    layout = PkiLayout(pki_dir)
    with pytest.raises(UntrustedCertificate, match="expired on 2020-01-31"):
        layout.trust_store().validate(layout.certificate("ORG-OLD"))


def test_revoke_updates_the_crl(pki_dir):
    run("pki", "issue", "--dir", str(pki_dir), "ORG-R", "--key-type", "ec")
    layout = PkiLayout(pki_dir)
    cert = layout.certificate("ORG-R")
    assert load_crl(layout.crl_path).get_revoked_certificate_by_serial_number(cert.serial_number) is None
    output = run("pki", "revoke", "--dir", str(pki_dir), "ORG-R")
    assert str(layout.crl_path) in output
    crl = load_crl(layout.crl_path)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert crl.is_signature_valid(layout.ca_cert.public_key())
    assert layout.index()["certificates"]["ORG-R"]["revoked_at"]
    with pytest.raises(UntrustedCertificate, match="revoked"):
        TrustStore.from_paths(layout.trust_dir, [layout.crl_path]).validate(cert)


def test_revoking_an_unknown_code_is_refused(pki_dir):
    result = CliRunner().invoke(main, ["pki", "revoke", "--dir", str(pki_dir), "NOBODY"])
    assert result.exit_code == 1
    assert "no certificate issued for 'NOBODY'" in result.output


def test_crl_refresh_keeps_revocations_and_moves_next_update(pki_dir):
    layout = PkiLayout(pki_dir)
    run("pki", "issue", "--dir", str(pki_dir), "ORG-R2", "--key-type", "ec")
    run("pki", "revoke", "--dir", str(pki_dir), "ORG-R2")
    before = load_crl(layout.crl_path)
    run("pki", "crl", "--dir", str(pki_dir))
    after = load_crl(layout.crl_path)
    serial = layout.certificate("ORG-R2").serial_number
    assert after.get_revoked_certificate_by_serial_number(serial) is not None
    assert len(list(after)) == len(list(before))
    assert after.next_update_utc >= before.next_update_utc


def _handshake(client, server, hostname: str):
    """A TLS handshake between two in-memory endpoints; returns the server side once done."""
    import ssl

    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side, outgoing, incoming in (("client", client_side, c_out, s_in),
                                               ("server", server_side, s_out, c_in)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            incoming.write(outgoing.read())
        if all(done.values()):
            return server_side
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_issued_certificates_work_for_mutual_tls_with_openssl(test_pki, hostname):
    """The HUB certificate serves TLS for its names and ORG-A's authenticates as a client (strict X.509)."""
    import ssl

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(test_pki.chain_path("HUB"), test_pki.key_path("HUB"))
    server.load_verify_locations(cafile=test_pki.ca_bundle_path)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=str(test_pki.ca_bundle_path))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    client.load_cert_chain(test_pki.chain_path("ORG-A"), test_pki.key_path("ORG-A"))
    server_side = _handshake(client, server, hostname)
    assert dict(x[0] for x in server_side.getpeercert()["subject"])["commonName"] == "Organisation A"


def test_tls_refuses_a_host_name_not_in_the_certificate(test_pki):
    import ssl

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(test_pki.chain_path("HUB"), test_pki.key_path("HUB"))
    client = ssl.create_default_context(cafile=str(test_pki.ca_bundle_path))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch|doesn't match"):
        _handshake(client, server, "hub.example.org")
