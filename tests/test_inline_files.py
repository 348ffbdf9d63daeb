"""Large inline files set aside from the parsed tree (smdo/inline_files.py): the signature, the
files' own signatures and every refusal come out as they do with the whole tree, in one copy."""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from lxml import etree

from signing import algorithms
from signing.cms import sign_detached
from signing.xmldsig import sign_enveloped
from smdo import inline_files
from smdo.check import read_packet, read_reduced, validate_packet, verify_files, verify_packet
from smdo.errors import ErrorCode, PacketRejected
from smdo.packet import DocTransfer, to_element
from smdo.parts import files_of
from tests.router_fixtures import document, eventually, hub_client
from tests.test_limits import current_rss, network, peak_rss

PAYLOAD = bytes(range(256)) * 800  # 200 KB: well above the set-aside threshold


def signed(signer, *, payload: bytes = PAYLOAD, wrap: int | None = None, file_signature: bytes | None = None) -> bytes:
    """A signed packet whose file is inline, its base64 broken into lines of `wrap` characters."""
    envelope = document("ORG-A", ["ORG-B"], payload=payload)
    root = to_element(envelope)
    data = root.find(".//DocTransfer/Data")
    if wrap:
        text = base64.b64encode(payload).decode()
        data.text = "\n" + "\n".join(text[i:i + wrap] for i in range(0, len(text), wrap)) + "\n"
    if file_signature is not None:
        signature = etree.SubElement(data.getparent(), "Signature")
        signature.text = base64.b64encode(file_signature).decode()
    sign_enveloped(root, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def reduced_root(raw: bytes) -> tuple[etree._Element, inline_files.Reduced]:
    keep: frozenset[int] = frozenset()
    while True:
        reduced = inline_files.reduce(inline_files.bytes_opener(raw), len(raw), keep=keep)
        root = read_reduced(reduced)
        misplaced = inline_files.confirm(root, reduced)
        if not misplaced:
            return root, reduced
        keep |= misplaced


def the_run(raw: bytes) -> tuple[int, int]:
    match = re.search(rb"<Data>([A-Za-z0-9+/=\r\n]+)</Data>", raw)
    return match.start(1), match.end(1)


def test_a_large_file_is_set_aside_and_the_signature_still_verifies(signer_for, trust_store):
    raw = signed(signer_for("ORG-A"))
    root, reduced = reduced_root(raw)
    assert len(reduced.runs) == 1 and reduced.set_aside > len(PAYLOAD)
    assert len(reduced.xml) < 10_000 < len(raw)
    validate_packet(root)
    verify_packet(root, trust_store, reduced=reduced)


def test_a_changed_character_in_the_set_aside_file_breaks_the_signature(signer_for, trust_store):
    raw = signed(signer_for("ORG-A"))
    start, _ = the_run(raw)
    at = start + 5000
    tampered = raw[:at] + (b"B" if raw[at:at + 1] != b"B" else b"C") + raw[at + 1:]
    root, reduced = reduced_root(tampered)
    assert reduced.runs  # still valid base64, still set aside: the digest catches it
    with pytest.raises(PacketRejected) as refused:
        verify_packet(root, trust_store, reduced=reduced)
    assert refused.value.code == ErrorCode.SIGNATURE_INVALID and "digest" in str(refused.value)


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r"])
def test_line_ends_in_the_file_are_normalised_as_the_parser_does(signer_for, trust_store, line_end):
    raw = signed(signer_for("ORG-A"), wrap=76)
    start, end = the_run(raw)
    raw = raw[:start] + raw[start:end].replace(b"\n", line_end) + raw[end:]
    verify_packet(read_packet(raw), trust_store)  # the whole tree agrees the packet is intact
    root, reduced = reduced_root(raw)
    assert reduced.runs
    verify_packet(root, trust_store, reduced=reduced)


def test_a_file_lookalike_inside_a_comment_is_put_back(signer_for, trust_store):
    raw = signed(signer_for("ORG-A"))
    decoy = b"<!-- <Data>" + base64.b64encode(PAYLOAD[::-1]) + b"</Data> -->"
    raw = raw.replace(b"<Body>", b"<Body>" + decoy, 1)  # comments are outside the signed canonical form
    first = inline_files.reduce(inline_files.bytes_opener(raw), len(raw))
    assert len(first.runs) == 2
    misplaced = inline_files.confirm(read_reduced(first), first)
    assert misplaced == {raw.index(decoy) + len(b"<!-- <Data>")}
    root, reduced = reduced_root(raw)
    assert len(reduced.runs) == 1
    verify_packet(root, trust_store, reduced=reduced)


def test_invalid_base64_stays_in_the_tree_and_is_refused_there(signer_for):
    raw = signed(signer_for("ORG-A"))
    start, _ = the_run(raw)
    broken = raw[:start + 1000] + b"=" + raw[start + 1001:]  # padding in the middle
    reduced = inline_files.reduce(inline_files.bytes_opener(broken), len(broken))
    assert not reduced.runs and reduced.xml == broken


def test_a_syntax_error_after_a_set_aside_file_names_the_bodys_line(signer_for):
    raw = signed(signer_for("ORG-A"), wrap=76)
    broken = raw.replace(b"</Envelop>", b"</Envelope>")
    with pytest.raises(PacketRejected) as whole:
        read_packet(broken)
    reduced = inline_files.reduce(inline_files.bytes_opener(broken), len(broken))
    assert reduced.runs
    with pytest.raises(PacketRejected) as set_aside:
        read_reduced(reduced)
    line = re.search(r"\(line (\d+)\)", str(whole.value)).group(1)
    assert int(line) > 2000 and f"(line {line})" in str(set_aside.value)


def test_a_utf16_packet_is_not_scanned(signer_for):
    raw = signed(signer_for("ORG-A")).decode("utf-8").replace("UTF-8", "UTF-16").encode("utf-16")
    reduced = inline_files.reduce(inline_files.bytes_opener(raw), len(raw))
    assert not reduced.runs and reduced.xml == raw


def test_a_set_aside_files_own_signature_is_checked_from_the_body(signer_for, trust_store):
    good = sign_detached(PAYLOAD, signer_for("ORG-A"))
    raw = signed(signer_for("ORG-A"), file_signature=good)
    root, reduced = reduced_root(raw)
    assert reduced.runs
    verify_files(root, trust_store, reduced=reduced)
    [ref] = files_of(root, reduced)
    assert ref.inline(hashlib_sha256()) == hashlib.sha256(PAYLOAD).digest()
    other = sign_detached(PAYLOAD[:-1], signer_for("ORG-A"))
    root, reduced = reduced_root(signed(signer_for("ORG-A"), file_signature=other))
    with pytest.raises(PacketRejected) as refused:
        verify_files(root, trust_store, reduced=reduced)
    assert refused.value.code == ErrorCode.SIGNATURE_INVALID


def hashlib_sha256():
    return algorithms.DIGESTS["sha256"]


async def test_a_large_packet_costs_the_hub_less_than_its_size_and_arrives_whole(tmp_path, test_pki, trust_store):
    """One 12 MB packet, spooled and checked with its file set aside, journaled from the spool file:
    the hub's peak memory grows by less than the packet's size (it was about 5 times the size when
    the check and the journal held their own copies), and the receiver gets the very bytes."""
    hub, receiver = await network(tmp_path, test_pki, trust_store)
    envelope = document("ORG-A", ["ORG-B"], payload=b"%PDF " + bytes(range(256)) * (9 * 1024 * 1024 // 256))
    raw = signed_envelope(envelope, test_pki.signer("ORG-A"))
    try:
        async with hub_client(test_pki) as client:
            async with client.post(f"{hub.url}/smdo/v1/packets", data=b"x" * 0) as r:
                await r.read()  # warm-up: the connection and the refusal path
            before = current_rss(hub)
            Path(f"/proc/{hub.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            async with client.post(f"{hub.url}/smdo/v1/packets", data=raw) as r:
                assert r.status == 200, await r.text()
            grown = peak_rss(hub) - before
        assert grown < len(raw), f"{grown / len(raw):.2f}x the packet's size"
        await eventually(lambda: envelope.msg_id in receiver.received(), timeout=60)
        assert receiver.packets()[envelope.msg_id] == raw
    finally:
        assert hub.terminate() == 0
        await receiver.stop()


def signed_envelope(envelope, signer) -> bytes:
    root = to_element(envelope)
    sign_enveloped(root, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
