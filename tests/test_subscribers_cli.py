"""`smdo subscribers ...` through click's CliRunner, on a real registry file and the test PKI."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from cli.main import main
from signing.pki import init_pki, revoke_certificate
from smdo.registry import Registry, SubscriberStatus as S

from registry_fixtures import UNP_A, UNP_B, issue, pki  # noqa: F401  (pki is a fixture)


@pytest.fixture
def smdo(tmp_path, pki, monkeypatch):
    """Run `smdo subscribers ...` against tmp_path/var, trusting the test PKI; returns the Result."""
    data = tmp_path / "var"
    monkeypatch.setenv("SMDO_DATA", str(data))
    monkeypatch.setenv("SMDO_ACTOR", "alice")
    monkeypatch.setenv("SMDO_TRUST", str(pki.trust_dir))
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(data)]).exit_code == 0

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, ["subscribers", *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run.registry = lambda: Registry.in_data_dir(data)
    return run


def refused(result, *fragments: str) -> None:
    """Exit 1 with exactly one line `error: ...` naming what is wrong."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def add_args(code, cert, *extra):
    return ["add", code, "--name", f"Agency {code}", "--unp", UNP_A, "--cert", str(cert.cert_path), *extra]


def test_add_list_show_history(smdo, pki):
    cert = issue(pki, "CLI-A")
    out = smdo(*add_args("CLI-A", cert, "--push", "https://a.example/smdo", "--edms-product", "Rekord",
                         "--edms-version", "5", "--sys-id", "0f8fad5b-d9cb-469f-a165-70867728950e",
                         "--contact", "ops@a", "--reason", "application 17")).output
    assert "registered CLI-A" in out and "status registered" in out
    listing = smdo("list").output
    assert "CLI-A" in listing and "registered" in listing and "push https://a.example/smdo" in listing
    [entry] = json.loads(smdo("list", "--json").output)
    assert entry["code"] == "CLI-A" and entry["unp"] == UNP_A and entry["cert_fingerprints"] == [cert.fingerprint]
    shown = smdo("show", "CLI-A").output
    assert cert.fingerprint in shown and "never run" in shown and "Rekord 5" in shown
    details = json.loads(smdo("show", "CLI-A", "--json").output)
    assert details["certificates"][0]["not_after"].startswith(str(cert.certificate.not_valid_after_utc.year))
    [added] = json.loads(smdo("history", "CLI-A", "--json").output)
    assert (added["actor"], added["action"], added["to"], added["reason"]) == ("alice", "add", "registered",
                                                                               "application 17")


def test_actor_flag_beats_environment(smdo, pki):
    smdo(*add_args("CLI-A", issue(pki, "CLI-A"), "--pull", "--actor", "bob"))
    assert "bob" in smdo("history", "CLI-A").output


@pytest.mark.parametrize("extra, fragments", [
    (["--unp", "200988542"], ["UNP 200988542", "check digit"]),
    (["--unp", "12345"], ["exactly 9 digits"]),
    (["--push", "not a url"], ["push URL", "http"]),
    ([], ["delivery mode is required"]),
    (["--pull", "--push", "https://x.example"], ["not both"]),
    (["--pull", "--sys-id", "xyz"], ["GUID"]),
])
def test_add_refuses_bad_arguments_and_writes_nothing(smdo, pki, extra, fragments):
    cert = issue(pki, "CLI-A")
    args = add_args("CLI-A", cert)
    if "--unp" in extra:  # replace the valid one
        args[args.index("--unp") + 1] = extra[extra.index("--unp") + 1]
        extra = [e for i, e in enumerate(extra) if e != "--unp" and (i == 0 or extra[i - 1] != "--unp")]
        extra = extra or ["--pull"]
    refused(smdo(*args, *extra, ok=False), *fragments)
    assert json.loads(smdo("list", "--json").output) == []


def test_duplicate_code_and_unknown_code(smdo, pki):
    smdo(*add_args("CLI-A", issue(pki, "CLI-A"), "--pull"))
    refused(smdo(*add_args("CLI-A", issue(pki, "CLI-A2"), "--pull"), ok=False), "'CLI-A' is already registered")
    for args in (["show", "NOPE"], ["history", "NOPE"], ["suspend", "NOPE", "--reason", "x"],
                 ["update", "NOPE", "--contact", "x"], ["cert", "remove", "NOPE", "ab"]):
        refused(smdo(*args, ok=False), "unknown subscriber code 'NOPE'")


def test_certificate_from_another_ca_is_refused(smdo, tmp_path):
    stranger = init_pki(tmp_path / "other-pki", key_type="ec")
    refused(smdo(*add_args("CLI-A", issue(stranger, "CLI-A"), "--pull"), ok=False), "is not trusted")
    assert json.loads(smdo("list", "--json").output) == []


def test_expired_certificate_is_refused(smdo, pki):
    old = issue(pki, "CLI-OLD", not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10), days=2)
    refused(smdo(*add_args("CLI-OLD", old, "--pull"), ok=False), "expired on")


def test_revoked_certificate_is_refused_without_an_extra_flag(smdo, tmp_path):
    own = init_pki(tmp_path / "own-pki", key_type="ec")  # revoking must not disturb the shared PKI
    cert = issue(own, "CLI-REV")
    crl = revoke_certificate(own.directory, "CLI-REV")
    assert crl.parent == own.trust_dir  # `smdo pki` writes its CRLs where --trust finds them
    refused(smdo(*add_args("CLI-REV", cert, "--pull", "--trust", str(own.trust_dir)), ok=False),
            "not trusted", "revoked")


