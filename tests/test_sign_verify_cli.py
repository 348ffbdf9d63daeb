"""`smdo sign` and `smdo verify`: exit codes, `code N: message` lines, --json, and the -21/-22/-23 cases."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli.main import main
from signing.pki import init_pki, issue_certificate

PACKET = b"""<?xml version="1.0" encoding="UTF-8"?>
<Envelop xmlns="urn:sdip" type="SDIP-2.1.1" msg_id="4b8e">
  <Header msg_type="1"><Sender id="ORG-A"/><Receiver id="ORG-B"/></Header>
  <Body><Document idnumber="1">Transfer 100 to account 7</Document></Body>
</Envelop>
"""


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A PKI of this module's own, so revoking here does not touch the session PKI."""
    directory = tmp_path_factory.mktemp("signcli") / "pki"
    layout = init_pki(directory, key_type="ec")
    issue_certificate(directory, "ORG-A", "Organisation A")
    issue_certificate(directory, "ORG-EC", key_type="ec")
    return layout


@pytest.fixture()
def unsigned(tmp_path):
    path = tmp_path / "packet.xml"
    path.write_bytes(PACKET)
    return path


def sign(pki, source, out, code="ORG-A", *options) -> None:
    status, output = invoke("sign", source, "--key", pki.key_path(code), "--cert", pki.cert_path(code), "-o", out,
                            *options)
    assert status == 0, output


@pytest.mark.parametrize("options", [(), ("--c14n", "inclusive", "--digest", "sha512")])
def test_sign_then_verify(pki, unsigned, tmp_path, options):
    signed = tmp_path / "signed.xml"
    sign(pki, unsigned, signed, "ORG-A", *options)
    status, output = invoke("verify", signed, "--trust", pki.trust_dir)
    assert status == 0
    assert output.strip() == f"valid signature by {pki.certificate('ORG-A').subject.rfc4514_string()}"


def test_sign_to_stdout_and_verify_json(pki, unsigned, tmp_path):
    status, output = invoke("sign", unsigned, "--key", pki.key_path("ORG-EC"), "--cert", pki.cert_path("ORG-EC"))
    assert status == 0 and "<ds:Signature" in output
    signed = tmp_path / "signed.xml"
    signed.write_text(output)
    status, output = invoke("verify", signed, "--trust", pki.ca_bundle_path, "--json")
    report = json.loads(output)
    assert status == 0 and report["valid"] is True and report["signature_method"] == "ecdsa-sha256"
    assert report["fingerprint"] == pki.index()["certificates"]["ORG-EC"]["fingerprint"]


def test_tampered_byte_is_21(pki, unsigned, tmp_path):
    signed = tmp_path / "signed.xml"
    sign(pki, unsigned, signed)
    signed.write_bytes(signed.read_bytes().replace(b"Transfer 100", b"Transfer 900"))
    status, output = invoke("verify", signed, "--trust", pki.trust_dir)
    assert status == 1
    assert output.startswith("code -21: ") and "digest" in output


def test_missing_signature_is_22_in_json(pki, unsigned):
    status, output = invoke("verify", unsigned, "--trust", pki.trust_dir, "--json")
    assert status == 1
    assert json.loads(output)["problems"][0]["code"] == -22


def test_another_ca_is_23(pki, unsigned, tmp_path):
    other = init_pki(tmp_path / "other", key_type="ec")
    issue_certificate(other.directory, "ORG-A", key_type="ec")
    signed = tmp_path / "signed.xml"
    sign(other, unsigned, signed)
    status, output = invoke("verify", signed, "--trust", pki.trust_dir)
    assert status == 1 and output.startswith("code -23: ") and "unknown CA" in output


def test_expired_is_23(pki, unsigned, tmp_path):
    issue_certificate(pki.directory, "ORG-OLD", key_type="ec",
                      not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10), days=5)
    signed = tmp_path / "signed.xml"
    sign(pki, unsigned, signed, "ORG-OLD")
    status, output = invoke("verify", signed, "--trust", pki.trust_dir)
    assert status == 1 and output.startswith("code -23: ") and "expired" in output


def test_wrong_key_usage_is_23(pki, unsigned, tmp_path):
    issue_certificate(pki.directory, "ORG-ENC", key_type="ec", wrong_key_usage=True)
    signed = tmp_path / "signed.xml"
    sign(pki, unsigned, signed, "ORG-ENC")
    status, output = invoke("verify", signed, "--trust", pki.trust_dir)
    assert status == 1 and "code -23: " in output and "wrong key usage" in output


def test_revoked_after_pki_revoke_is_23(pki, unsigned, tmp_path):
    issue_certificate(pki.directory, "ORG-GONE", key_type="ec")
    signed = tmp_path / "signed.xml"
    sign(pki, unsigned, signed, "ORG-GONE")
    assert invoke("verify", signed, "--trust", pki.trust_dir, "--crl", pki.crl_path)[0] == 0
    assert invoke("pki", "revoke", "--dir", pki.directory, "ORG-GONE")[0] == 0
    status, output = invoke("verify", signed, "--trust", pki.trust_dir, "--crl", pki.crl_path)
    assert status == 1 and output.startswith("code -23: ") and "revoked on" in output


def test_hostile_xml_is_refused_with_code_minus_1(pki, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    hostile = tmp_path / "xxe.xml"
    hostile.write_text(f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>')
    status, output = invoke("verify", hostile, "--trust", pki.trust_dir)
    assert status == 1 and output.startswith("code -1: ") and "TOP SECRET" not in output
    status, output = invoke("sign", hostile, "--key", pki.key_path("ORG-A"), "--cert", pki.cert_path("ORG-A"))
    assert status == 1 and "TOP SECRET" not in output


def test_the_console_script_runs(pki, unsigned, tmp_path):
    signed = tmp_path / "signed.xml"
    sign(pki, unsigned, signed)
    done = subprocess.run([sys.executable, "-m", "cli.main", "verify", str(signed), "--trust", str(pki.trust_dir)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("valid signature by CN=Organisation A")
