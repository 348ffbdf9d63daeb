"""An emulated EDMS takes packets as the hub delivers them: it verifies, registers or refuses,
answers with signed acknowledgements, never registers twice, and misbehaves only when told to."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from edms_adapters.adapter import Party, SenderInfo
from edms_adapters.config import EdmsConfig, RegistrationRules
from edms_adapters.sdip import card_to_envelope
from edms_adapters.service import EdmsService
from edms_adapters.kinds import adapter_for
from edms_fixtures import full_card
from signing.errors import InvalidSignature
from signing.xmldsig import sign_enveloped, verify_enveloped
from smdo import packet as p
from smdo.check import read_packet, verify_packet
from smdo.receipts import delivery_ack, registration_ack
from smdo.errors import ErrorCode
from smdo.errors import RegistrationResult

HUB_URL = "https://127.0.0.1:9"  # nobody listens: these tests read what the EDMS queued for the hub
ORG_A = SenderInfo("ORG-A", "Organisation A", "6f1c2a8e-0000-4000-8000-00000000000a", "Test EDMS")


@pytest.fixture(scope="module")
def edms_cert(issue_cert):
    return issue_cert("EDMS-T", name="Test Agency", tls_hostnames=("127.0.0.1", "localhost"))


def make_config(tmp_path: Path, test_pki, cert, kind: str = "rekord", **changes) -> EdmsConfig:
    config = EdmsConfig(kind=kind, code="EDMS-T", name="Test Agency", hub_url=HUB_URL,
                        data_dir=tmp_path / kind, key=cert.key_path, cert=cert.cert_path,
                        trust=test_pki.trust_dir)
    return replace(config, **changes)


@pytest.fixture
async def make_service(tmp_path, test_pki, edms_cert):
    made = []

    def make(kind: str = "rekord", **changes) -> EdmsService:
        config = make_config(tmp_path / str(len(made)), test_pki, edms_cert, kind, **changes)
        service = EdmsService(config, adapter_for(kind))
        made.append(service)
        return service

    yield make
    for service in made:
        await service.close()


def signed(env: p.Envelope, signer, tamper=None) -> bytes:
    root = p.to_element(env)
    if tamper is not None:
        tamper(root)
    sign_enveloped(root, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def document_to_edms(signer, *, kind: str = "01", tamper=None) -> tuple[str, bytes]:
    card = full_card(kind=kind, addressees=(Party("Test Agency", "EDMS-T", "A. Clerk"),))
    env = card_to_envelope(card, sender=ORG_A)
    return env.msg_id, signed(env, signer, tamper)


def queued_acks(service: EdmsService) -> list[p.Envelope]:
    return [p.from_element(read_packet(item.packet)) for item in service.store.due()]


async def test_registers_a_document_and_answers_with_signed_acks(make_service, signer_for, trust_store):
    service = make_service()
    msg_id, data = document_to_edms(signer_for("ORG-A"))
    answer = service.receive(data)

    assert answer.status == 200
    delivery = read_packet(answer.body)
    assert verify_packet(delivery, trust_store).certificate == service.signer.certificate
    header = p.read_header(delivery)
    assert (header.ack_msg_id, header.ack_type, header.ack_codes) == (msg_id, 1, (101,))

    [received] = service.documents("received")
    assert received.status == "registered" and received.number.startswith("R-")
    assert received.counterpart == "ORG-A" and received.title == full_card().title

    [reg] = queued_acks(service)
    ack = reg.body
    assert reg.header.receivers[0].id == "ORG-A"
    assert (ack.msg_id, ack.ack_type, ack.results[0].errorcode) == (msg_id, 2, 0)
    assert ack.inc_number.number == received.number
    assert ack.reg_number.number == full_card().number


async def test_a_duplicate_is_acknowledged_again_but_not_registered_twice(make_service, signer_for):
    service = make_service()
    msg_id, data = document_to_edms(signer_for("ORG-A"))
    first, second = service.receive(data), service.receive(data)
    assert first.status == second.status == 200
    assert p.read_header(read_packet(second.body)).ack_msg_id == msg_id
    assert len(service.documents("received")) == 1
    assert len(queued_acks(service)) == 1
    _, other = document_to_edms(signer_for("ORG-A"))
    service.receive(other)
    numbers = [d.number for d in service.documents("received")]
    assert numbers[1].endswith("0002"), numbers  # the duplicate did not use up a number


async def test_refuses_kinds_it_does_not_accept_with_a_reason(make_service, signer_for):
    service = make_service(rules=RegistrationRules(refuse_kinds=frozenset({"10"})))
    msg_id, data = document_to_edms(signer_for("ORG-A"), kind="10")
    assert service.receive(data).status == 200
    [received] = service.documents("received")
    assert received.status == "refused" and received.number == ""
    [reg] = queued_acks(service)
    assert reg.body.results[0].errorcode == RegistrationResult.REFUSED
    assert reg.body.notification.event == "refused"
    assert reg.body.notification.reason == "addressing_error"
    assert "kind 10" in reg.body.results[0].text
    assert reg.body.inc_number is None


async def test_not_registrable_kind(make_service, signer_for):
    service = make_service(rules=RegistrationRules(not_registrable_kinds=frozenset({"13"})))
    _, data = document_to_edms(signer_for("ORG-A"), kind="13")
    service.receive(data)
    [reg] = queued_acks(service)
    assert reg.body.results[0].errorcode == RegistrationResult.NOT_REGISTRABLE


async def test_signature_from_an_unknown_ca_is_answered_not_trusted(make_service, other_pki):
    service = make_service()
    _, data = document_to_edms(other_pki.signer("ORG-A"))
    assert service.receive(data).status == 200  # delivered, but not registered
    [received] = service.documents("received")
    assert received.status == "untrusted" and "-23" in received.reason
    [reg] = queued_acks(service)
    assert reg.body.results[0].errorcode == RegistrationResult.SIGNATURE_NOT_TRUSTED


def _bad_pages(root):
    root.find("Body/Document").set("pages", "many")


async def test_schema_invalid_packet_is_not_registrable(make_service, signer_for):
    service = make_service()
    _, data = document_to_edms(signer_for("ORG-A"), tamper=_bad_pages)
    service.receive(data)
    [received] = service.documents("received")
    assert received.status == "not-registrable" and "code 33" in received.reason
    [reg] = queued_acks(service)
    assert reg.body.results[0].errorcode == RegistrationResult.NOT_REGISTRABLE


async def test_fault_accept_invalid_registers_schema_invalid_packets(make_service, signer_for):
    service = make_service(faults=frozenset({"accept-invalid"}))
    _, data = document_to_edms(signer_for("ORG-A"), tamper=_bad_pages)
    service.receive(data)
    [received] = service.documents("received")
    assert received.status == "registered" and received.number


async def test_fault_no_registration_acks_registers_silently(make_service, signer_for):
    service = make_service(faults=frozenset({"no-registration-acks"}))
    _, data = document_to_edms(signer_for("ORG-A"))
    assert service.receive(data).status == 200
    assert service.documents("received")[0].status == "registered"
    assert queued_acks(service) == []


async def test_fault_wrong_key_makes_signatures_that_do_not_verify(make_service, signer_for):
    honest, faulty = make_service(), make_service(faults=frozenset({"wrong-key"}))
    for service, ok in ((honest, True), (faulty, False)):
        sent = service.send(full_card())
        root = read_packet(service.store.sent_packet(sent.msg_id))
        if ok:
            verify_enveloped(root)
        else:
            with pytest.raises(InvalidSignature):
                verify_enveloped(root)


async def test_receipts_move_each_receivers_state_forward_only(make_service, signer_for):
    service = make_service()
    sent = service.send(full_card(addressees=(Party("A", "ORG-A"), Party("B", "ORG-B"))))
    sender = lambda code: p.Sender(id=code, sys_id="6f1c2a8e-0000-4000-8000-00000000000b",  # noqa: E731
                                   system="x", system_details="1")

    def state(receiver: str) -> str:
        [doc] = service.documents("sent")
        return next(d.state for d in doc.deliveries if d.receiver == receiver)

    reg = registration_ack(acknowledged_msg_id=sent.msg_id, sender=sender("ORG-A"), receiver_id="EDMS-T",
                           result=RegistrationResult.REGISTERED,
                           inc_number=p.RegNumber("IN-1", full_card().date))
    assert service.receive(signed(reg, signer_for("ORG-A"))).status == 200
    assert state("ORG-A") == "registered" and state("ORG-B") == "created"
    # the hub's 101 about ORG-A arrives late: kept in the history, the state stays
    late = delivery_ack(acknowledged_msg_id=sent.msg_id, sender=sender("HUB"), receiver_id="EDMS-T",
                        about_receiver="ORG-A")
    service.receive(signed(late, signer_for("HUB")))
    [doc] = service.documents("sent")
    a = next(d for d in doc.deliveries if d.receiver == "ORG-A")
    assert a.state == "registered" and a.number == "IN-1"
    assert [h["state"] for h in a.history] == ["created", "registered", "delivered"]
    assert state("ORG-B") == "created"
    # a delivery ack that does not come from the hub changes nothing
    fake = delivery_ack(acknowledged_msg_id=sent.msg_id, sender=sender("ORG-C"), receiver_id="EDMS-T",
                        code=ErrorCode.NOT_DELIVERED, text="not delivered ORG-B")
    assert service.receive(signed(fake, signer_for("ORG-C"))).status == 200
    assert state("ORG-B") == "created"
    # a registration ack from someone who is not a receiver changes nothing
    stranger = registration_ack(acknowledged_msg_id=sent.msg_id, sender=sender("ORG-C"),
                                receiver_id="EDMS-T", result=RegistrationResult.REFUSED,
                                reason="no_text")
    service.receive(signed(stranger, signer_for("ORG-C")))
    assert state("ORG-B") == "created"
    # an ack whose signature does not verify is refused and changes nothing
    forged = delivery_ack(acknowledged_msg_id=sent.msg_id, sender=sender("HUB"), receiver_id="EDMS-T",
                          code=ErrorCode.NOT_DELIVERED, text="not delivered ORG-B")
    data = signed(forged, signer_for("HUB")).replace(b"not delivered ORG-B", b"not delivered ORG-A")
    assert service.receive(data).status == 403
    assert state("ORG-B") == "created"


async def test_one_edms_per_data_folder(make_service, tmp_path, test_pki, edms_cert):
    from smdo.datadir import DataDirBusy

    first = make_service()
    with pytest.raises(DataDirBusy, match="already running"):
        EdmsService(first.config, adapter_for("rekord"))


def test_edms_run_names_bad_options():
    from click.testing import CliRunner

    from cli.edms import edms

    result = CliRunner().invoke(edms, ["run", "rekord", "--code", "X", "--hub", "https://h",
                                       "--data", "d", "--key", __file__, "--cert", __file__,
                                       "--trust", __file__, "--listen", "nope"])
    assert result.exit_code == 2 and "expected HOST:PORT" in result.output
    result = CliRunner().invoke(edms, ["run", "lotus", "--code", "X"])
    assert result.exit_code == 2 and "'lotus' is not one of" in result.output


def document_with_file_signature(signer, file_signer, *, signed_bytes: bytes | None = None) -> tuple[str, bytes]:
    from edms_adapters.adapter import Attachment
    from signing.cms import sign_detached

    content = "Письмо".encode()
    signature = sign_detached(content if signed_bytes is None else signed_bytes, file_signer)
    card = full_card(addressees=(Party("Test Agency", "EDMS-T", "A. Clerk"),),
                     files=(Attachment("письмо.txt", content, "text/plain", signatures=(signature,)),))
    env = card_to_envelope(card, sender=ORG_A)
    return env.msg_id, signed(env, signer)


async def test_file_signatures_are_verified_before_registering(make_service, signer_for, other_pki):
    """A file's detached CMS signature must match the file and chain to a trusted CA; else 3 with the reason."""
    service = make_service()
    _, good = document_with_file_signature(signer_for("ORG-A"), signer_for("ORG-B"))
    _, changed = document_with_file_signature(signer_for("ORG-A"), signer_for("ORG-B"), signed_bytes=b"other")
    _, foreign = document_with_file_signature(signer_for("ORG-A"), other_pki.signer("ORG-A"))
    for data in (good, changed, foreign):
        assert service.receive(data).status == 200
    statuses = {d.msg_id: (d.status, d.reason) for d in service.documents("received")}
    assert [s for s, _ in statuses.values()].count("registered") == 1
    reasons = sorted(r for s, r in statuses.values() if s == "untrusted")
    assert len(reasons) == 2
    assert any("does not verify" in r and "письмо.txt" in r for r in reasons), reasons
    assert any("is not trusted" in r and "unknown CA" in r for r in reasons), reasons


async def test_a_crl_published_after_start_is_read(make_service, signer_for, issue_cert, test_pki):
    """The EDMS re-reads its CRL files when they change: a certificate revoked while it runs is refused (3)."""
    from signing.pki import revoke_certificate

    cert = issue_cert("EDMS-CRL-SIGNER", name="Soon revoked")
    service = make_service(crls=(test_pki.crl_path,))
    _, before = document_to_edms(cert.signer())
    service.receive(before)
    revoke_certificate(test_pki.directory, "EDMS-CRL-SIGNER")
    _, after = document_to_edms(cert.signer())
    service.receive(after)
    outcomes = sorted((d.status, d.reason) for d in service.documents("received"))
    assert outcomes[0][0] == "registered"
    assert outcomes[1][0] == "untrusted" and "was revoked on" in outcomes[1][1], outcomes
