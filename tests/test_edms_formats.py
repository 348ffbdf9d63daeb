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
    assert doc["DocumentKind"] == {"Code": "letter"}
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
