"""The SDIP 2.1 packet model: frozen dataclasses, XML <-> model, and a cheap header read.

Element and attribute names follow schemas/sdip-2.1.xsd (no namespace). File content is
`bytes` in the model and base64 in XML. The transport signature (ds:Signature) is not part
of the model: `from_element` ignores it and `build` writes unsigned XML (signing adds it).

Reading accepts every form the schema accepts (the real clients' SDIP 2.1.1: organization_string,
OrganizationWithSign, Name children, TaskList, TaskDate, ...); writing produces one canonical form,
ours. What the model does not keep (DocNumber, RegHistory, Expansion, Econtact) is still in the
original bytes, which are what the hub forwards.
"""
from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Iterable, TypeVar, Union

from lxml import etree

from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.validation import validate
from smdo.xmlparse import Limits, parse_xml

FORMAT_TYPE = "SDIP-2.1"

# msg_type values
ACKNOWLEDGEMENT = 0
DOCUMENT = 1
SUPPLEMENT = 2
REPLY = 3
REPLY_SUPPLEMENT = 4

# ack_type values
ACK_DELIVERY = 1
ACK_REGISTRATION = 2
ACK_NOTIFICATION = 4
# 100-105: the router's own system acknowledgements (the "router" dialect, smdo/dialects.py)
ROUTER_ACK_TYPES = frozenset(range(100, 106))

# Validator@attestation written as text (uSMDO.pas) -> its code
ATTESTATION_CODES = {"согласовано": 1, "утверждено": 2, "согласовано с замечаниями": 3, "отклонено": 4}

_DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


def new_msg_id() -> str:
    """A fresh message id (GUID, lowercase)."""
    return str(uuid.uuid4())


# ---------------------------------------------------------------- sub-elements


@dataclass(frozen=True)
class RegNumber:
    """A registration number and its date (also used for IncNumber and OutNumber); only an
    acknowledgement's RegNumber may lack its date."""

    number: str
    regdate: date | None


@dataclass(frozen=True)
class TaskNumber:
    number: str
    taskdate: date


@dataclass(frozen=True)
class Organization:
    name: str  # @name, or @organization_string as real clients write it
    id: str | None = None
    unp: str | None = None
    fullname: str | None = None
    shortname: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class OfficialPerson:
    name: str  # @name, or the Name child as real clients write it
    position: str | None = None  # @position, or the Official child
    department: str | None = None


class _Party:
    """An organisation, optionally one of its officials, or a person alone: at least one of them."""

    def __post_init__(self) -> None:
        if self.organization is None and self.official_person is None:  # type: ignore[attr-defined]
            raise ValueError(f"{type(self).__name__} needs an organization or an official_person")


@dataclass(frozen=True)
class Participant(_Party):
    """Addressee, Writer, AuthorOrganization."""

    organization: Organization | None
    official_person: OfficialPerson | None = None


@dataclass(frozen=True)
class Author(_Party):
    organization: Organization | None
    official_person: OfficialPerson | None = None
    out_number: RegNumber | None = None
    signdate: date | None = None


@dataclass(frozen=True)
class Validator(_Party):
    organization: Organization | None
    attestation: int  # 1 agreed, 2 approved, 3 agreed with remarks, 4 rejected
    official_person: OfficialPerson | None = None
    date: date | None = None


@dataclass(frozen=True)
class Executor(_Party):
    organization: Organization | None
    responsible: bool
    official_person: OfficialPerson | None = None
    deadline: date | None = None


@dataclass(frozen=True)
class Confident:
    flag: bool
    numcopy: int | None = None
    text: str | None = None  # the marking's name, e.g. "общий"


@dataclass(frozen=True)
class Referred:
    """What a message refers to: a document (RegNumber, retype 1) or a task (TaskNumber, retype 2)."""

    idnumber: str
    retype: int
    number: RegNumber | TaskNumber


@dataclass(frozen=True)
class DocParent:
    """The document a reply answers."""

    delivery_type: int  # 0 not via the hub, 1 via the hub
    idnumber: str
    parorg_id: str
    reg_number: RegNumber
    lastmsg_id: str | None = None
    parmsg_id: str | None = None


