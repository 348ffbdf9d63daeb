"""deploy/: the systemd unit and its environment file name settings the hub really reads."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from router.config import HubConfig, load_config
from signing.keys import KEY_PASSWORD_ENV, KEY_PASSWORD_FILE_ENV

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def environment_file(text: str, *, commented: bool = False) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if commented and line.startswith("#SMDO_"):
            line = line[1:]
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def test_every_variable_of_the_environment_file_is_a_setting():
    env = environment_file((DEPLOY / "smdo-hub.env").read_text(), commented=True)
    known = {f"SMDO_{f.name.upper()}" for f in fields(HubConfig)} | {KEY_PASSWORD_FILE_ENV, KEY_PASSWORD_ENV}
    assert set(env) <= known, set(env) - known  # a misspelt name would be ignored silently
    config = load_config(env=environment_file((DEPLOY / "smdo-hub.env").read_text()))
    assert config.data == Path("/var/lib/smdo-hub") and config.port == 8443 and config.host == "0.0.0.0"
    assert config.crl == (Path("/etc/smdo-hub/issuing-ca.crl"),) and config.delivery_deadline == 72 * 3600


def test_the_unit_runs_smdo_serve_with_that_environment():
    unit = (DEPLOY / "smdo-hub.service").read_text()
    assert "EnvironmentFile=/etc/smdo-hub/smdo-hub.env" in unit
    assert "ExecStart=/opt/smdo-hub/bin/smdo serve" in unit
    assert "ReadWritePaths=/var/lib/smdo-hub" in unit
