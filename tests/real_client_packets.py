"""Packets built like the real clients' (tests/fixtures/real_clients), readdressed for a test network."""
from __future__ import annotations

import uuid
from pathlib import Path

from lxml import etree

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


def signed(root: etree._Element, signer: Signer) -> bytes:
    sign_enveloped(root, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def unsigned(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
