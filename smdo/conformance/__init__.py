"""The conformance suite: the hub's test counterpart exchanges real packets with an EDMS under test.

`smdo conformance run` (cli/conformance.py) wires it up; the pieces here know no web server:
packets.py builds what the suite sends, counterpart.py receives and answers what comes back,
routes.py says how packets reach the EDMS (through the hub, or straight to its push endpoint),
cases.py holds the named cases, runner.py runs them, report.py and conclusion.py record the result.
"""
SUITE_VERSION = "1.1"
