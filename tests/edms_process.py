"""An emulated EDMS as its own process (`smdo edms run`), and the restart hook an integrator would
write for it: kill the process for real (SIGKILL: nothing is flushed) and start it again, same
data and port, waiting until it says READY."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RESTART = '''
import json, os, signal, subprocess, sys, time
state_path = sys.argv[1]
state = json.load(open(state_path))
os.kill(state["pid"], signal.SIGKILL)
time.sleep(0.2)
log = open(state["log"], "wb")
process = subprocess.Popen(state["argv"], stdout=log, stderr=subprocess.STDOUT, env=state["env"],
                           start_new_session=True)
state["pid"] = process.pid
json.dump(state, open(state_path, "w"))
deadline = time.time() + 60
while b"READY" not in open(state["log"], "rb").read():
    if process.poll() is not None or time.time() > deadline:
        sys.exit("the EDMS did not come back: " + open(state["log"], "rb").read()[-500:].decode("utf-8", "replace"))
    time.sleep(0.1)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EdmsProcess:
    def __init__(self, work: Path, kind: str, args: list[str]) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.state_path = work / "edms-process.json"
        self.script = work / "restart_edms.py"
        self.script.write_text(RESTART)
        self.log = work / "edms.log"
        self.argv = [sys.executable, "-m", "cli.main", "edms", "run", kind, *args,
                     "--listen", f"127.0.0.1:{free_port()}"]
        self.env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
        self.ready: dict = {}

    @property
    def restart_command(self) -> str:
        return f"{sys.executable} {self.script} {self.state_path}"

    def start(self, wait: float = 60.0) -> dict:
        with open(self.log, "wb") as log:
            process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                       start_new_session=True)
        self.state_path.write_text(json.dumps({"pid": process.pid, "argv": self.argv, "env": self.env,
                                               "log": str(self.log)}))
        deadline = time.monotonic() + wait
        while True:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("READY "):
                    self.ready = json.loads(line[6:])
                    return self.ready
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"smdo edms run did not start: {self.log.read_text(errors='replace')[-800:]}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return json.loads(self.state_path.read_text())["pid"]

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
