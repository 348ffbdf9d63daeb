"""The README's walkthrough, run exactly as written: every ```sh block between the
`<!-- walkthrough:start -->` and `<!-- walkthrough:end -->` markers of README.md, in order, in one
bash session in an empty folder (with the project's .venv), as a newcomer would paste them."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def walkthrough_blocks(readme: str) -> list[str]:
    start, end = readme.index("<!-- walkthrough:start -->"), readme.index("<!-- walkthrough:end -->")
    return re.findall(r"^```sh\n(.*?)^```$", readme[start:end], flags=re.S | re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_walkthrough_has_its_blocks():
    blocks = walkthrough_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 10 and blocks[0].startswith(". .venv/bin/activate")


def test_the_readme_walkthrough_runs_from_an_empty_folder(tmp_path):
    blocks = walkthrough_blocks((REPO / "README.md").read_text())
    venv = tmp_path / ".venv"
    if (REPO / ".venv" / "bin" / "activate").exists():
        venv.symlink_to(REPO / ".venv")  # what `make test` built in the clone
    else:  # pytest run from another environment: "activating" puts its `smdo` and python first
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    script = "set -euo pipefail\n" + "".join(
        f"echo '### README walkthrough block {n}' >&2\n{block}" for n, block in enumerate(blocks, 1))
    # Free ports instead of the README's defaults, so a second test run beside this one cannot collide.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMDO_", "VIRTUAL_ENV"))}
    env.update(SMDO_PORT=str(free_port()), MINFIN_PORT=str(free_port()), MINEK_PORT=str(free_port()))
    proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError("the walkthrough did not finish in 600 s:\n" + output[-6000:])
    finally:  # background processes the blocks started (hub, EDMS), if a block failed before block 11
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    logs = "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(tmp_path.glob("*.log")))
    assert proc.returncode == 0, output[-8000:] + logs
    assert "PASSED" in output and "MINFIN received the letter" in output and "MINEK received the reply" in output
    assert output.count("certified") >= 2, output[-8000:]
