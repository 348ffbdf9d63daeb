"""Every mistake a newcomer makes gets one line `error: ...` naming what is wrong and what to do, and a
non-zero exit: never a traceback. Real files, real keys from the test PKI, real sockets."""
from __future__ import annotations

import asyncio
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from cli.main import main
from cli.when import moment
from signing.keys import load_private_key
from signing.pki import init_pki
from smdo.journal import journal_store

from router_fixtures import REPO, SMDO

SAMPLE = REPO / "sample_packets" / "valid" / "document.xml"


def smdo(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def refused(result, *fragments: str, status: int = 1) -> str:
    """Exit `status` with exactly one stderr line `error: ...` holding every fragment; no traceback."""
    assert result.exit_code == status, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_process(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([*SMDO, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def refused_process(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def hub_args(data: Path, pki, key: Path | None = None) -> list[str]:
    return ["serve", "--data", str(data), "--host", "127.0.0.1", "--key", str(key or pki.key_path("HUB")),
            "--cert", str(pki.cert_path("HUB")), "--trust", str(pki.trust_dir)]


@pytest.fixture
def encrypted_key(tmp_path, test_pki):
    """ORG-A's key, encrypted with the passphrase in `tmp_path/passphrase`."""
    key = load_private_key(test_pki.key_path("HUB"))
    path = tmp_path / "HUB-encrypted.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"correct horse")))
    (tmp_path / "passphrase").write_text("correct horse\n")
    (tmp_path / "wrong").write_text("battery staple\n")
    return path


# --------------------------------------------------------------------------- serve


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path, test_pki):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert smdo("init", str(tmp_path / "var")).exit_code == 0
        proc = run_process(*hub_args(tmp_path / "var", test_pki), "--port", str(port))
    refused_process(proc, f"{port}", "address already in use", "choose another port")


def test_serve_with_an_encrypted_key_asks_for_its_passphrase_file(tmp_path, test_pki, encrypted_key):
    assert smdo("init", str(tmp_path / "var")).exit_code == 0
    proc = run_process(*hub_args(tmp_path / "var", test_pki, encrypted_key), "--port", "0")
    refused_process(proc, "encrypted", "--key-password-file", "SMDO_KEY_PASSWORD")


async def test_serve_with_an_encrypted_key_and_its_passphrase_starts(tmp_path, test_pki, encrypted_key):
    import os
    proc = subprocess.Popen([*SMDO, "--key-password-file", str(tmp_path / "passphrase"),
                             *hub_args(tmp_path / "var", test_pki, encrypted_key), "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        line = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline), 60)
        assert b"listening on https://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else b"")
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_bad_config_value_names_the_setting(tmp_path, test_pki):
    toml = tmp_path / "hub.toml"
    for setting, fragment in [('port = "eighty"', "setting port: 'eighty' is not valid: give a whole number"),
                              ('retry_base = "soon"', "setting retry_base: 'soon' is not valid: give a duration"),
                              ('port = 8443\nport = 1', "is not valid TOML")]:
        toml.write_text(f"[hub]\n{setting}\n")
        refused(smdo("serve", "--config", str(toml), "--data", str(tmp_path / "var")), str(toml), fragment)
    assert not (tmp_path / "var").exists()  # refused before anything was created
    toml.write_text('[hub]\nevent_loop = "trio"\n')
    refused(smdo("serve", "--config", str(toml), "--data", str(tmp_path / "var")),
            "event_loop must be uvloop or asyncio, not 'trio'")


def test_a_bad_environment_value_names_the_setting(tmp_path):
    refused(smdo("serve", "--data", str(tmp_path / "var"), env={"SMDO_WORKERS": "two"}),
            "setting workers: 'two' is not valid")


# --------------------------------------------------------------------------- keys and signatures


def test_sign_with_an_encrypted_key(tmp_path, test_pki, encrypted_key):
    cert = str(test_pki.cert_path("HUB"))
    out = str(tmp_path / "signed.xml")
    refused(smdo("sign", str(SAMPLE), "--key", str(encrypted_key), "--cert", cert, "-o", out),
            f"{encrypted_key} is an encrypted private key", "--key-password-file FILE", "SMDO_KEY_PASSWORD")
    refused(smdo("--key-password-file", str(tmp_path / "wrong"), "sign", str(SAMPLE), "--key", str(encrypted_key),
                 "--cert", cert, "-o", out), "wrong passphrase")
    assert not Path(out).exists()
    ok = smdo("--key-password-file", str(tmp_path / "passphrase"), "sign", str(SAMPLE), "--key", str(encrypted_key),
              "--cert", cert, "-o", out)
    assert ok.exit_code == 0 and Path(out).exists(), ok.output
    Path(out).unlink()
    ok = smdo("sign", str(SAMPLE), "--key", str(encrypted_key), "--cert", cert, "-o", out,
              env={"SMDO_KEY_PASSWORD": "correct horse"})
    assert ok.exit_code == 0 and Path(out).exists(), ok.output


@pytest.fixture
def own_pki(tmp_path):
    directory = tmp_path / "pki"
    init_pki(directory, key_type="ec")
    return directory


def test_sign_warns_about_a_revoked_or_expired_certificate(own_pki, tmp_path):
    def sign(code: str):
        return smdo("sign", str(SAMPLE), "--key", str(own_pki / "subscribers" / f"{code}.key"),
                    "--cert", str(own_pki / "subscribers" / f"{code}.pem"), "-o", str(tmp_path / f"{code}.xml"))

    assert smdo("pki", "issue", "--dir", str(own_pki), "GOOD", "--key-type", "ec").exit_code == 0
    good = sign("GOOD")
    assert good.exit_code == 0 and "warning" not in good.stderr
    assert smdo("pki", "revoke", "--dir", str(own_pki), "GOOD").exit_code == 0
    revoked = sign("GOOD")
    assert revoked.exit_code == 0 and "warning: the certificate CN=GOOD" in revoked.stderr
    assert "was revoked on" in revoked.stderr and "receivers will refuse this signature" in revoked.stderr
    assert smdo("pki", "issue", "--dir", str(own_pki), "OLD", "--key-type", "ec", "--valid-from", "2020-01-01",
                "--days", "2").exit_code == 0
    expired = sign("OLD")
    assert expired.exit_code == 0 and "expired on 2020-01-03" in expired.stderr


def test_pki_issue_refuses_to_replace_a_key_unless_forced(own_pki):
    key = own_pki / "subscribers" / "ORG.key"
    assert smdo("pki", "issue", "--dir", str(own_pki), "ORG", "--key-type", "ec").exit_code == 0
    first = key.read_bytes()
    refused(smdo("pki", "issue", "--dir", str(own_pki), "ORG", "--key-type", "ec"),
            "ORG already has a key and certificate", "--force")
    assert key.read_bytes() == first
    forced = smdo("pki", "issue", "--dir", str(own_pki), "ORG", "--key-type", "ec", "--force")
    assert forced.exit_code == 0, forced.output
    assert key.read_bytes() != first
    [kept] = (own_pki / "subscribers" / "replaced").glob("ORG.key.*")
    assert kept.read_bytes() == first
    assert len(list((own_pki / "subscribers" / "replaced").iterdir())) == 3  # key, certificate, chain


def test_issued_certificates_serve_tls_on_this_machine_by_default(own_pki):
    from cli.edms import tls_problem

    assert smdo("pki", "issue", "--dir", str(own_pki), "EDMS", "--key-type", "ec").exit_code == 0
    assert tls_problem(own_pki / "subscribers" / "EDMS.pem", "127.0.0.1") is None
    assert smdo("pki", "issue", "--dir", str(own_pki), "SIGN", "--key-type", "ec", "--no-tls").exit_code == 0
    assert "does not include TLS server" in tls_problem(own_pki / "subscribers" / "SIGN.pem", "127.0.0.1")


def test_edms_run_refuses_a_certificate_that_cannot_serve_tls(own_pki, tmp_path):
    assert smdo("pki", "issue", "--dir", str(own_pki), "NOTLS", "--key-type", "ec", "--no-tls").exit_code == 0
    assert smdo("pki", "issue", "--dir", str(own_pki), "LOCAL", "--key-type", "ec", "--tls-host",
                "localhost").exit_code == 0
    for code, why in [("NOTLS", "does not include TLS server authentication"), ("LOCAL", "does not name 127.0.0.1")]:
        refused(smdo("edms", "run", "rekord", "--code", code, "--hub", "https://127.0.0.1:9", "--data",
                     str(tmp_path / code), "--key", str(own_pki / "subscribers" / f"{code}.key"),
                     "--cert", str(own_pki / "subscribers" / f"{code}.pem"), "--trust", str(own_pki / "trust")),
                "cannot serve TLS to the hub", why, "--tls-host 127.0.0.1")


# --------------------------------------------------------------------------- data folder and journal


def test_commands_refuse_a_data_folder_never_initialised(tmp_path):
    typo = tmp_path / "vra"
    for args in (["subscribers", "list", "--data", str(typo)], ["journal", "list", "--data", str(typo)],
                 ["journal", "verify", "--data", str(typo)], ["conformance", "conclusion", "X", "--data", str(typo)],
                 ["backup", "--data", str(typo), str(tmp_path / "copy")]):
        refused(smdo(*args), f"{typo} is not an smdo data folder", "--data", f"smdo init {typo}")
    assert not typo.exists()
    assert smdo("init", str(typo)).exit_code == 0
    assert smdo("subscribers", "list", "--data", str(typo)).exit_code == 0


@pytest.fixture
def journal_dir(tmp_path):
    data = tmp_path / "var"
    assert smdo("init", str(data)).exit_code == 0

    async def create():
        journal = journal_store(data)
        await journal.open()
        await journal.close()
    asyncio.run(create())
    return data


@pytest.mark.parametrize("since", ["yesterday", "today", "2w", "1h30m", "10m", "2026-11-30", "2026-11-30T08:00",
                                   "2026-11-30T08:00:00+03:00"])
def test_journal_list_takes_times_as_people_type_them(journal_dir, since):
    result = smdo("journal", "list", "--data", str(journal_dir), "--since", since)
    assert result.exit_code == 0 and "0 transaction(s)" in result.output, result.output


def test_journal_list_refuses_a_time_or_state_it_does_not_know(journal_dir):
    refused(smdo("journal", "list", "--data", str(journal_dir), "--since", "last week"),
            "'last week' is not a time", "2w", "yesterday", "ISO date", status=2)
    refused(smdo("journal", "list", "--data", str(journal_dir), "--state", "retry_wait"),
            "'retry_wait' is not one of", "'retry-wait'", "journal list --help", status=2)


def test_moments_relative_to_an_injected_now():
    now = datetime(2026, 12, 1, 15, 20, tzinfo=timezone.utc)
    assert moment("1h30m", now) == datetime(2026, 12, 1, 13, 50, tzinfo=timezone.utc)
    assert moment("2w", now) == datetime(2026, 11, 17, 15, 20, tzinfo=timezone.utc)
    assert moment("yesterday", now) == datetime(2026, 11, 30, tzinfo=timezone.utc)
    assert moment("today", now) == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert moment("2026-11-30", now) == datetime(2026, 11, 30, tzinfo=timezone.utc)
    assert moment("2026-11-30T08:00+03:00", now) == datetime(2026, 11, 30, 5, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="is not a time"):
        moment("2x", now)


def test_an_unexpected_error_is_one_line_too(tmp_path):
    """The last line of defence (cli/errors.py): an error no command anticipated."""
    (tmp_path / "not-a-folder").write_text("")
    refused(smdo("init", str(tmp_path / "not-a-folder" / "var")), "not-a-folder")
