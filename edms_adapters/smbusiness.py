"""SMBusiness-style EDMS: exchange folders and its own XML card format.

The native record is an `<SmbCard>` XML file. Users (or scripts) drop cards into the outbox folder;
a poller translates each to SDIP, signs it and sends it. Incoming packets are pulled from the hub
mailbox and written to the inbox folder as cards.
"""
from __future__ import annotations

from lxml import etree

from edms_adapters.adapter import (
    Attachment,
    EdmsAdapter,
    ParentRef,
    Party,
    RegistrationCard,
    SupplementRef,
    TaskInfo,
)
from edms_adapters.cardcodec import b64, date_text, optional_date, parse_date, parse_int, unb64

# The card is a small local file the EDMS writes itself, but it may come from a user's folder:
# parse it the hardened way (no entities, no DTD, no network, bounded size).
# huge_tree: a 20 MB file is one ~27 MB base64 text node, over libxml2's 10 MB default; the size
# is bounded by MAX_CARD_BYTES before parsing, and entities and DTDs stay off.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, remove_blank_text=True
)
# A card holds its files inline, and a file that came beside the envelope (a part) may be hundreds
# of MB: the bound is the largest part the hub takes (`part_max_bytes`, 4 GB) in base64, as for
# Rekord's own records (edms_adapters/rekord.py OWN_RECORD).
MAX_CARD_BYTES = 6 * 1024 ** 3


def _party(tag: str, party: Party) -> etree._Element:
    el = etree.Element(tag)
    el.set("org", party.organisation)
    for attr, value in (("code", party.code), ("fio", party.person), ("post", party.post)):
        if value:
            el.set(attr, value)
    return el


def _read_party(el: etree._Element | None, what: str) -> Party:
    if el is None:
        raise ValueError(f"SmbCard: <{what}> is missing")
    org = el.get("org")
    if not org:
        raise ValueError(f"SmbCard: <{what}> needs an org attribute")
    return Party(org, el.get("code", ""), el.get("fio", ""), el.get("post", ""))


def _text(parent: etree._Element, tag: str, value: str) -> None:
    etree.SubElement(parent, tag).text = value


class SmbCardAdapter(EdmsAdapter[etree._Element]):
    """SMBusiness card (`<SmbCard>` element) <-> registration card."""

    name = "smbusiness"
    product = "SMBusiness-emulated"
    inbound = "pull"
    outbound = "folder"
    number_letter = "S"

    def from_card(self, card: RegistrationCard) -> etree._Element:
        root = etree.Element("SmbCard", version="1")
        _text(root, "LocalId", card.idnumber)
        _text(root, "RegNum", card.number)
        _text(root, "RegDate", date_text(card.date))
        _text(root, "Subject", card.title)
        _text(root, "DocType", card.kind)
        _text(root, "Summary", card.annotation)
        _text(root, "Sheets", str(card.pages))
        root.append(_party("Author", card.author))
        root.append(_party("SignedBy", card.signer))
        recipients = etree.SubElement(root, "Recipients")
        for addressee in card.addressees:
            recipients.append(_party("Recipient", addressee))
        files = etree.SubElement(root, "Attachments")
        for f in card.files:
            el = etree.SubElement(files, "Attachment", fileName=f.name, mime=f.media_type)
            if f.description:
                el.set("descr", f.description)
            _text(el, "Content", b64(f.content))
            for sig in f.signatures:
                _text(el, "Sign", b64(sig))
        if card.parent is not None:
            p = card.parent
            etree.SubElement(
                root, "InReplyTo", msgId=p.msg_id, localId=p.idnumber, org=p.organisation_code,
                regNum=p.reg_number, regDate=date_text(p.reg_date),
            )
        if card.task is not None:
            t = card.task
            el = etree.SubElement(root, "Instruction", num=t.number, date=date_text(t.date))
            if t.deadline is not None:
                el.set("deadline", date_text(t.deadline))
            _text(el, "Text", t.text)
            if t.executor is not None:
                el.append(_party("Executor", t.executor))
        if card.supplement is not None:
            s = card.supplement
            el = etree.SubElement(
                root, "AddendumTo", localId=s.idnumber, regNum=s.reg_number,
                regDate=date_text(s.reg_date), toTask="1" if s.refers_to_task else "0",
                addType=str(s.add_type),
            )
            if s.note:
                _text(el, "Note", s.note)
        return root

    def to_card(self, record: etree._Element) -> RegistrationCard:
        if record.tag != "SmbCard":
            raise ValueError(f"SmbCard: root element is <{record.tag}>, expected <SmbCard>")

        def text(tag: str, required: bool = True) -> str:
            value = record.findtext(tag)
            if value is None and required:
                raise ValueError(f"SmbCard: <{tag}> is missing")
            return value or ""

        files = tuple(
            Attachment(
                name=el.get("fileName", ""),
                content=unb64(el.findtext("Content"), f"SmbCard Attachment {el.get('fileName')}"),
                media_type=el.get("mime", "application/octet-stream"),
                description=el.get("descr", ""),
                signatures=tuple(unb64(s.text, "SmbCard Sign") for s in el.findall("Sign")),
            )
            for el in record.findall("Attachments/Attachment")
        )
        parent = None
        if (el := record.find("InReplyTo")) is not None:
            parent = ParentRef(
                msg_id=el.get("msgId", ""), idnumber=el.get("localId", ""),
                organisation_code=el.get("org", ""), reg_number=el.get("regNum", ""),
                reg_date=parse_date(el.get("regDate"), "SmbCard InReplyTo@regDate"),
            )
        task = None
        if (el := record.find("Instruction")) is not None:
            executor = el.find("Executor")
            task = TaskInfo(
                number=el.get("num", ""),
                date=parse_date(el.get("date"), "SmbCard Instruction@date"),
                text=el.findtext("Text") or "",
                deadline=optional_date(el.get("deadline"), "SmbCard Instruction@deadline"),
                executor=_read_party(executor, "Executor") if executor is not None else None,
            )
        supplement = None
        if (el := record.find("AddendumTo")) is not None:
            supplement = SupplementRef(
                idnumber=el.get("localId", ""), reg_number=el.get("regNum", ""),
                reg_date=parse_date(el.get("regDate"), "SmbCard AddendumTo@regDate"),
                refers_to_task=el.get("toTask") == "1",
                add_type=parse_int(el.get("addType", "0"), "SmbCard AddendumTo@addType"),
                note=el.findtext("Note") or "",
            )
        return RegistrationCard(
            idnumber=text("LocalId"),
            number=text("RegNum"),
            date=parse_date(text("RegDate"), "SmbCard <RegDate>"),
            title=text("Subject"),
            kind=text("DocType"),
            annotation=text("Summary", required=False),
            pages=parse_int(text("Sheets", required=False) or "1", "SmbCard <Sheets>"),
            author=_read_party(record.find("Author"), "Author"),
            signer=_read_party(record.find("SignedBy"), "SignedBy"),
            addressees=tuple(
                _read_party(el, "Recipient") for el in record.findall("Recipients/Recipient")
            ),
            files=files,
            parent=parent,
            task=task,
            supplement=supplement,
        )

    def dump(self, record: etree._Element) -> bytes:
        return etree.tostring(record, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def load(self, data: bytes) -> etree._Element:
        if len(data) > MAX_CARD_BYTES:
            raise ValueError(f"SmbCard: file is larger than {MAX_CARD_BYTES} bytes")
        try:
            return etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise ValueError(f"SmbCard: not well-formed XML: {exc}") from None
