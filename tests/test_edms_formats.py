"""The native formats of the emulated EDMS keep every registration-card field both ways."""
from __future__ import annotations

import pytest

from edms_adapters.directum import DirectumAdapter
from edms_adapters.smbusiness import SmbCardAdapter
from edms_fixtures import every_variant, full_card

ADAPTERS = [SmbCardAdapter(), DirectumAdapter()]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@pytest.mark.parametrize("card", every_variant(), ids=["document", "reply", "task", "supplement"])
def test_native_round_trip_keeps_every_field(adapter, card):
    native = adapter.from_card(card)
    again = adapter.to_card(adapter.load(adapter.dump(native)))
    assert again == card


def test_smbusiness_card_uses_its_own_vocabulary():
    xml = SmbCardAdapter().dump(SmbCardAdapter().from_card(full_card()))
    assert b"<SmbCard" in xml and b"<Subject>On the schedule" in xml and b"fio=\"I. Ivanov\"" in xml


def test_directum_document_uses_its_own_field_names():
    doc = DirectumAdapter().from_card(full_card())
    assert doc["Name"] == "On the schedule of inter-agency meetings"
    assert doc["DocumentKind"] == {"Code": "01"}
    assert doc["Addressees"][0]["SmdoCode"] == "KOMEX"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<SmbCard", "not well-formed"),
        (b"<Other/>", "expected <SmbCard>"),
        (b"<SmbCard><LocalId>1</LocalId></SmbCard>", "<RegNum> is missing"),
    ],
)
def test_smbusiness_bad_card_names_what_is_wrong(data, message):
    adapter = SmbCardAdapter()
    with pytest.raises(ValueError, match=message):
        adapter.to_card(adapter.load(data))


def test_smbusiness_card_does_not_expand_entities(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = (
        f'<!DOCTYPE SmbCard [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<SmbCard><Subject>&x;</Subject></SmbCard>"
    ).encode()
    root = SmbCardAdapter().load(data)
    assert "TOP-SECRET" not in (root.findtext("Subject") or "")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"Name": None}, "field Name is required"),
        ({"DocumentKind": {}}, "DocumentKind needs a Code"),
        ({"Versions": [{"FileName": "a", "Body": "***"}]}, r"Versions\[0\].Body: not valid base64"),
        ({"RegistrationDate": "yesterday"}, "is not a date"),
    ],
)
def test_directum_bad_document_names_what_is_wrong(change, message):
    adapter = DirectumAdapter()
    doc = {**adapter.from_card(full_card()), **change}
    with pytest.raises(ValueError, match=message):
        adapter.to_card(doc)


# -- registration card <-> SDIP (the half every EDMS shares) --------------------------------

from dataclasses import fields  # noqa: E402

from edms_adapters.adapter import Party, SenderInfo  # noqa: E402
from edms_adapters.rekord import RekordAdapter  # noqa: E402
from edms_adapters.sdip import card_to_envelope, envelope_to_card  # noqa: E402
from edms_fixtures import PARENT, SUPPLEMENT, TASK  # noqa: E402
from smdo import packet  # noqa: E402

SENDER = SenderInfo("MINTEST", "Ministry of Tests", "6f1c2a8e-0000-4000-8000-00000000000a",
                    "Test EDMS", "1.0")

# What each SDIP zone has no place for (see edms_adapters/sdip.py).
NOT_CARRIED = {
    "document": set(),
    "reply": set(),
    "task": {"annotation", "pages"},
    "supplement": {"idnumber", "number", "date", "kind", "author", "signer", "annotation", "pages"},
}


def _through_sdip(card):
    """Card -> envelope -> validated XML bytes -> envelope -> card."""
    data = packet.build(card_to_envelope(card, sender=SENDER))
    return envelope_to_card(packet.parse(data)), data


@pytest.mark.parametrize("variant, card", list(zip(NOT_CARRIED, every_variant())), ids=list(NOT_CARRIED))
def test_sdip_round_trip_keeps_every_field_its_zone_carries(variant, card):
    again, _ = _through_sdip(card)
    for f in fields(card):
        if f.name not in NOT_CARRIED[variant]:
            assert getattr(again, f.name) == getattr(card, f.name), f.name


def test_document_and_reply_keep_the_whole_card():
    assert _through_sdip(full_card())[0] == full_card()
    assert _through_sdip(full_card(parent=PARENT))[0] == full_card(parent=PARENT)


@pytest.mark.parametrize(
    "card, msg_type, zone",
    [
        (full_card(), 1, "Document"),
        (full_card(parent=PARENT), 3, "Document"),
        (full_card(task=TASK), 1, "Task"),
        (full_card(supplement=SUPPLEMENT), 2, "AddDocuments"),
    ],
    ids=["document", "reply", "task", "supplement"],
)
def test_each_variant_travels_in_its_zone_to_every_coded_addressee(card, msg_type, zone):
    _, data = _through_sdip(card)
    root = packet.parse_xml(data)
    header = packet.read_header(root)
    assert header.msg_type == msg_type
    assert root.find("Body")[0].tag == zone
    assert header.receiver_ids == ("KOMEX", "AGSAM")


def test_reply_carries_doc_parent():
    _, data = _through_sdip(full_card(parent=PARENT))
    parent = packet.parse_xml(data).find("Body/Document/DocParent")
    assert parent.get("parmsg_id") == PARENT.msg_id and parent.get("parorg_id") == "KOMEX"
    assert parent.findtext("RegNumber") == "R-2026/0007"


def test_a_card_without_coded_addressees_cannot_be_sent():
    card = full_card(addressees=(Party("Nobody"),))
    with pytest.raises(ValueError, match="no addressee with an SMDO code"):
        card_to_envelope(card, sender=SENDER)


@pytest.mark.parametrize("card", every_variant()[:2], ids=["document", "reply"])
def test_rekord_native_record_is_sdip_and_round_trips(card):
    adapter = RekordAdapter()
    data = adapter.dump(adapter.from_card(card))
    assert packet.parse(data).body.idnumber == card.idnumber  # valid SDIP
    assert adapter.to_card(adapter.load(data)) == card


def test_rekord_load_names_what_is_wrong():
    with pytest.raises(ValueError, match="SDIP envelope"):
        RekordAdapter().load(b"<Envelop")


# -- registration acknowledgements both ways ------------------------------------------------

from datetime import date as _date  # noqa: E402

from edms_adapters.adapter import Registration  # noqa: E402
from edms_adapters.sdip import registration_envelope, registration_of  # noqa: E402

DOC_ID = "6f1c2a8e-0000-4000-8000-0000000000d0"


@pytest.mark.parametrize("registration", [
    Registration(0, "R-2026/0001", _date(2026, 11, 25)),
    Registration(1, reason="documents of kind 13 are not registered here"),
    Registration(2, reason="kind 10 is not accepted", refusal="addressing_error"),
    Registration(3, reason="code -23: unknown CA"),
], ids=["registered", "not-registrable", "refused", "untrusted"])
def test_registration_ack_round_trip(registration):
    env = registration_envelope(registration, acknowledged_msg_id=DOC_ID, sender=SENDER,
                                receiver_id="KOMEX", card=full_card())
    again = packet.parse(packet.build(env))  # valid SDIP
    ack = again.body
    assert (ack.msg_id, ack.ack_type, again.header.receivers[0].id) == (DOC_ID, 2, "KOMEX")
    assert ack.reg_number.number == full_card().number  # the sender's own number, echoed
    read = registration_of(ack)
    assert (read.result, read.number, read.date, read.refusal) == (
        registration.result, registration.number, registration.date, registration.refusal)
    assert registration.reason in read.reason