def test_missing_certificate_file_and_missing_trust(smdo, pki, tmp_path, monkeypatch):
    refused(smdo("add", "CLI-A", "--name", "A", "--unp", UNP_A, "--pull", "--cert", str(tmp_path / "none.pem"),
                 ok=False), "cannot read certificate")
    monkeypatch.delenv("SMDO_TRUST")
    result = smdo(*add_args("CLI-A", issue(pki, "CLI-A"), "--pull"), ok=False)
    assert result.exit_code == 2 and "--trust" in result.output  # click's usage error names the option


def test_update_changes_fields_and_refuses_bad_ones(smdo, pki):
    smdo(*add_args("CLI-A", issue(pki, "CLI-A"), "--pull"))
    smdo("update", "CLI-A", "--push", "https://new.example/in", "--unp", UNP_B, "--reason", "moved")
    sub = smdo.registry().require("CLI-A")
    assert (sub.delivery_mode, sub.push_url, sub.unp) == ("push", "https://new.example/in", UNP_B)
    refused(smdo("update", "CLI-A", "--push", "mailto:x@y", ok=False), "push URL")
    refused(smdo("update", "CLI-A", "--unp", "200988542", ok=False), "check digit")
    assert smdo.registry().require("CLI-A").unp == UNP_B
    smdo("update", "CLI-A", "--pull")
    assert smdo.registry().require("CLI-A").delivery_mode == "pull"


def test_lifecycle_commands(smdo, pki):
    smdo(*add_args("CLI-A", issue(pki, "CLI-A"), "--pull"))
    refused(smdo("activate", "CLI-A", ok=False), "activate takes a certified subscriber", "CLI-A is registered")
    registry = smdo.registry()
    registry.set_status("CLI-A", S.TESTING, actor="suite", reason="conformance run")
    registry.record_conclusion("CLI-A", suite_version="t", passed=True, summary={}, document=b"<c/>", actor="suite")
    registry.record_conclusion("CLI-A", suite_version="t", passed=False, summary={"failed_cases": ["tampered-signature"]},
                               document=b"<c/>", actor="suite")
    assert "FAILED (failed: tampered-signature)" in smdo("show", "CLI-A").output
    refused(smdo("activate", "CLI-A", ok=False), "without a passing conformance conclusion")
    assert "failed: tampered-signature" in smdo("history", "CLI-A").output
    registry.record_conclusion("CLI-A", suite_version="t", passed=True, summary={}, document=b"<c/>", actor="suite")
    assert "certified -> active" in smdo("activate", "CLI-A", "--reason", "contract signed").output
    assert smdo("suspend", "CLI-A", ok=False).exit_code == 2  # --reason is required
    smdo("suspend", "CLI-A", "--reason", "unpaid invoice")
    refused(smdo("suspend", "CLI-A", "--reason", "again", ok=False), "suspend takes a active subscriber")
    smdo("resume", "CLI-A", "--reason", "paid")
    smdo("revoke", "CLI-A", "--reason", "agency closed")
    refused(smdo("resume", "CLI-A", "--reason", "oops", ok=False), "CLI-A is revoked")
    history = smdo("history", "CLI-A").output
    for text in ("certified -> active", "contract signed", "unpaid invoice", "suspended -> active", "agency closed"):
        assert text in history
    assert smdo.registry().require("CLI-A").status is S.REVOKED


def test_cert_add_and_remove(smdo, pki, tmp_path):
    first, second = issue(pki, "CLI-A"), issue(pki, "CLI-A-2")
    smdo(*add_args("CLI-A", first, "--pull"))
    smdo("cert", "add", "CLI-A", str(second.cert_path), "--reason", "rollover")
    assert smdo.registry().require("CLI-A").cert_fingerprints == {first.fingerprint, second.fingerprint}
    refused(smdo("cert", "add", "CLI-A", str(second.cert_path), ok=False), "already bound to this subscriber")
    stranger = init_pki(tmp_path / "other-pki", key_type="ec")
    refused(smdo("cert", "add", "CLI-A", str(issue(stranger, "X").cert_path), ok=False), "not trusted")
    smdo("cert", "remove", "CLI-A", first.fingerprint, "--reason", "old key")
    refused(smdo("cert", "remove", "CLI-A", second.fingerprint, ok=False), "only certificate")
    assert smdo.registry().require("CLI-A").cert_fingerprints == {second.fingerprint}
    actions = [e["action"] for e in json.loads(smdo("history", "CLI-A", "--json").output)]
    assert actions == ["add", "cert-add", "cert-remove"]


def test_ack_dialect_profile_and_mail_address_options(smdo, pki):
    cert = issue(pki, "CLI-R")
    smdo(*add_args("CLI-R", cert, "--pull", "--ack-dialect", "router", "--profile", "classic",
                   "--mail-address", "smdo@r.example.by"))
    shown = smdo("show", "CLI-R").output
    assert "router" in shown and "classic" in shown and "smdo@r.example.by" in shown
    assert json.loads(smdo("show", "CLI-R", "--json").output)["ack_dialect"] == "router"
    smdo("update", "CLI-R", "--ack-dialect", "hub")
    assert json.loads(smdo("show", "CLI-R", "--json").output)["ack_dialect"] == "hub"
    bad = smdo(*add_args("CLI-S", issue(pki, "CLI-S"), "--pull", "--ack-dialect", "smtp"), ok=False)
    assert bad.exit_code == 2  # click's own usage error names the allowed choices
