"""The demo on a bign PKI (`python -m cli.demo --key-type bign`): real `smdo serve` and three
`smdo edms run` subprocesses that sign with bign and talk TLS with EC certificates from the PKI's
TLS CA; every packet reaches its final state, through push and the mailbox alike."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from signing.pki import PkiLayout
from smdo.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
BIGN_SIGNATURE = b'SignatureMethod Algorithm="urn:oid:1.2.112.0.2.0.34.101.45.12"'


def test_demo_on_a_bign_pki_reaches_every_final_state(tmp_path):
    data = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "cli.demo", "--key-type", "bign", "--data", str(data), "--timeout", "90"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "every packet reached its final state" in out
    table = out[out.index("pkt  what"):]
    rows = [line for line in table.splitlines()[2:] if line[:1].isalpha() and "  " in line]
    assert len(rows) == 11  # with the classic mail client's two letters (its files bign-signed)
    assert sum("  registered   registered as" in r for r in rows) == 10  # sender and hub journal agree
    [refused] = [r for r in rows if "  refused      registration refused" in r]
    assert refused.startswith("G")
    # MINFIN (SMBusiness) pulls from the mailbox: the hub knew it by its EC TLS client certificate.
    assert sorted(p.name for p in (data / "edms" / "MINFIN" / "inbox").iterdir()) == [
        "S-2026_0001.xml", "S-2026_0002.xml"]

    pki = PkiLayout(data / "pki")
    index = pki.index()
    assert index["key_type"] == "bign"
    registry = Registry(data / "hub" / "registry.db")
    try:
        for code in ("MINEK", "MINFIN", "GOSKOM"):
            assert index["certificates"][code]["key_type"] == "bign"
            assert index["certificates"][f"{code}-tls"]["key_type"] == "ec"
            # Both of the agency's certificates are bound: bign for packets, EC for TLS.
            assert registry.require(code).cert_fingerprints == {
                index["certificates"][code]["fingerprint"], index["certificates"][f"{code}-tls"]["fingerprint"]}
            with sqlite3.connect(data / "edms" / code / "edms.db") as db:
                sent = [packet for (packet,) in db.execute("SELECT packet FROM outbox")]
            assert sent and all(BIGN_SIGNATURE in packet for packet in sent), code
    finally:
        registry.close()
