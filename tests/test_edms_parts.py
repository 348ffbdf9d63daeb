"""The emulated EDMS exchange files beside the envelope through a real hub: a file over the EDMS's
part threshold is uploaded as a part and named by digest, the receiver (push or pull) downloads it
and registers the document with the file intact in its own native record; an official's signature
that fails makes the receiver answer "signature not trusted" (3), naming the file."""
from __future__ import annotations

import os

import pytest

from edms_adapters.adapter import Attachment
from signing.cms import sign_detached
from smdo.check import read_packet
from smdo.parts import files_of

from test_edms_hub import CODES, card_to, edms_certs, exchange_factory, start_exchange  # noqa: F401 (fixtures)

BIG = os.urandom(300_000)


@pytest.mark.parametrize("sender, receiver", [("rekord", "smbusiness"), ("smbusiness", "directum")])
async def test_a_large_file_travels_as_a_part_and_arrives_intact(exchange_factory, sender, receiver):
    ex = await exchange_factory(part_threshold=100_000)
    code = CODES[receiver]
    card = card_to(code, 7, files=(Attachment("scan.tiff", BIG, "image/tiff", "the scan"),
                                   Attachment("note.txt", b"small stays inline", "text/plain")))
    created = await ex.create(sender, card)
    delivery = await ex.final(sender, created["idnumber"], code)
    assert delivery["state"] == "registered"

    service = ex.edms[receiver].service
    [received] = service.documents("received")
    adapter = service.adapter
    again = adapter.to_card(adapter.load(service.store.native("received", received.msg_id)))
    assert again.files == card.files  # the part put back in the receiver's own record
    # the envelope named the big file by digest and carried the small one inline
    sent = ex.edms[sender].service.store.sent_packet(received.msg_id)
    refs = {f.name: f.reference_id for f in files_of(read_packet(sent))}
    assert refs["scan.tiff"].startswith("sha256-") and refs["note.txt"] is None


async def test_a_bad_official_signature_is_answered_signature_not_trusted(exchange_factory, test_pki):
    ex = await exchange_factory(part_threshold=100_000)
    code = CODES["directum"]
    good = sign_detached(BIG, test_pki.signer("ORG-A"))
    forged = sign_detached(b"the draft, not the scan", test_pki.signer("ORG-A"))

    created = await ex.create("rekord", card_to(code, 8, files=(
        Attachment("scan.tiff", BIG, "image/tiff", "", (good,)),)))
    assert (await ex.final("rekord", created["idnumber"], code))["state"] == "registered"

    created = await ex.create("rekord", card_to(code, 9, files=(
        Attachment("scan.tiff", BIG, "image/tiff", "", (forged,)),)))
    delivery = await ex.final("rekord", created["idnumber"], code)
    assert delivery["state"] == "untrusted"
    doc = await ex.sent("rekord", created["idnumber"])
    assert any("scan.tiff" in (step.get("reason") or "") for step in doc["deliveries"][0]["history"]), doc
