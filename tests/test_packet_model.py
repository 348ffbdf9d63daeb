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

from smdo.errors import PacketRejected
from smdo.packet import (
    DocTransfer,
    Envelope,
    build,
    from_element,
    new_msg_id,
    parse,
    read_header,
    to_element,
)
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
