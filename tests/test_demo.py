"""The demo scenario end to end: real `smdo serve` and four `smdo edms run` subprocesses over
HTTPS and SMTP on loopback (one a classic client by mail), every packet followed to its final state."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_scenario_reaches_every_final_state(tmp_path):
    data = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "cli.demo", "--data", str(data), "--timeout", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "every packet reached its final state" in out
    table = out[out.index("pkt  what"):]
    rows = [line for line in table.splitlines()[2:] if line[:1].isalpha() and "  " in line]
    assert len(rows) == 11  # 10 packets, one of them to two receivers
    assert sum("registered as" in r for r in rows) == 10
    # the hub's journal agrees with what each sender saw
    assert sum("  registered   registered as" in r for r in rows) == 10
    [refused] = [r for r in rows if "  refused      registration refused" in r]
    assert refused.startswith("G") and "kind 10" in refused
    for label in "ABCDEFHIJ":
        assert any(r.startswith(label) and "registered as" in r for r in rows), label
    # the classic client (by mail) and a push EDMS over HTTPS, both ways
    assert any(r.startswith("I") and "SELSOVET (laiss)" in r and "registered as R-" in r for r in rows)
    assert any(r.startswith("J") and "SELSOVET" in r and "registered as L-" in r for r in rows)
    # every piece actually moved through the hub and was stopped cleanly
    assert "stopped" in out.splitlines()[-1]
    assert (data / "hub" / "journal.db").exists()
    assert sorted(p.name for p in (data / "edms" / "MINFIN" / "inbox").iterdir()) == [
        "S-2026_0001.xml", "S-2026_0002.xml"]
