"""The suite's reports: the table a person reads, the JUnit XML CI reads, the signed conclusion,
and the command's refusals of bad arguments."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from lxml import etree

from cli.main import main
from signing.errors import InvalidSignature
from smdo.conformance.conclusion import conclusion_xml, read_conclusion
from smdo.conformance.report import junit_xml, table
from smdo.conformance.runner import CaseResult, SuiteResult

STARTED = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)


def suite(*outcomes: tuple[str, str, str]) -> SuiteResult:
    return SuiteResult("ORG-X", "through the hub", "1.0", STARTED, STARTED + timedelta(seconds=12),
                       tuple(CaseResult(name, f"title of {name}", outcome, reason, 1.5)
                             for name, outcome, reason in outcomes))


MIXED = suite(("delivery-ack", "passed", "acknowledged in 0.05 s"),
              ("registration-ack", "failed", "no registration acknowledgement arrived " + "x" * 120),
              ("incoming-number", "skipped", "not run: needs registration acknowledgements"),
              ("large-attachment", "error", "the hub refused the suite's packet"))


def test_only_a_run_where_every_case_passed_passes():
    assert not MIXED.passed
    assert suite(("a", "passed", ""), ("b", "passed", "")).passed
    assert not suite(("a", "passed", ""), ("b", "skipped", "")).passed
    assert not suite().passed
    assert MIXED.summary() == {"total": 4, "passed": 1, "failed": 1, "skipped": 1, "errors": 1,
                               "failed_cases": ["registration-ack", "large-attachment"]}


def test_table_has_a_row_per_case_wraps_long_reasons_and_ends_with_the_verdict():
    text = table(MIXED, width=80)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["case", "result", "time"]
    assert [line.split()[0] for line in lines[2:] if not line.startswith(" ")][:4] == [
        "delivery-ack", "registration-ack", "incoming-number", "large-attachment"]
    assert all(len(line) <= 80 for line in lines[:-1])
    assert lines[-1].startswith("FAILED: 1 passed, 1 failed, 1 skipped, 1 errors, of 4 (ORG-X")


def test_junit_report_marks_each_outcome():
    root = etree.fromstring(junit_xml(MIXED))
    [testsuite] = root
    assert (testsuite.get("tests"), testsuite.get("failures"), testsuite.get("errors"), testsuite.get("skipped")) == \
        ("4", "1", "1", "1")
    cases = {c.get("name"): c for c in testsuite.iter("testcase")}
    assert cases["delivery-ack"].find("failure") is None and cases["delivery-ack"].find("skipped") is None
    assert cases["registration-ack"].find("failure").get("message").startswith("no registration acknowledgement")
    assert cases["incoming-number"].find("skipped") is not None
    assert cases["large-attachment"].find("error") is not None


def test_conclusion_is_signed_and_a_changed_one_does_not_verify(test_pki):
    data = conclusion_xml(MIXED, test_pki.signer("HUB"))
    root = read_conclusion(data)
    assert root.get("result") == "failed" and root.get("suite_version") == "1.0"
    assert [c.get("outcome") for c in root.iterfind("Cases/Case")] == ["passed", "failed", "skipped", "error"]
    with pytest.raises(InvalidSignature):
        read_conclusion(data.replace(b'result="failed"', b'result="passed"'))


@pytest.mark.parametrize("args, message", [
    ([], "exactly one of --subscriber"),
    (["--subscriber", "A", "--endpoint", "https://x.example/in"], "exactly one of --subscriber"),
    (["--subscriber", "A"], "--hub-key and --hub-cert"),
    (["--subscriber", "A", "--hub-key", "{hub_key}", "--hub-cert", "{hub_cert}"], "--operator-cert and --operator-key"),
    (["--endpoint", "https://x.example/in"], "--endpoint needs --cert"),
    (["--subscriber", "A", "--listen", "nowhere"], "HOST:PORT"),
])
def test_run_refuses_bad_arguments(test_pki, args, message):
    base = ["conformance", "run", "--trust", str(test_pki.trust_dir), "--key", str(test_pki.key_path("ORG-A")),
            "--counterpart-cert", str(test_pki.cert_path("ORG-A"))]
    args = [a.format(hub_key=test_pki.key_path("HUB"), hub_cert=test_pki.cert_path("HUB")) for a in args]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_run_against_an_unknown_subscriber_says_so(test_pki, tmp_path):
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    result = CliRunner().invoke(main, [
        "conformance", "run", "--subscriber", "NOBODY", "--data", str(tmp_path), "--hub", "https://127.0.0.1:9",
        "--trust", str(test_pki.trust_dir), "--key", str(test_pki.key_path("ORG-A")),
        "--counterpart-cert", str(test_pki.cert_path("ORG-A")), "--hub-key", str(test_pki.key_path("HUB")),
        "--hub-cert", str(test_pki.cert_path("HUB")), "--operator-cert", str(test_pki.cert_path("ORG-C")),
        "--operator-key", str(test_pki.key_path("ORG-C"))])
    assert result.exit_code == 1 and "unknown subscriber code 'NOBODY'" in result.stderr


def test_conclusion_command_refuses_unknown_and_untested_subscribers(test_pki, tmp_path):
    from smdo.registry import Registry
    from smdo.unp import make_unp

    with Registry.in_data_dir(tmp_path) as registry:
        registry.add_subscriber("ORG-A", name="A", unp=make_unp("10000000"), certificates=[test_pki.certificate("ORG-A")],
                                pull=True)
    for code, message in [("NOBODY", "unknown subscriber code 'NOBODY'"), ("ORG-A", "has no conformance conclusion")]:
        result = CliRunner().invoke(main, ["conformance", "conclusion", code, "--data", str(tmp_path)])
        assert result.exit_code == 1 and message in result.stderr
