"""SDIP packets in e-mail, as the classic clients exchange them (uSMDO.pas, AzDoc EmailHelper):

- the packet is an attachment named `<msg_id>_data.xml` (documents, tasks, supplements) or
  `<msg_id>_ack.xml` (acknowledgements);
- each file is its own attachment, named by its `Data@referenceid` (`attach1`, `attach2`, ...).

`read_message` takes a message apart (bounded), `assemble` puts the files into the packet so the
message's parts are checked as one packet, `compose` builds a message, `detach` does the reverse
of `assemble` for a receiver that expects the files as attachments. No transport here.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from lxml import etree

from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.xmlparse import Limits, parse_xml

PACKET_NAME = re.compile(r"^(?P<msg_id>[0-9a-fA-F-]{36})_(?P<kind>data|ack)\.xml$")
PART_NAME = re.compile(r"^[A-Za-z0-9_.@\-]{1,200}$")  # the schema's PartReference
_DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


@dataclass(frozen=True)
class MailLimits:
    max_parts: int = 200
    max_bytes: int = 30 * 1024 * 1024  # decoded packet + files together


@dataclass
class MailPacket:
    """What one message carried: the packet's attachment name, its XML, and the files beside it."""

    name: str
    msg_id: str
    xml: bytes
    parts: dict[str, bytes] = field(default_factory=dict)


def packet_name(msg_id: str, msg_type: int) -> str:
    return f"{msg_id}_{'ack' if msg_type == 0 else 'data'}.xml"


def _refuse(message: str) -> PacketRejected:
    return PacketRejected([Problem(int(ErrorCode.XML_UNPARSABLE), message)])


def read_message(raw: bytes, limits: MailLimits = MailLimits()) -> MailPacket:
    """The packet and its files from a message; PacketRejected (-1) when it is not one packet."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    packet: MailPacket | None = None
    parts: dict[str, bytes] = {}
    total = 0
    for count, part in enumerate(message.iter_attachments(), 1):
        if count > limits.max_parts:
            raise _refuse(f"more than {limits.max_parts} attachments")
        name = part.get_filename() or ""
        content = part.get_payload(decode=True) or b""
        total += len(content)
        if total > limits.max_bytes:
            raise _refuse(f"attachments exceed {limits.max_bytes} bytes")
        match = PACKET_NAME.match(name)
        if match:
            if packet is not None:
                raise _refuse(f"two packets in one message: {packet.name} and {name}")
            packet = MailPacket(name, match.group("msg_id").lower(), content)
        elif PART_NAME.match(name):
            if name in parts:
                raise _refuse(f"two attachments named {name}")
            parts[name] = content
        else:
            raise _refuse(f"attachment {name[:100]!r} is neither <msg_id>_data.xml / _ack.xml nor a file part")
    if packet is None:
        raise _refuse("no packet attachment (<msg_id>_data.xml or <msg_id>_ack.xml)")
    packet.parts = parts
    return packet


def assemble(packet: MailPacket, limits: Limits = Limits()) -> bytes:
    """The packet with each referenced file put inline, so the message is checked as one packet.

    Only an unsigned envelope is changed (a signed one would no longer verify); unreadable XML is
    returned as it is, for the read stage to refuse. A reference to a part that did not come stays a
    reference (the verify stage then says the file is missing). Every part must be referenced.
    """
    try:
        root = parse_xml(packet.xml, limits)
    except PacketRejected:
        return packet.xml
    if root.get("msg_id", "").lower() != packet.msg_id:
        raise _refuse(f"attachment {packet.name} carries a packet with msg_id {root.get('msg_id')!r}")
    referenced = {d.get("referenceid") for d in root.iter("Data")}
    unused = sorted(set(packet.parts) - referenced)
    if unused:
        raise _refuse(f"attachment(s) {', '.join(unused)[:200]} not referenced by any Data@referenceid")
    if root.find(_DS_SIGNATURE) is not None or not packet.parts:
        return packet.xml
    for data in root.iter("Data"):
        reference = data.get("referenceid")
        if reference in packet.parts:
            del data.attrib["referenceid"]
            data.text = base64.b64encode(packet.parts[reference]).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def detach(xml: bytes) -> tuple[bytes, dict[str, bytes]]:
    """An unsigned packet's inline files moved out as parts attach1, attach2, ... (referenced by
    Data@referenceid), as the classic clients expect them; a signed packet is left whole."""
    root = parse_xml(xml, Limits(max_bytes=max(len(xml), 1)))
    if root.find(_DS_SIGNATURE) is not None:
        return xml, {}
    parts: dict[str, bytes] = {}
    for data in root.iter("Data"):
        if data.get("referenceid") is None and (data.text or "").strip():
            name = f"attach{len(parts) + 1}"
            parts[name] = base64.b64decode("".join(data.text.split()))
            data.text = None
            data.set("referenceid", name)
    if not parts:
        return xml, {}
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), parts


def compose(*, sender: str, recipient: str, msg_id: str, msg_type: int, xml: bytes,
            parts: dict[str, bytes] | None = None, subject: str = "") -> EmailMessage:
    """A message carrying one packet (and its files) with the classic attachment names."""
    message = EmailMessage()
    message["From"], message["To"] = sender, recipient
    message["Subject"] = subject or f"SDIP {msg_id}"
    message.set_content(f"SDIP packet {msg_id}\n")
    message.add_attachment(xml, maintype="application", subtype="xml", filename=packet_name(msg_id, msg_type))
    for name, content in (parts or {}).items():
        message.add_attachment(content, maintype="application", subtype="octet-stream", filename=name)
    return message
