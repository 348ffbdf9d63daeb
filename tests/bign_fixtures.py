"""A national-style test PKI: bign root -> bign issuing CA -> bign subscribers, plus the EC TLS CA
a bign PKI keeps for TLS (the hub's TLS certificate "HUB" comes from it). Import the fixture
into a test module: `from bign_fixtures import bign_pki`."""
from __future__ import annotations

import pytest

from signing.pki import PkiLayout, init_pki, issue_certificate

BIGN_SUBSCRIBERS = ("ORG-A", "ORG-B", "ORG-C")


@pytest.fixture(scope="session")
def bign_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    directory = tmp_path_factory.mktemp("pki") / "bign-pki"
    layout = init_pki(directory, key_type="bign")
    issue_certificate(directory, "HUB", "smdo-hub", key_type="ec", tls_hostnames=("localhost", "127.0.0.1"))
    for code in BIGN_SUBSCRIBERS:
        issue_certificate(directory, code, f"Organisation {code[-1]}", key_type="bign")
    return layout
