"""Packets built like the real clients' (tests/fixtures/real_clients), readdressed for a test network."""
from __future__ import annotations

import base64
import uuid
from pathlib import Path

from lxml import etree

from signing.cms import sign_detached
from signing.keys import Signer
from signing.xmldsig import sign_enveloped
from smdo.xmlparse import parse_xml

FIXTURES = Path(__file__).parent / "fixtures" / "real_clients"


def real_client_packet(name: str, sender: str, receiver: str, *, acknowledged: str | None = None,
                       msg_id: str | None = None) -> etree._Element:
    """The fixture `name`, from `sender` to `receiver`, with a fresh msg_id (and, for an
    acknowledgement, the msg_id it acknowledges); everything else as the client wrote it."""
    root = parse_xml((FIXTURES / name).read_bytes())
    root.set("msg_id", msg_id or str(uuid.uuid4()))
    root.find("Header/Sender").set("id", sender)
    root.find("Header/Receiver").set("id", receiver)
    ack = root.find("Body/Acknowledgement")
    if ack is not None and acknowledged is not None:
        ack.set("msg_id", acknowledged)
    return root


def with_signed_files(root: etree._Element, signer: Signer, contents: dict[str, bytes] | None = None,
                      inline: bool = True) -> dict[str, bytes]:
    """Give every file content and a real detached CMS signature by `signer` (an official on the test
    chain). inline: the content goes into Data (HTTPS); else it stays a part named by Data@referenceid
    (an e-mail attachment) and is returned as {referenceid: content}."""
    parts: dict[str, bytes] = {}
    for n, transfer in enumerate(root.iter("DocTransfer"), 1):
        data = transfer.find("Data")
        reference = data.get("referenceid") or f"attach{n}"
        content = (contents or {}).get(reference, f"file {reference} of {root.get('msg_id')}".encode())
        if inline:
            data.attrib.pop("referenceid", None)
            data.text = base64.b64encode(content).decode()
        else:
            data.set("referenceid", reference)
            parts[reference] = content
        for old in transfer.findall("Signature"):
            transfer.remove(old)
        signature = etree.SubElement(transfer, "Signature", signer=signer.certificate.subject.rfc4514_string()[:200])
        signature.text = base64.b64encode(sign_detached(content, signer)).decode()
    return parts


def signed(root: etree._Element, signer: Signer) -> bytes:
    sign_enveloped(root, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def unsigned(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
