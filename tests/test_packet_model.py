"""The packet model: model -> XML -> model is the identity, and what build writes is valid."""
from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import date, datetime, timezone

import pytest
from format_fixtures import envelopes, load_regenerate
from hypothesis import HealthCheck, given, settings
from lxml import etree

from smdo.errors import PacketRejected, RegistrationResult
from smdo.packet import (
    AckResult,
    DocTransfer,
    Envelope,
    Notification,
    RegNumber,
    build,
    from_element,
    new_msg_id,
    parse,
    read_header,
    to_element,
)
from smdo.receipts import EVENTS, REFUSAL_REASONS, acknowledgement, delivery_ack, notification, registration_ack
from smdo.validation import validate
from smdo.xmlparse import parse_xml

regenerate = load_regenerate()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes())
def test_model_to_xml_to_model_is_identity_and_xml_is_valid(env: Envelope) -> None:
    data = build(env)
    root = parse_xml(data)
    assert validate(root) == []
    assert from_element(root) == env
    assert parse(data) == env


@settings(max_examples=100, deadline=None)
@given(envelopes())
def test_read_header_agrees_with_the_model(env: Envelope) -> None:
    header = read_header(parse_xml(build(env)))
    assert header.msg_id == env.msg_id
    assert header.msg_type == env.header.msg_type
    assert header.msg_acknow == env.header.msg_acknow
    assert header.dtstamp == env.dtstamp
    assert header.format_type == env.format_type
    assert header.sender_id == env.header.sender.id
    assert header.sender_sys_id == env.header.sender.sys_id
    assert header.receiver_ids == tuple(r.id for r in env.header.receivers)
    if env.header.msg_type == 0:
        assert header.ack_msg_id == env.body.msg_id
        assert header.ack_type == env.body.ack_type
        assert header.ack_codes == tuple(r.errorcode for r in env.body.results)
    else:
        assert (header.ack_msg_id, header.ack_type, header.ack_codes) == (None, None, ())


def test_file_content_is_bytes_in_the_model_and_base64_in_xml() -> None:
    env = regenerate.document()
    content = bytes(range(256)) * 3
    env = dataclasses.replace(env, body=dataclasses.replace(
        env.body, files=(DocTransfer(name="all-bytes.bin", type="bin", data=content),)))
    root = to_element(env)
    data_element = root.find("Body/Document/DocTransfer/Data")
    assert base64.b64decode(data_element.text) == content
    assert from_element(root).body.files[0].data == content


def test_a_referenced_part_has_no_inline_content() -> None:
    env = regenerate.document_with_part()
    root = to_element(env)
    data_element = root.find("Body/Document/DocTransfer[2]/Data")
    assert data_element.get("referenceid") == "part-1@smdo"
    assert data_element.text is None
    part = from_element(root).body.files[1]
    assert (part.data, part.reference_id) == (None, "part-1@smdo")


def test_doc_transfer_needs_exactly_one_of_content_or_reference() -> None:
    with pytest.raises(ValueError):
        DocTransfer(name="a", type="pdf", data=b"x", reference_id="part-1")
    with pytest.raises(ValueError):
        DocTransfer(name="a", type="pdf", data=None, reference_id=None)


def test_the_model_is_frozen() -> None:
    env = regenerate.document()
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.msg_id = new_msg_id()  # type: ignore[misc]


def test_new_msg_id_is_a_fresh_uuid4() -> None:
    first, second = new_msg_id(), new_msg_id()
    assert first != second
    assert uuid.UUID(first).version == 4
    assert first == first.lower()


def test_build_writes_unsigned_utf8_with_a_declaration() -> None:
    data = build(regenerate.document())
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "Министерство финансов".encode() in data
    assert b"Signature xmlns" not in data


def test_parse_rejects_an_invalid_packet_with_its_codes() -> None:
    root = to_element(regenerate.document())
    root.find("Header/Sender").attrib.pop("sys_id")
    with pytest.raises(PacketRejected) as caught:
        parse(etree.tostring(root))
    assert caught.value.code == 12
    assert caught.value.problems[0].path == "/Envelop/Header/Sender/@sys_id"


