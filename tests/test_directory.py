"""The signed directory of active subscribers and document kinds."""
from __future__ import annotations

from lxml import etree
import pytest

from smdo.directory import build_directory, directory_schema, read_directory
from smdo.errors import PacketRejected
from smdo.kinds import document_kinds
from smdo.registry import Registry, SubscriberStatus as S

from registry_fixtures import UNP_A, UNP_B, issue, pki  # noqa: F401  (pki is a fixture)


@pytest.fixture
def snapshot(tmp_path, pki):
    with Registry(tmp_path / "registry.db") as registry:
        for code, status, unp in [("DIR-A", S.ACTIVE, UNP_A), ("DIR-B", S.ACTIVE, UNP_B),
                                  ("DIR-SUS", S.SUSPENDED, UNP_A), ("DIR-T", S.TESTING, UNP_A),
                                  ("SMDO-TEST", S.ACTIVE, UNP_B)]:
            registry.add_subscriber(code, name=f"Агенцтва {code}", unp=unp, certificates=[issue(pki, code).certificate],
                                    pull=True, status=status, actor="t")
        registry.add_certificate("DIR-A", issue(pki, "DIR-A-2").certificate, actor="t")
        yield registry.snapshot()


@pytest.fixture
def hub(pki):
    return issue(pki, "HUB").signer()


def test_directory_lists_active_subscribers_with_certificates_and_every_kind(snapshot, hub):
    directory = read_directory(build_directory(snapshot, hub))
    # suspended and under-test ones are not published, nor the hub's own conformance counterpart SMDO-TEST
    assert set(directory.subscribers) == {"DIR-A", "DIR-B"}
    a = directory.subscribers["DIR-A"]
    assert a.name == "Агенцтва DIR-A" and a.unp == UNP_A
    assert a.fingerprints == snapshot.get("DIR-A").cert_fingerprints and len(a.fingerprints) == 2
    assert directory.kinds == document_kinds() and directory.kinds
    assert directory.version == snapshot.version
    assert directory.signer == hub.certificate


def test_directory_is_schema_valid_and_signed_by_the_hub(snapshot, hub, pki):
    data = build_directory(snapshot, hub)
    root = etree.fromstring(data)
    assert root[-1].tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"
    assert directory_schema().validate(root), directory_schema().error_log
    from signing.xmldsig import verify_enveloped
    verified = verify_enveloped(root)
    pki.trust_store().validate(verified.certificate)  # a hub certificate from the trusted PKI


def test_a_changed_directory_fails_verification(snapshot, hub):
    data = build_directory(snapshot, hub)
    forged = data.replace(b'code="DIR-B"', b'code="DIR-X"')
    assert forged != data
    with pytest.raises(PacketRejected) as caught:
        read_directory(forged)
    assert caught.value.code == -21


def test_an_unsigned_or_malformed_directory_is_rejected(snapshot, hub):
    root = etree.fromstring(build_directory(snapshot, hub))
    root.remove(root[-1])
    with pytest.raises(PacketRejected) as caught:
        read_directory(etree.tostring(root))
    assert caught.value.code == -22
    with pytest.raises(PacketRejected) as caught:
        read_directory(b"<Directory><unclosed></Directory>")
    assert caught.value.code == -1
    with pytest.raises(PacketRejected) as caught:
        read_directory(b'<Directory format="SMDO-DIRECTORY-1" version="1" issued="2026-01-01T00:00:00Z"/>')
    assert caught.value.code == 30 and "Subscribers" in str(caught.value)


def test_hostile_xml_is_not_expanded(snapshot):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b'<Directory format="SMDO-DIRECTORY-1" version="1" issued="2026-01-01T00:00:00Z">&e;</Directory>')
    with pytest.raises(PacketRejected) as caught:
        read_directory(bomb)
    assert caught.value.code == -1 and "DTD not allowed" in str(caught.value)
