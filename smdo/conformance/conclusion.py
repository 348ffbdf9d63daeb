"""The certification conclusion: what was tested, when, with which suite, and the result, signed
by the hub so it can be shown to anyone later and checked."""
from __future__ import annotations

from lxml import etree

from signing.keys import Signer
from smdo.conformance.packets import sign
from smdo.conformance.runner import SuiteResult


def conclusion_xml(result: SuiteResult, signer: Signer) -> bytes:
    s = result.summary()
    root = etree.Element("ConformanceConclusion", subscriber=result.subscriber, suite_version=result.suite_version,
                         started=result.started.isoformat(timespec="seconds"),
                         finished=result.finished.isoformat(timespec="seconds"),
                         result="passed" if result.passed else "failed")
    etree.SubElement(root, "Route").text = result.route
    summary = etree.SubElement(root, "Summary")
    for key in ("total", "passed", "failed", "skipped", "errors"):
        summary.set(key, str(s[key]))
    cases = etree.SubElement(root, "Cases")
    for r in result.results:
        etree.SubElement(cases, "Case", name=r.name, outcome=r.outcome, seconds=f"{r.seconds:.3f}",
                         title=r.title).text = r.reason
    return sign(root, signer)


def read_conclusion(data: bytes) -> etree._Element:
    """Parse and verify a stored conclusion; returns the verified root (raises on a bad signature)."""
    from signing.xmldsig import verify_enveloped
    from smdo.xmlparse import parse_xml

    root = parse_xml(data)
    verify_enveloped(root)
    return root