def test_from_element_ignores_the_transport_signature() -> None:
    signed = regenerate.HERE / "signed" / "document.xml"
    root = parse_xml(signed.read_bytes())
    assert root[-1].tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"
    assert from_element(root) == regenerate.document()


def test_dates_and_timestamps_keep_their_timezone() -> None:
    env = dataclasses.replace(regenerate.document(), dtstamp=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc))
    root = to_element(env)
    assert root.get("dtstamp") == "2026-01-02T03:04:05.678901+00:00"
    assert root.find("Body/Document/RegNumber").get("regdate") == "2026-11-19"
    assert from_element(root).dtstamp == env.dtstamp
    assert from_element(root).body.reg_number.regdate == date(2026, 11, 19)


# ---------------------------------------------------------------- acknowledgement builders

ACKED = new_msg_id()


def round_trips_valid(env: Envelope) -> Envelope:
    """The packet an acknowledgement builder makes is valid and survives XML unchanged."""
    root = parse_xml(build(env))
    assert validate(root) == []
    assert from_element(root) == env
    return env


def test_acknowledgement_follows_the_contract() -> None:
    env = round_trips_valid(acknowledgement(
        acknowledged_msg_id=ACKED, ack_type=1, sender=regenerate.MINTRUD, receiver_id="MINFIN",
        results=[(100, "accepted by the hub"), (103, "accepted with errors")],
        reg_number=RegNumber("1", date(2026, 1, 1)), msg_id="11111111-2222-4333-8444-555555555555"))
    assert env.msg_id == "11111111-2222-4333-8444-555555555555"
    assert env.header.msg_type == 0 and env.header.msg_acknow == 0
    assert [r.id for r in env.header.receivers] == ["MINFIN"]
    assert env.body.msg_id == ACKED
    assert [(r.errorcode, r.text) for r in env.body.results] == [(100, "accepted by the hub"), (103, "accepted with errors")]
    header = read_header(to_element(env))
    assert (header.ack_msg_id, header.ack_type, header.ack_codes) == (ACKED, 1, (100, 103))


def test_acknowledgement_needs_a_result() -> None:
    with pytest.raises(ValueError):
        acknowledgement(acknowledged_msg_id=ACKED, ack_type=1, sender=regenerate.MINTRUD, receiver_id="X", results=[])


@pytest.mark.parametrize(("code", "text"), [(101, "delivered to the addressee"), (102, "not delivered within the deadline"),
                                            (104, "the addressee's access is blocked"), (105, "obsolete format version")])
def test_delivery_ack_texts(code: int, text: str) -> None:
    env = round_trips_valid(delivery_ack(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD, receiver_id="MINFIN",
                                         code=code))
    assert (env.body.ack_type, env.body.results) == (1, (AckResult(code, text),))


def test_delivery_ack_can_carry_the_format_codes_of_a_refusal() -> None:
    env = round_trips_valid(delivery_ack(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD, receiver_id="MINFIN",
                                         code=105, extra=[(2, "obsolete format version SDIP-2.0")]))
    assert [r.errorcode for r in env.body.results] == [105, 2]


def test_registration_ack_registered_carries_the_incoming_number() -> None:
    inc = RegNumber("вх-7", date(2026, 11, 21))
    env = round_trips_valid(registration_ack(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD, receiver_id="MINFIN",
                                             result=RegistrationResult.REGISTERED, inc_number=inc))
    assert (env.body.ack_type, env.body.inc_number, env.body.results[0].errorcode) == (2, inc, 0)
    with pytest.raises(ValueError, match="inc_number"):
        registration_ack(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD, receiver_id="MINFIN",
                         result=RegistrationResult.REGISTERED)


