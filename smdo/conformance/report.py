"""What a person reads at the end (a table) and what CI reads (JUnit XML)."""
from __future__ import annotations

import textwrap

from lxml import etree

from smdo.conformance.runner import ERROR, FAILED, PASSED, SKIPPED, SuiteResult


def table(result: SuiteResult, width: int = 100) -> str:
    name_w = max(len(r.name) for r in result.results) if result.results else 4
    lines = [f"{'case':<{name_w}}  {'result':<7}  {'time':>6}  reason", f"{'-' * name_w}  -------  ------  ------"]
    indent = " " * (name_w + 2 + 7 + 2 + 6 + 2)
    for r in result.results:
        wrapped = textwrap.wrap(r.reason, max(30, width - len(indent))) or [""]
        lines.append(f"{r.name:<{name_w}}  {r.outcome:<7}  {r.seconds:5.1f}s  {wrapped[0]}")
        lines.extend(indent + more for more in wrapped[1:])
    s = result.summary()
    verdict = "PASSED" if result.passed else "FAILED"
    lines.append(f"{verdict}: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, "
                 f"{s['errors']} errors, of {s['total']} ({result.subscriber}, suite {result.suite_version})")
    return "\n".join(lines)


def junit_xml(result: SuiteResult) -> bytes:
    s = result.summary()
    total_time = (result.finished - result.started).total_seconds()
    suite = etree.Element("testsuite", name=f"smdo-conformance-{result.subscriber}", tests=str(s["total"]),
                          failures=str(s["failed"]), errors=str(s["errors"]), skipped=str(s["skipped"]),
                          time=f"{total_time:.3f}", timestamp=result.started.isoformat(timespec="seconds"))
    props = etree.SubElement(suite, "properties")
    for name, value in [("subscriber", result.subscriber), ("route", result.route),
                        ("suite_version", result.suite_version)]:
        etree.SubElement(props, "property", name=name, value=value)
    for r in result.results:
        testcase = etree.SubElement(suite, "testcase", classname=f"smdo.conformance.{result.subscriber}",
                                    name=r.name, time=f"{r.seconds:.3f}")
        if r.outcome == FAILED:
            etree.SubElement(testcase, "failure", message=r.reason).text = r.title
        elif r.outcome == ERROR:
            etree.SubElement(testcase, "error", message=r.reason).text = r.title
        elif r.outcome == SKIPPED:
            etree.SubElement(testcase, "skipped", message=r.reason)
        else:
            assert r.outcome == PASSED
            etree.SubElement(testcase, "system-out").text = r.reason
    root = etree.Element("testsuites")
    root.append(suite)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
