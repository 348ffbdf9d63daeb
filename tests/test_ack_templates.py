"""Cheaper receipts (issue 15): the hub's acks are filled-in templates, byte for byte what the packet
model builds; a receiver's delivery ack stays exactly as strict once its certificate is cached."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from lxml import etree

from signing.pki import revoke_certificate
from signing.trust import TrustStore
from smdo.check import verify_packet
from smdo.dialects import DIALECTS
from smdo.errors import Problem
from smdo.journal.records import Claimed
from smdo.packet import to_element
from smdo.receipts import acknowledgement, delivery_ack
from smdo.registry import Registry
from smdo.storage import parse_storage
from smdo.validation import validate
from smdo.xmlparse import Limits, parse_xml

from router.acks import HubAcks
from router.receipts import BadReceipt, Receipts
from router.registry_view import RegistryView
from router_fixtures import register, sender_of, sign

MSG_ID = "6a1f0c52-31c4-4b0e-9d55-2f0a8e1b7c01"
AT = datetime(2026, 12, 1, 16, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_hub_ack_equals_the_model_built_tree_and_validates(test_pki, trust_store, dialect: str) -> None:
    acks = HubAcks(test_pki.signer("HUB"), "HUB", "smdo-hub", now=lambda: AT,
                   new_id=lambda: "0b9e3a58-7c41-4f57-8a0e-1d6c2f4b9e11")
    calls: list[dict] = []
    real_sign = acks.sign

    def recording_sign(**kwargs):
        calls.append(kwargs)
        return real_sign(**kwargs)

    acks.sign = recording_sign  # type: ignore[method-assign]
    made = [
        acks.accepted(MSG_ID, "ORG-A", dialect),
        acks.rejected(MSG_ID, "ORG-A", [Problem(33, "bad <thing> & more"), Problem(7, "")], dialect),
        acks.rejected(None, None, [Problem(104, "blocked")], dialect),
        acks.outcome(101, MSG_ID, "ORG-A", "ORG-B", dialect=dialect)[1],
        acks.outcome(102, MSG_ID, "ORG-A", "ORG-B", attempt=2, dialect=dialect)[1],
    ]
    assert len(calls) == len(made)
    for body, kwargs in zip(made, calls):
        root = parse_xml(body)
        assert validate(root) == []
        verify_packet(root, trust_store)
        root.remove(root[-1])  # the ds:Signature, last child
        expected = to_element(acknowledgement(
            sender=acks.sender, dtstamp=AT, **{**kwargs, "msg_id": kwargs.get("msg_id") or acks.new_id()}))
        assert etree.tostring(root) == etree.tostring(expected)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_hub_acks_of_one_result_come_from_signed_bytes_templates_equal_to_the_tree(test_pki, trust_store,
                                                                                 dialect: str) -> None:
    acks = HubAcks(test_pki.signer("HUB"), "HUB", "smdo-hub", now=lambda: AT,
                   new_id=lambda: "0b9e3a58-7c41-4f57-8a0e-1d6c2f4b9e11")
    for made, kwargs in [
        (acks.accepted(MSG_ID, "ORG-A", dialect), {}),
        (acks.outcome(101, MSG_ID, "ORG-A", "ORG-B", dialect=dialect)[1], {"about": True}),
    ]:
        root = parse_xml(made)
        assert validate(root) == []
        verify_packet(root, trust_store)
        by_tree = acks._sign_tree(  # the same ack built and signed as a tree
            acknowledged_msg_id=MSG_ID, receiver_id="ORG-A", results=[(int(root.find("Body/Acknowledgement/AckResult")
                                                                           .get("errorcode")),
                                                                       root.findtext("Body/Acknowledgement/AckResult"))],
            msg_id=root.get("msg_id"), dtstamp=AT, about_receiver="ORG-B" if kwargs else None,
            ack_type=int(root.find("Body/Acknowledgement").get("ack_type")))
        tree = parse_xml(by_tree)
        for signed in (root, tree):  # ECDSA signatures differ from one signing to the next; nothing else may
            signed.find("{http://www.w3.org/2000/09/xmldsig#}Signature/"
                        "{http://www.w3.org/2000/09/xmldsig#}SignatureValue").text = ""
        assert etree.tostring(root) == etree.tostring(tree)
    assert acks._signed and all(t is not None for t in acks._signed.values())  # the templates were used


def test_a_hub_ack_with_a_value_to_escape_is_built_as_a_tree_and_still_verifies(test_pki, trust_store) -> None:
    acks = HubAcks(test_pki.signer("HUB"), "HUB", "smdo-hub")
    template = acks._signed_template(1, True)
    assert template is not None and template.fill({n: 'a "quoted" <value> & more' for n in template.names}) is None
    _, made = acks.outcome(102, MSG_ID, "ORG-A", "ORG-<B&\"C>", text="not delivered: 'x' & <y>")
    root = parse_xml(made)
    verify_packet(root, trust_store)
    assert root.find("Body/Acknowledgement").get("receiver") == 'ORG-<B&"C>'
    assert root.findtext("Body/Acknowledgement/AckResult") == "not delivered: 'x' & <y>"


def _receipts(tmp_path, test_pki, trust: TrustStore) -> Receipts:
    registry = Registry(tmp_path / "registry.db")
    for code in ("ORG-A", "ORG-B"):
        register(registry, test_pki, code)
    view = RegistryView(parse_storage(tmp_path))
    hub = HubAcks(test_pki.signer("HUB"), "HUB", "smdo-hub")
    return Receipts(limits=Limits(), trust=trust, registry=view, acks=hub, store=None, committer=None,  # type: ignore[arg-type]
                    hub_code="HUB", delivery_deadline=60.0)


def _claimed(receiver: str = "ORG-B") -> Claimed:
    return Claimed(delivery_id=1, msg_id=MSG_ID, receiver=receiver, sender="ORG-A", mode="push", attempts=0,
                   deadline=0.0, acknow=2, msg_type=1, raw=b"")


def _ack(test_pki, code: str, key_of: str | None = None, msg_id: str = MSG_ID) -> bytes:
    signer = test_pki.signer(code)
    if key_of is not None:  # the receiver's certificate, another subscriber's key
        signer = type(signer)(key=test_pki.signer(key_of).key, certificate=signer.certificate)
    return sign(delivery_ack(acknowledged_msg_id=msg_id, sender=sender_of(code), receiver_id="HUB"), signer)


def test_a_cached_receivers_ack_is_refused_for_a_wrong_key_signer_or_msg_id(tmp_path, test_pki) -> None:
    receipts = _receipts(tmp_path, test_pki, test_pki.trust_store())
    receipts.check(_ack(test_pki, "ORG-B"), _claimed())  # caches ORG-B's certificate and path
    receipts.check(_ack(test_pki, "ORG-B"), _claimed())
    with pytest.raises(BadReceipt, match="refused"):
        receipts.check(_ack(test_pki, "ORG-B", key_of="ORG-A"), _claimed())
    with pytest.raises(BadReceipt, match="comes from ORG-A"):
        receipts.check(_ack(test_pki, "ORG-A"), _claimed())
    with pytest.raises(BadReceipt, match="is for"):
        receipts.check(_ack(test_pki, "ORG-B", msg_id="11111111-2222-4333-8444-555555555555"), _claimed())


def test_a_cached_receivers_ack_is_refused_once_its_certificate_is_revoked(tmp_path, test_pki, issue_cert) -> None:
    issue_cert("ORG-RCPT-REVOKED", name="Organisation R")
    receipts = _receipts(tmp_path, test_pki, test_pki.trust_store())
    register(Registry(tmp_path / "registry.db"), test_pki, "ORG-RCPT-REVOKED")
    receipts.registry = RegistryView(parse_storage(tmp_path))
    receipts.check(_ack(test_pki, "ORG-RCPT-REVOKED"), _claimed("ORG-RCPT-REVOKED"))  # cached
    crl = revoke_certificate(test_pki.directory, "ORG-RCPT-REVOKED")
    from signing.trust import load_crl
    receipts.trust.add_crl(load_crl(crl))
    with pytest.raises(BadReceipt, match="revoked"):
        receipts.check(_ack(test_pki, "ORG-RCPT-REVOKED"), _claimed("ORG-RCPT-REVOKED"))