@dataclass(frozen=True)
class SignatureMeta:
    """Who made a file's detached signature and when (Signature@signer, @signtime)."""

    signer: str | None = None
    signtime: datetime | None = None


@dataclass(frozen=True)
class DocTransfer:
    """One file: inline content (`data`) or a reference to a part beside the envelope."""

    name: str
    type: str | None
    data: bytes | None = b""
    reference_id: str | None = None
    signatures: tuple[bytes, ...] = ()  # detached CMS signatures of the file, DER
    description: str | None = None
    os: str | None = None
    char_set: str | None = None
    signature_meta: tuple[SignatureMeta, ...] = ()  # by position in `signatures`, when given

    def __post_init__(self) -> None:
        if (self.data is None) == (self.reference_id is None):
            raise ValueError("DocTransfer needs exactly one of data or reference_id")
        if len(self.signature_meta) > len(self.signatures):
            raise ValueError("DocTransfer has more signature_meta than signatures")


# ---------------------------------------------------------------- zones


@dataclass(frozen=True)
class Document:
    idnumber: str
    type: int  # 0 outgoing, 1 incoming, 2 internal
    kind: str
    pages: int
    reg_number: RegNumber
    authors: tuple[Author, ...]
    title: str | None = None
    annotation: str | None = None
    confident: Confident | None = None
    doc_parent: DocParent | None = None
    referred: tuple[Referred, ...] = ()
    addressees: tuple[Participant, ...] = ()
    files: tuple[DocTransfer, ...] = ()
    validators: tuple[Validator, ...] = ()
    writer: Participant | None = None
    tasks: tuple[Task, ...] = ()  # the Body's TaskList after the Document


@dataclass(frozen=True)
class Task:
    idnumber: str
    task_reg: bool
    task_copy: bool
    task_text: str
    task_number: TaskNumber
    referred: tuple[Referred, ...]
    author_organizations: tuple[Participant, ...]
    kind: str | None = None
    deadline: date | None = None
    confident: Confident | None = None
    doc_parent: DocParent | None = None
    files: tuple[DocTransfer, ...] = ()
    executors: tuple[Executor, ...] = ()


@dataclass(frozen=True)
class TaskList:
    """Tasks as the real clients send them (Body/TaskList/Task)."""

    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class Folder:
    add_type: int  # 0 attachment, 1 information material, 2 reference
    referred: tuple[Referred, ...]
    note: str | None = None  # several Note elements (one per line, uSMDO.pas) are joined by newlines
    files: tuple[DocTransfer, ...] = ()
    contents: str | None = None


@dataclass(frozen=True)
class AddDocuments:
    folders: tuple[Folder, ...]


@dataclass(frozen=True)
class Notification:
    """An event about a document (ack_type 4); `reason` only for "refused"."""

    event: str
    reason: str | None = None
    date: datetime | None = None
    comment: str | None = None


@dataclass(frozen=True)
class AckResult:
    errorcode: int
    text: str = ""


@dataclass(frozen=True)
class Acknowledgement:
    msg_id: str  # the acknowledged message
    ack_type: int
    results: tuple[AckResult, ...]
    reg_number: RegNumber | None = None
    inc_number: RegNumber | None = None
    notification: Notification | None = None
    receiver: str | None = None  # which receiver of the acknowledged message (hub's 101/102)


Zone = Union[Document, Task, TaskList, AddDocuments, Acknowledgement]

# ---------------------------------------------------------------- envelope


@dataclass(frozen=True)
class Sender:
    id: str
    sys_id: str
    system: str
    system_details: str
    name: str | None = None


