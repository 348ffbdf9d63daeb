"""Shared fixtures: one test PKI per session, shaped like the national chain.

- `test_pki`: a PkiLayout (root CA -> republican CA) with subscribers "HUB" (TLS for
  localhost/127.0.0.1), "ORG-A", "ORG-B", "ORG-C" (RSA-2048), and "ORG-EC" (P-256).
- `issue_cert(code, **options)`: issue one more certificate in that PKI (options as
  `signing.pki.issue_certificate`: name, key_type, tls_hostnames, days, not_before, wrong_key_usage).
- `other_pki`: a second, independent PKI with the same CA names ("a certificate from another CA").
- `trust_store`: a TrustStore of `test_pki` (anchor, intermediate, CRLs) as of session start.
Keys are generated once per session, so using these fixtures costs nothing per test.

Tests in SLOW_MODULES (whole conformance runs, subprocess hubs, demos, the browser console tests,
the README walkthrough) carry the `slow` marker: `make test-fast` (pytest -m "not slow") leaves
them out while developing; `make test` runs everything.
"""
from __future__ import annotations

from typing import Callable

import pytest

from signing.keys import Signer
from signing.pki import IssuedCertificate, PkiLayout, init_pki, issue_certificate
from signing.trust import TrustStore

SUBSCRIBERS = ("ORG-A", "ORG-B", "ORG-C")

SLOW_MODULES = {
    "test_bign_conformance", "test_bign_demo", "test_cluster", "test_conformance_endpoint", "test_conformance_flow",
    "test_conformance_hub", "test_conformance_watch", "test_console", "test_crash", "test_demo", "test_readme",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a whole run of processes or of the conformance suite "
                                       "(left out by `make test-fast`)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    directory = tmp_path_factory.mktemp("pki") / "test-pki"
    layout = init_pki(directory)
    issue_certificate(directory, "HUB", "smdo-hub", tls_hostnames=("localhost", "127.0.0.1"))
    for code in SUBSCRIBERS:
        issue_certificate(directory, code, f"Organisation {code[-1]}")
    issue_certificate(directory, "ORG-EC", "Organisation EC", key_type="ec")
    return layout


@pytest.fixture(scope="session")
def issue_cert(test_pki: PkiLayout) -> Callable[..., IssuedCertificate]:
    def issue(code: str, **options) -> IssuedCertificate:
        return issue_certificate(test_pki.directory, code, **options)

    return issue


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    directory = tmp_path_factory.mktemp("pki") / "other-pki"
    layout = init_pki(directory, key_type="ec")
    issue_certificate(directory, "ORG-A", "Organisation A", key_type="ec")
    return layout


@pytest.fixture(scope="session")
def trust_store(test_pki: PkiLayout) -> TrustStore:
    return test_pki.trust_store()


@pytest.fixture(scope="session")
def signer_for(test_pki: PkiLayout) -> Callable[[str], Signer]:
    """signer_for("ORG-A") -> that subscriber's Signer (key parsed once)."""
    return test_pki.signer


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server of the session's own (initdb + pg_ctl in a temporary folder on a
    free port). No skip: without the server programs the tests fail, naming what to install."""
    from smdo.postgres.local import LocalPostgres

    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh database at the schema this code knows (`smdo db upgrade` applied)."""
    from smdo.postgres.migrations import upgrade

    url = postgres_server.new_database()
    upgrade(url)
    return url
