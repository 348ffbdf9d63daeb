"""`smdo pki init|issue --key-type bign` and `smdo sign`/`smdo verify` with bign keys."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cli.main import main
from signing.pki import PkiLayout

PACKET = b"""<?xml version="1.0" encoding="UTF-8"?>
<Envelop xmlns="urn:sdip" type="SDIP-2.1.1" msg_id="4b8e">
  <Header msg_type="1"><Sender id="ORG-A"/><Receiver id="ORG-B"/></Header>
  <Body><Document idnumber="1">Transfer 100 to account 7</Document></Body>
</Envelop>
"""


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_bign_pki_from_the_cli_signs_and_verifies(tmp_path) -> None:
    directory = tmp_path / "pki"
    status, output = invoke("pki", "init", "--dir", directory, "--key-type", "bign")
    assert status == 0 and "TLS CA:" in output
    status, output = invoke("pki", "issue", "--dir", directory, "ORG-A")  # the PKI's key type: bign
    assert status == 0, output
    status, output = invoke("pki", "issue", "--dir", directory, "HUB", "--tls-host", "localhost")  # ec, TLS CA
    assert status == 0, output
    layout = PkiLayout(directory)
    index = layout.index()
    assert (index["key_type"], index["certificates"]["ORG-A"]["key_type"],
            index["certificates"]["HUB"]["key_type"]) == ("bign", "bign", "ec")
    status, output = invoke("pki", "issue", "--dir", directory, "WEB", "--tls-host", "localhost",
                            "--key-type", "bign")
    assert status == 1 and output.startswith("error: a bign key cannot serve TLS")

    source = tmp_path / "packet.xml"
    source.write_bytes(PACKET)
    signed = tmp_path / "signed.xml"
    status, output = invoke("sign", source, "--key", layout.key_path("ORG-A"), "--cert", layout.cert_path("ORG-A"),
                            "-o", signed)
    assert status == 0, output
    status, output = invoke("verify", signed, "--trust", layout.trust_dir, "--json")
    report = json.loads(output)
    assert status == 0 and report["valid"] is True
    assert (report["signature_method"], report["digest_method"]) == ("bign-with-hbelt", "belt-hash")

    signed.write_bytes(signed.read_bytes().replace(b"account 7", b"account 8"))
    status, output = invoke("verify", signed, "--trust", layout.trust_dir)
    assert status == 1 and output.startswith("code -21:")

    invoke("sign", source, "--key", layout.key_path("ORG-A"), "--cert", layout.cert_path("ORG-A"), "-o", signed)
    status, output = invoke("pki", "revoke", "--dir", directory, "ORG-A")
    assert status == 0
    status, output = invoke("verify", signed, "--trust", layout.trust_dir, "--crl", layout.crl_path)
    assert status == 1 and output.startswith("code -23:") and "revoked" in output