@dataclass(frozen=True)
class Receiver:
    id: str
    organization: Organization | None = None
    official_person: OfficialPerson | None = None
    referred: tuple[Referred, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class Header:
    msg_type: int
    sender: Sender
    receivers: tuple[Receiver, ...]
    msg_acknow: int = 2


@dataclass(frozen=True)
class Envelope:
    msg_id: str
    dtstamp: datetime
    header: Header
    body: Zone
    subject: str | None = None
    format_type: str = FORMAT_TYPE


# ---------------------------------------------------------------- cheap header read


@dataclass(frozen=True)
class PacketHeader:
    """What routing needs, read straight from a validated tree."""

    msg_id: str
    msg_type: int
    msg_acknow: int
    dtstamp: datetime
    format_type: str
    sender_id: str
    sender_sys_id: str
    receiver_ids: tuple[str, ...]
    ack_msg_id: str | None = None
    ack_type: int | None = None
    ack_codes: tuple[int, ...] = ()


def read_header(root: etree._Element) -> PacketHeader:
    """Read the routing header of a validated packet: a handful of finds, no full model."""
    header = root.find("Header")
    sender = header.find("Sender")
    msg_type = int(header.get("msg_type"))
    ack_msg_id = ack_type = None
    ack_codes: tuple[int, ...] = ()
    if msg_type == ACKNOWLEDGEMENT:
        ack = root.find("Body/Acknowledgement")
        if ack is not None:
            ack_msg_id = ack.get("msg_id")
            ack_type = int(ack.get("ack_type"))
            ack_codes = tuple(int(r.get("errorcode")) for r in ack.iterfind("AckResult"))
    return PacketHeader(
        msg_id=root.get("msg_id"),
        msg_type=msg_type,
        msg_acknow=int(header.get("msg_acknow")),
        dtstamp=_datetime(root.get("dtstamp")),
        format_type=root.get("type"),
        sender_id=sender.get("id"),
        sender_sys_id=sender.get("sys_id"),
        receiver_ids=tuple(r.get("id") for r in header.iterfind("Receiver")),
        ack_msg_id=ack_msg_id,
        ack_type=ack_type,
        ack_codes=ack_codes,
    )


# ---------------------------------------------------------------- parse / build


def parse(data: bytes, limits: Limits = Limits()) -> Envelope:
    """Hardened parse, validation, then the model; raises PacketRejected with format codes."""
    root = parse_xml(data, limits)
    problems = validate(root)
    if problems:
        raise PacketRejected(problems)
    return from_element(root)


def build(env: Envelope) -> bytes:
    """Unsigned XML bytes of an envelope (UTF-8, with an XML declaration)."""
    return etree.tostring(to_element(env), xml_declaration=True, encoding="UTF-8")


# ---------------------------------------------------------------- value conversions


def _datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _date(text: str) -> date:
    # xs:date may carry a timezone ("2026-01-31Z", "2026-01-31+03:00"); the model keeps the day.
    return date.fromisoformat(text[:10] if text[:1] != "-" else text)


def _text(e: etree._Element) -> str:
    """Character content of a simple-content element; comments or PIs inside may split it."""
    if len(e) == 0:
        return e.text or ""
    return "".join(e.itertext())


def _bool(text: str) -> bool:
    return text == "1"


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _b64decode(text: str | None) -> bytes:
    if not text:
        return b""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise PacketRejected([Problem(int(ErrorCode.WRONG_ELEMENT_TYPE), "content is not base64")]) from None


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


T = TypeVar("T")


def _opt(value: str | None, convert: Callable[[str], T]) -> T | None:
    return None if value is None else convert(value)


def _child(element: etree._Element, tag: str, read: Callable[[etree._Element], T]) -> T | None:
    found = element.find(tag)
    return None if found is None else read(found)


def _children(element: etree._Element, tag: str, read: Callable[[etree._Element], T]) -> tuple[T, ...]:
    return tuple(read(found) for found in element.iterfind(tag))


def _set(element: etree._Element, name: str, value: object) -> None:
    """Set an optional attribute; None means absent."""
    if value is None:
        return
    if isinstance(value, bool):
        value = _flag(value)
    elif isinstance(value, (date, datetime)):
        value = value.isoformat()
    element.set(name, str(value))


def _sub(parent: etree._Element, tag: str, **attributes: object) -> etree._Element:
    element = etree.SubElement(parent, tag)
    for name, value in attributes.items():
        _set(element, name.rstrip("_"), value)
    return element


# ---------------------------------------------------------------- from XML


def _reg_number(e: etree._Element) -> RegNumber:
    return RegNumber(number=_text(e), regdate=_opt(e.get("regdate"), _date))


def _task_number(e: etree._Element) -> TaskNumber:
    spelled = e.get("taskdate") or e.get("TaskDate") or e.get("taskDate")  # validation allows exactly one
    return TaskNumber(number=_text(e), taskdate=_date(spelled))


def _child_text(e: etree._Element, tag: str) -> str | None:
    found = e.find(tag)
    return None if found is None else _text(found)


def _organization(e: etree._Element) -> Organization:
    return Organization(name=e.get("name") or e.get("organization_string"), id=e.get("id"), unp=e.get("unp"),
                        fullname=e.get("fullname"), shortname=e.get("shortname"),
                        address=_child_text(e, "Address"))


def _official_person(e: etree._Element) -> OfficialPerson:
    return OfficialPerson(name=e.get("name") or _child_text(e, "Name"),
                          position=e.get("position") or _child_text(e, "Official"),
                          department=e.get("department"))


_ORGANIZATIONS = ("Organization", "OrganizationWithSign")
_PERSONS = ("OfficialPerson", "PrivatePerson", "PrivatePersonWithSign")
_NESTED_PERSONS = ("OfficialPerson", "OfficialPersonWithSign")


def _parties(e: etree._Element) -> tuple[Organization | None, OfficialPerson | None]:
    """(organisation, person) of a participant in any accepted form: ours (Organization and
    OfficialPerson side by side), or GOST's (the official nested inside the organisation)."""
    org_element = next((c for c in e if c.tag in _ORGANIZATIONS), None)
    person_element = next((c for c in e if c.tag in _PERSONS), None)
    if person_element is None and org_element is not None:
        person_element = next((c for c in org_element if c.tag in _NESTED_PERSONS), None)
    return (None if org_element is None else _organization(org_element),
            None if person_element is None else _official_person(person_element))


def _participant(e: etree._Element) -> Participant:
    organization, person = _parties(e)
    return Participant(organization=organization, official_person=person)


def _signdate(e: etree._Element) -> date | None:
    """Author@signdate (ours), or SignDate of the signing official (GOST, uSMDO.pas)."""
    if e.get("signdate") is not None:
        return _date(e.get("signdate"))
    nested = e.find("OrganizationWithSign/OfficialPersonWithSign/SignDate")
    if nested is None:
        nested = e.find("PrivatePersonWithSign/SignDate")
    return None if nested is None else _date(_text(nested))


def _author(e: etree._Element) -> Author:
    organization, person = _parties(e)
    return Author(
        organization=organization,
        official_person=person,
        out_number=_child(e, "OutNumber", _reg_number),
        signdate=_signdate(e),
    )


def _attestation(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else ATTESTATION_CODES[text.casefold()]


def _validator(e: etree._Element) -> Validator:
    organization, person = _parties(e)
    return Validator(
        organization=organization,
        attestation=_attestation(e.get("attestation")),
        official_person=person,
        date=_opt(e.get("date"), _date),
    )


def _executor(e: etree._Element) -> Executor:
    organization, person = _parties(e)
    return Executor(
        organization=organization,
        responsible=_bool(e.get("responsible")),
        official_person=person,
        deadline=_opt(e.get("deadline"), _date),
    )


def _confident(e: etree._Element) -> Confident:
    return Confident(flag=_bool(e.get("flag")), numcopy=_opt(e.get("numcopy"), int), text=_text(e) or None)


def _referred(e: etree._Element) -> Referred:
    reg = e.find("RegNumber")
    number = _reg_number(reg) if reg is not None else _task_number(e.find("TaskNumber"))
    return Referred(idnumber=e.get("idnumber"), retype=int(e.get("retype")), number=number)


def _doc_parent(e: etree._Element) -> DocParent:
    return DocParent(
        delivery_type=int(e.get("delivery_type")),
        idnumber=e.get("idnumber"),
        parorg_id=e.get("parorg_id"),
        reg_number=_reg_number(e.find("RegNumber")),
        lastmsg_id=e.get("lastmsg_id") or None,  # uSMDO.pas writes "" for a parent not sent via SMDO
        parmsg_id=e.get("parmsg_id") or None,
    )


def _doc_transfer(e: etree._Element) -> DocTransfer:
    data_element = e.find("Data")
    reference_id = data_element.get("referenceid")
    return DocTransfer(
        name=e.get("name"),
        type=e.get("type"),
        data=None if reference_id is not None else _b64decode(_text(data_element)),
        reference_id=reference_id,
        signatures=tuple(_b64decode(_text(s)) for s in e.iterfind("Signature")),
        description=e.get("description"),
        os=e.get("os"),
        char_set=e.get("char_set"),
        signature_meta=_signature_meta(e),
    )


def _signature_meta(e: etree._Element) -> tuple[SignatureMeta, ...]:
    metas = tuple(SignatureMeta(s.get("signer"), _opt(s.get("signtime"), _datetime)) for s in e.iterfind("Signature"))
    return metas if any(m != SignatureMeta() for m in metas) else ()


def _document(e: etree._Element) -> Document:
    return Document(
        idnumber=e.get("idnumber"),
        type=int(e.get("type")),
        kind=e.get("kind"),
        pages=int(e.get("pages")),
        reg_number=_reg_number(e.find("RegNumber")),
        authors=_children(e, "Author", _author),
        title=e.get("title"),
        annotation=e.get("annotation"),
        confident=_child(e, "Confident", _confident),
        doc_parent=_child(e, "DocParent", _doc_parent),
        referred=_children(e, "Referred", _referred),
        addressees=_children(e, "Addressee", _participant),
        files=_children(e, "DocTransfer", _doc_transfer),
        validators=_children(e, "Validator", _validator),
        writer=_child(e, "Writer", _participant),
        tasks=_tasks_after(e),
    )


def _tasks_after(document: etree._Element) -> tuple[Task, ...]:
    following = document.getnext()
    while following is not None and not isinstance(following.tag, str):  # comments
        following = following.getnext()
    return _children(following, "Task", _task) if following is not None and following.tag == "TaskList" else ()


def _task(e: etree._Element) -> Task:
    return Task(
        idnumber=e.get("idnumber"),
        task_reg=_bool(e.get("task_reg")),
        task_copy=_bool(e.get("task_copy")),
        task_text=e.get("task_text"),
        task_number=_task_number(e.find("TaskNumber")),
        referred=_children(e, "Referred", _referred),
        author_organizations=_children(e, "AuthorOrganization", _participant),
        kind=e.get("kind"),
        deadline=_opt(e.get("deadline"), _date),
        confident=_child(e, "Confident", _confident),
        doc_parent=_child(e, "DocParent", _doc_parent),
        files=_children(e, "DocTransfer", _doc_transfer),
        executors=_children(e, "Executor", _executor),
    )


def _task_list(e: etree._Element) -> TaskList:
    return TaskList(tasks=_children(e, "Task", _task))


def _folder(e: etree._Element) -> Folder:
    notes = [_text(n) for n in e.iterfind("Note")]
    return Folder(
        add_type=int(e.get("add_type")),
        referred=_children(e, "Referred", _referred),
        note="\n".join(notes) if notes else None,
        files=_children(e, "DocTransfer", _doc_transfer),
        contents=e.get("contents"),
    )


def _add_documents(e: etree._Element) -> AddDocuments:
    return AddDocuments(folders=_children(e, "Folder", _folder))


def _notification(e: etree._Element) -> Notification:
    return Notification(
        event=e.get("event"),
        reason=e.get("reason"),
        date=_opt(e.get("date"), _datetime),
        comment=_text(e) or None,
    )


def _acknowledgement(e: etree._Element) -> Acknowledgement:
    return Acknowledgement(
        msg_id=e.get("msg_id"),
        ack_type=int(e.get("ack_type")),
        results=_children(e, "AckResult", lambda r: AckResult(int(r.get("errorcode")), _text(r))),
        reg_number=_child(e, "RegNumber", _reg_number),
        inc_number=_child(e, "IncNumber", _reg_number),
        notification=_child(e, "Notification", _notification),
        receiver=e.get("receiver"),
    )


_ZONE_READERS: dict[str, Callable[[etree._Element], Zone]] = {
    "Document": _document,
    "Task": _task,
    "TaskList": _task_list,
    "AddDocuments": _add_documents,
    "Acknowledgement": _acknowledgement,
}


def _sender(e: etree._Element) -> Sender:
    return Sender(
        id=e.get("id"),
        sys_id=e.get("sys_id"),
        system=e.get("system"),
        system_details=e.get("system_details"),
        name=e.get("name"),
    )


def _receiver(e: etree._Element) -> Receiver:
    return Receiver(
        id=e.get("id"),
        organization=_child(e, "Organization", _organization),
        official_person=_parties(e)[1],
        referred=_children(e, "Referred", _referred),
        name=e.get("name"),
    )


def from_element(root: etree._Element) -> Envelope:
    """The model of a validated packet tree (ds:Signature, if any, is not part of the model)."""
    header = root.find("Header")
    zone = root.find("Body/*")  # the first element: comments may precede it
    return Envelope(
        msg_id=root.get("msg_id"),
        dtstamp=_datetime(root.get("dtstamp")),
        header=Header(
            msg_type=int(header.get("msg_type")),
            sender=_sender(header.find("Sender")),
            receivers=_children(header, "Receiver", _receiver),
            msg_acknow=int(header.get("msg_acknow")),
        ),
        body=_ZONE_READERS[zone.tag](zone),
        subject=root.get("subject"),
        format_type=root.get("type"),
    )


# ---------------------------------------------------------------- to XML


def _put_reg_number(parent: etree._Element, tag: str, value: RegNumber) -> None:
    _sub(parent, tag, regdate=value.regdate).text = value.number or None


def _put_task_number(parent: etree._Element, value: TaskNumber) -> None:
    _sub(parent, "TaskNumber", taskdate=value.taskdate).text = value.number


def _put_person_parts(element: etree._Element, organization: Organization | None,
                      person: OfficialPerson | None) -> None:
    if organization is not None:
        org = _sub(element, "Organization", name=organization.name, fullname=organization.fullname,
                   shortname=organization.shortname, id=organization.id, unp=organization.unp)
        if organization.address is not None:
            _sub(org, "Address").text = organization.address
    if person is not None:
        _sub(element, "OfficialPerson", name=person.name, position=person.position,
             department=person.department)


def _put_participant(parent: etree._Element, tag: str, value: Participant) -> None:
    _put_person_parts(_sub(parent, tag), value.organization, value.official_person)


def _put_confident(parent: etree._Element, value: Confident | None) -> None:
    if value is not None:
        _sub(parent, "Confident", flag=value.flag, numcopy=value.numcopy).text = value.text or None


def _put_referred(parent: etree._Element, values: Iterable[Referred]) -> None:
    for value in values:
        element = _sub(parent, "Referred", idnumber=value.idnumber, retype=value.retype)
        if isinstance(value.number, RegNumber):
            _put_reg_number(element, "RegNumber", value.number)
        else:
            _put_task_number(element, value.number)


def _put_doc_parent(parent: etree._Element, value: DocParent | None) -> None:
    if value is None:
        return
    element = _sub(parent, "DocParent", delivery_type=value.delivery_type, idnumber=value.idnumber,
                   lastmsg_id=value.lastmsg_id, parmsg_id=value.parmsg_id, parorg_id=value.parorg_id)
    _put_reg_number(element, "RegNumber", value.reg_number)


def _put_files(parent: etree._Element, values: Iterable[DocTransfer]) -> None:
    for value in values:
        element = _sub(parent, "DocTransfer", name=value.name, type_=value.type,
                       description=value.description, os=value.os, char_set=value.char_set)
        data = _sub(element, "Data", referenceid=value.reference_id)
        if value.data:
            data.text = _b64encode(value.data)
        for i, signature in enumerate(value.signatures):
            meta = value.signature_meta[i] if i < len(value.signature_meta) else SignatureMeta()
            _sub(element, "Signature", signer=meta.signer, signtime=meta.signtime).text = _b64encode(signature)


def _put_document(body: etree._Element, z: Document) -> None:
    e = _sub(body, "Document", idnumber=z.idnumber, type_=z.type, kind=z.kind, pages=z.pages,
             title=z.title, annotation=z.annotation)
    _put_reg_number(e, "RegNumber", z.reg_number)
    _put_confident(e, z.confident)
    _put_doc_parent(e, z.doc_parent)
    _put_referred(e, z.referred)
    for addressee in z.addressees:
        _put_participant(e, "Addressee", addressee)
    _put_files(e, z.files)
    for author in z.authors:
        element = _sub(e, "Author", signdate=author.signdate)
        _put_person_parts(element, author.organization, author.official_person)
        if author.out_number is not None:
            _put_reg_number(element, "OutNumber", author.out_number)
    for validator in z.validators:
        element = _sub(e, "Validator", attestation=validator.attestation, date=validator.date)
        _put_person_parts(element, validator.organization, validator.official_person)
    if z.writer is not None:
        _put_participant(e, "Writer", z.writer)
    if z.tasks:
        _put_task_list(body, TaskList(z.tasks))


def _put_task_list(body: etree._Element, z: TaskList) -> None:
    e = _sub(body, "TaskList")
    for task in z.tasks:
        _put_task(e, task)


def _put_task(body: etree._Element, z: Task) -> None:
    e = _sub(body, "Task", idnumber=z.idnumber, task_reg=z.task_reg, task_copy=z.task_copy,
             kind=z.kind, task_text=z.task_text, deadline=z.deadline)
    _put_task_number(e, z.task_number)
    _put_confident(e, z.confident)
    _put_doc_parent(e, z.doc_parent)
    _put_referred(e, z.referred)
    for organization in z.author_organizations:
        _put_participant(e, "AuthorOrganization", organization)
    _put_files(e, z.files)
    for executor in z.executors:
        element = _sub(e, "Executor", responsible=executor.responsible, deadline=executor.deadline)
        _put_person_parts(element, executor.organization, executor.official_person)


def _put_add_documents(body: etree._Element, z: AddDocuments) -> None:
    e = _sub(body, "AddDocuments")
    for folder in z.folders:
        element = _sub(e, "Folder", add_type=folder.add_type, contents=folder.contents)
        if folder.note is not None:
            _sub(element, "Note").text = folder.note
        _put_referred(element, folder.referred)
        _put_files(element, folder.files)


def _put_acknowledgement(body: etree._Element, z: Acknowledgement) -> None:
    e = _sub(body, "Acknowledgement", msg_id=z.msg_id, ack_type=z.ack_type, receiver=z.receiver)
    if z.reg_number is not None:
        _put_reg_number(e, "RegNumber", z.reg_number)
    if z.inc_number is not None:
        _put_reg_number(e, "IncNumber", z.inc_number)
    if z.notification is not None:
        n = z.notification
        _sub(e, "Notification", event=n.event, reason=n.reason, date=n.date).text = n.comment or None
    for result in z.results:
        _sub(e, "AckResult", errorcode=result.errorcode).text = result.text or None


_ZONE_WRITERS: dict[type, Callable[[etree._Element, Zone], None]] = {
    Document: _put_document,
    Task: _put_task,
    TaskList: _put_task_list,
    AddDocuments: _put_add_documents,
    Acknowledgement: _put_acknowledgement,
}


def to_element(env: Envelope) -> etree._Element:
    """The (unsigned) XML tree of an envelope."""
    root = etree.Element("Envelop")
    _set(root, "type", env.format_type)
    _set(root, "msg_id", env.msg_id)
    _set(root, "dtstamp", env.dtstamp)
    _set(root, "subject", env.subject)
    h = env.header
    header = _sub(root, "Header", msg_type=h.msg_type, msg_acknow=h.msg_acknow)
    s = h.sender
    _sub(header, "Sender", id=s.id, name=s.name, sys_id=s.sys_id, system=s.system,
         system_details=s.system_details)
    for receiver in h.receivers:
        element = _sub(header, "Receiver", id=receiver.id, name=receiver.name)
        _put_person_parts(element, receiver.organization, receiver.official_person)
        _put_referred(element, receiver.referred)
    body = _sub(root, "Body")
    _ZONE_WRITERS[type(env.body)](body, env.body)
    return root
