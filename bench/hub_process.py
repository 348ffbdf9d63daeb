"""`smdo serve` as a subprocess, for the benches that measure a real hub: started on a free port
with the test PKI's hub key, certificate and trust, and known by the URL it prints once it listens."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def start_hub(pki, *args: str, python: Sequence[str] = (), env: Mapping[str, str] | None = None
              ) -> tuple[subprocess.Popen[bytes], str]:
    """`smdo serve --port 0 --key --cert --trust` (the hub's, from `pki`) and `args` (--data, --db,
    --config ...); returns the process and its base URL once it listens. `python`: interpreter
    options before `-m` (e.g. a profiler)."""
    proc = subprocess.Popen(
        [sys.executable, *python, "-m", "cli.main", "serve", "--port", "0", "--key", str(pki.key_path("HUB")),
         "--cert", str(pki.cert_path("HUB")), "--trust", str(pki.trust_dir), *args],
        cwd=REPO, stdout=subprocess.PIPE, env=None if env is None else dict(env))
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        stop_hub(proc)
        raise SystemExit(f"the hub did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


def stop_hub(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM (the hub drains and stops), SIGKILL if it has not stopped within `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