@pytest.mark.parametrize("reason", sorted(REFUSAL_REASONS))
def test_registration_ack_refused_names_a_reason_from_the_closed_list(reason: str) -> None:
    env = round_trips_valid(registration_ack(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD,
                                             receiver_id="MINFIN", result=RegistrationResult.REFUSED, reason=reason))
    assert env.body.results[0].errorcode == 2
    assert env.body.notification == Notification(event="refused", reason=reason)
    assert REFUSAL_REASONS[reason] in env.body.results[0].text


def test_registration_ack_refused_without_a_known_reason_is_refused() -> None:
    for reason in (None, "bad_mood"):
        with pytest.raises(ValueError, match="refusal reason"):
            registration_ack(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD, receiver_id="MINFIN",
                             result=RegistrationResult.REFUSED, reason=reason)


@pytest.mark.parametrize("result", [RegistrationResult.NOT_REGISTRABLE, RegistrationResult.SIGNATURE_NOT_TRUSTED])
def test_registration_ack_other_results(result: RegistrationResult) -> None:
    env = round_trips_valid(registration_ack(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD,
                                             receiver_id="MINFIN", result=result))
    assert env.body.results[0].errorcode == int(result)
    assert env.body.inc_number is None


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_notification_of_every_event(event: str) -> None:
    extra = {"reason": "illegible"} if event == "refused" else {}
    if event == "registered":
        extra = {"inc_number": RegNumber("вх-9", date(2026, 11, 22))}
    env = round_trips_valid(notification(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD, receiver_id="MINFIN",
                                         event=event, comment="по плану", **extra))
    assert env.body.ack_type == 4
    assert env.body.notification.event == event
    assert env.body.notification.comment == "по плану"


def test_notification_refuses_unknown_events_and_missing_details() -> None:
    common = dict(acknowledged_msg_id=ACKED, sender=regenerate.MINTRUD, receiver_id="MINFIN")
    with pytest.raises(ValueError):
        notification(event="archived", **common)
    with pytest.raises(ValueError):
        notification(event="refused", **common)
    with pytest.raises(ValueError):
        notification(event="registered", **common)


@pytest.mark.parametrize("name", sorted(regenerate.VALID))
def test_comments_and_processing_instructions_change_nothing(name: str) -> None:
    # Exclusive C14N leaves comments out of the signed digest, so anyone can add them after
    # signing: they must not change what the hub reads, nor hide the zone from the checks.
    env = regenerate.VALID[name]()
    root = to_element(env)
    for element in list(root.iter()):
        element.insert(0, etree.Comment(" injected "))
        if element.text:  # split simple content in two around a PI
            half = len(element.text) // 2
            element.text, rest = element.text[:half], element.text[half:]
            element.insert(0, etree.ProcessingInstruction("pi", "x"))
            element[0].tail = rest
    parsed = parse_xml(etree.tostring(root))
    assert validate(parsed) == []
    assert from_element(parsed) == env
    assert read_header(parsed) == read_header(to_element(env))


def test_a_comment_before_the_zone_does_not_hide_it_from_the_rules() -> None:
    root = to_element(regenerate.document())
    root.find("Body").insert(0, etree.Comment("zone follows"))
    root.find("Body/Document").set("kind", "999")
    root.find("Header").set("msg_type", "2")
    codes = [p.code for p in validate(parse_xml(etree.tostring(root)))]
    assert 21 in codes and 33 in codes


def test_a_party_is_an_organisation_or_a_person_alone() -> None:
    from smdo.packet import Author, OfficialPerson, Participant

    citizen = OfficialPerson(name="Ковалёва Мария")
    env = regenerate.document()
    env = dataclasses.replace(env, body=dataclasses.replace(env.body, authors=(Author(None, citizen),)))
    assert parse(build(env)).body.authors == (Author(None, citizen),)
    with pytest.raises(ValueError, match="organization or an official_person"):
        Participant(None, None)
    root = to_element(env)
    root.find("Body/Document/Author").remove(root.find("Body/Document/Author/OfficialPerson"))
    problems = validate(parse_xml(etree.tostring(root)))
    assert (problems[0].code, problems[0].path) == (32, "/Envelop/Body/Document/Author")
