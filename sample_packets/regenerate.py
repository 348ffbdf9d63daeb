"""Write every sample packet: valid/, invalid/, hostile/ (deterministic) and signed/ (fresh PKI).

    python sample_packets/regenerate.py            # valid, invalid, hostile
    python sample_packets/regenerate.py --signed   # also signed/ from a fresh test PKI

Each invalid or hostile file is named with the code it must produce: `code-12-...xml`,
`code--1-...xml` (code -1). tests/test_samples.py checks the committed files are exactly what
this script writes, and runs every one through `smdo validate`.

Signed samples use only the signing contract (signing.pki, signing.keys, signing.xmldsig).
signed/trust/ holds the fresh PKI's CA certificates (no private keys are kept):
`smdo verify signed/document.xml --trust sample_packets/signed/trust`.
"""
from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(HERE.parent))

from lxml import etree  # noqa: E402

from smdo.errors import RegistrationResult  # noqa: E402
from smdo.packet import (  # noqa: E402
    AddDocuments,
    Author,
    Confident,
    DocParent,
    Document,
    DocTransfer,
    Envelope,
    Executor,
    Folder,
    Header,
    OfficialPerson,
    Organization,
    Participant,
    Receiver,
    Referred,
    RegNumber,
    Sender,
    Task,
    TaskNumber,
    Validator,
    build,
    to_element,
)
from smdo.receipts import delivery_ack, notification, registration_ack  # noqa: E402

NAMESPACE = uuid.UUID("6f1d3c2e-5b7a-4c1d-9e8f-0a1b2c3d4e5f")
STAMP = datetime(2026, 11, 20, 9, 30, tzinfo=timezone(timedelta(hours=3)))


def msg_id(name: str) -> str:
    """A stable GUID per sample, so regenerating changes nothing."""
    return str(uuid.uuid5(NAMESPACE, name))


MINFIN = Sender(id="MINFIN", name="Министерство финансов", sys_id=msg_id("minfin-edms"),
                system="SMBusiness", system_details="5.2")
MINTRUD = Sender(id="MINTRUD", name="Министерство труда", sys_id=msg_id("mintrud-edms"),
                 system="Directum", system_details="RX 4.9")
ORG_MINFIN = Organization(name="Министерство финансов Республики Беларусь", id="MINFIN", unp="100000001")
ORG_MINTRUD = Organization(name="Министерство труда и социальной защиты", id="MINTRUD", unp="100000002")
LETTER = DocTransfer(name="letter.pdf", type="pdf", description="Текст письма",
                     data=b"%PDF-1.4\n% sample letter\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
DOC_NUMBER = RegNumber("01-12/345", date(2026, 11, 19))
REPLY_NUMBER = RegNumber("07-4/88", date(2026, 11, 20))
SIGNER = OfficialPerson(name="Иванов Иван Иванович", position="Заместитель министра")


def _envelope(name: str, msg_type: int, sender: Sender, receiver: str, body, subject: str | None = None) -> Envelope:
    return Envelope(msg_id=msg_id(name), dtstamp=STAMP, subject=subject,
                    header=Header(msg_type=msg_type, sender=sender, receivers=(Receiver(id=receiver),)),
                    body=body)


def document() -> Envelope:
    return _envelope("document", 1, MINFIN, "MINTRUD", Document(
        idnumber="MINFIN-2026-000345", type=0, kind="01", pages=2, reg_number=DOC_NUMBER,
        title="О представлении сведений", annotation="Просим представить сведения до 1 декабря.",
        confident=Confident(flag=False),
        addressees=(Participant(ORG_MINTRUD, OfficialPerson("Петров Пётр Петрович", position="Министр")),),
        files=(LETTER,),
        authors=(Author(ORG_MINFIN, SIGNER, out_number=DOC_NUMBER, signdate=date(2026, 11, 19)),),
        validators=(Validator(ORG_MINFIN, attestation=2, official_person=SIGNER, date=date(2026, 11, 19)),),
        writer=Participant(ORG_MINFIN, OfficialPerson("Сидорова Анна", department="Управление делами")),
    ), subject="О представлении сведений")


def document_with_part() -> Envelope:
    """A large file travels beside the envelope; Data names the part."""
    env = document()
    big = DocTransfer(name="tables.xlsx", type="xlsx", data=None, reference_id="part-1@smdo")
    return Envelope(msg_id=msg_id("document-part"), dtstamp=STAMP, header=env.header, subject=env.subject,
                    body=replace(env.body, files=(LETTER, big)))


def _referred_document() -> Referred:
    return Referred(idnumber="MINFIN-2026-000345", retype=1, number=DOC_NUMBER)


def supplement() -> Envelope:
    return _envelope("supplement", 2, MINFIN, "MINTRUD", AddDocuments(folders=(Folder(
        add_type=0, note="Приложение к письму", referred=(_referred_document(),),
        files=(DocTransfer(name="annex.txt", type="txt", char_set="UTF-8", data="Приложение 1".encode()),),
    ),)))


def reply() -> Envelope:
    return _envelope("reply", 3, MINTRUD, "MINFIN", Document(
        idnumber="MINTRUD-2026-000088", type=0, kind="12", pages=1, reg_number=REPLY_NUMBER,
        title="О представлении сведений (ответ)",
        doc_parent=DocParent(delivery_type=1, idnumber="MINFIN-2026-000345", parorg_id="MINFIN",
                             reg_number=DOC_NUMBER, lastmsg_id=msg_id("document"), parmsg_id=msg_id("document")),
        referred=(_referred_document(),),
        files=(DocTransfer(name="reply.pdf", type="pdf", data=b"%PDF-1.4\n% reply\n%%EOF\n"),),
        authors=(Author(ORG_MINTRUD, OfficialPerson("Петров Пётр Петрович", position="Министр"),
                        signdate=date(2026, 11, 20)),),
    ))


def reply_supplement() -> Envelope:
    return _envelope("reply-supplement", 4, MINTRUD, "MINFIN", AddDocuments(folders=(Folder(
        add_type=1, referred=(Referred(idnumber="MINTRUD-2026-000088", retype=1, number=REPLY_NUMBER),),
        files=(DocTransfer(name="data.csv", type="csv", char_set="UTF-8", data=b"region;count\nMinsk;12\n"),),
    ),)))


def task() -> Envelope:
    return _envelope("task", 1, MINFIN, "MINTRUD", Task(
        idnumber="MINFIN-T-2026-17", task_reg=True, task_copy=False, kind="поручение",
        task_text="Подготовить предложения по проекту постановления.", deadline=date(2026, 12, 15),
        task_number=TaskNumber("П-17", date(2026, 11, 20)),
        referred=(_referred_document(),),
        author_organizations=(Participant(ORG_MINFIN, SIGNER),),
        executors=(Executor(ORG_MINTRUD, responsible=True, official_person=OfficialPerson("Петров Пётр Петрович")),),
    ))


def delivery() -> Envelope:
    return delivery_ack(acknowledged_msg_id=msg_id("document"), sender=MINTRUD, receiver_id="MINFIN",
                        msg_id=msg_id("delivery-ack"))


def registration() -> Envelope:
    env = registration_ack(acknowledged_msg_id=msg_id("document"), sender=MINTRUD, receiver_id="MINFIN",
                           result=RegistrationResult.REGISTERED, inc_number=RegNumber("вх-1021", date(2026, 11, 20)),
                           reg_number=DOC_NUMBER, msg_id=msg_id("registration-ack"))
    return _fixed_stamp(env)


def registration_refused() -> Envelope:
    env = registration_ack(acknowledged_msg_id=msg_id("document"), sender=MINTRUD, receiver_id="MINFIN",
                           result=RegistrationResult.REFUSED, reason="attachment_missing",
                           msg_id=msg_id("registration-refused"))
    return _fixed_stamp(env)


def notification_event() -> Envelope:
    env = notification(acknowledged_msg_id=msg_id("document"), sender=MINTRUD, receiver_id="MINFIN",
                       event="executor_assigned", comment="Исполнитель: Управление статистики",
                       date=STAMP, msg_id=msg_id("notification"))
    return _fixed_stamp(env)


def _fixed_stamp(env: Envelope) -> Envelope:
    return Envelope(msg_id=env.msg_id, dtstamp=STAMP, header=env.header, body=env.body, subject=env.subject,
                    format_type=env.format_type)


VALID: dict[str, Callable[[], Envelope]] = {
    "document": document,
    "document-with-part": document_with_part,
    "supplement": supplement,
    "reply": reply,
    "reply-supplement": reply_supplement,
    "task": task,
    "delivery-ack": lambda: _fixed_stamp(delivery()),
    "registration-ack": registration,
    "registration-refused": registration_refused,
    "notification-event": notification_event,
}


# ---------------------------------------------------------------- invalid samples: one defect each

Mutation = Callable[[etree._Element], None]


def _set(path: str, name: str, value: str) -> Mutation:
    return lambda root: (root if path == "." else root.find(path)).set(name, value)


def _drop_attr(path: str, name: str) -> Mutation:
    return lambda root: (root if path == "." else root.find(path)).attrib.pop(name)


def _remove(path: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        element = root.find(path)
        element.getparent().remove(element)
    return mutate


def _append(path: str, xml: str, index: int | None = None) -> Mutation:
    def mutate(root: etree._Element) -> None:
        parent = root if path == "." else root.find(path)
        child = etree.fromstring(xml)
        parent.append(child) if index is None else parent.insert(index, child)
    return mutate


def _text(path: str, text: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        root.find(path).text = text
    return mutate


def _rename_root(tag: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        root.tag = tag
    return mutate


def _msg_type(value: str) -> Mutation:
    return _set("Header", "msg_type", value)


def _duplicate(path: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        element = root.find(path)
        element.addnext(copy.deepcopy(element))
    return mutate


# name -> (base sample, mutation)
INVALID: dict[str, tuple[str, Mutation]] = {
    "code-1-wrong-format-name": ("document", _set(".", "type", "MEDO-2.7")),
    "code-1-root-in-a-namespace": ("document", _rename_root("{urn:example:sdip}Envelop")),
    "code-1-wrong-root-element": ("document", _rename_root("Envelope")),
    "code-2-obsolete-version-2.0": ("document", _set(".", "type", "SDIP-2.0")),
    "code-2-unknown-version-3.0": ("document", _set(".", "type", "SDIP-3.0")),
    "code-3-msg_type-9": ("document", _msg_type("9")),
    "code-3-msg_type-not-a-number": ("document", _msg_type("document")),
    "code-10-no-receiver": ("document", _remove("Header/Receiver")),
    "code-10-receiver-without-id": ("document", _drop_attr("Header/Receiver", "id")),
    "code-12-missing-sys_id": ("document", _drop_attr("Header/Sender", "sys_id")),
    "code-12-missing-msg_id": ("document", _drop_attr(".", "msg_id")),
    "code-12-missing-msg_acknow": ("document", _drop_attr("Header", "msg_acknow")),
    "code-12-missing-header": ("document", _remove("Header")),
    "code-20-empty-body": ("document", _remove("Body/Document")),
    "code-21-document-in-supplement": ("document", _msg_type("2")),
    "code-21-supplement-as-acknowledgement": ("supplement", _msg_type("0")),
    "code-22-two-zones": ("document", _duplicate("Body/Document")),
    "code-30-unknown-element": ("document", _append("Body/Document", "<Comment>hello</Comment>")),
    "code-30-unknown-attribute": ("document", _set("Body/Document", "priority", "high")),
    "code-31-receiver-inside-sender": ("document", _append("Header/Sender", '<Receiver id="MINTRUD"/>')),
    "code-31-author-before-regnumber": ("document", _append("Body/Document", "<Author><Organization name='X'/></Author>", 0)),
    "code-32-two-regnumbers": ("document", _duplicate("Body/Document/RegNumber")),
    "code-32-no-author": ("document", _remove("Body/Document/Author")),
    "code-32-reply-without-docparent": ("reply", _remove("Body/Document/DocParent")),
    "code-32-registered-without-incnumber": ("registration-ack", _remove("Body/Acknowledgement/IncNumber")),
    "code-33-bad-date": ("document", _set("Body/Document/RegNumber", "regdate", "2026-13-45")),
    "code-33-bad-guid": ("document", _set(".", "msg_id", "not-a-guid")),
    "code-33-unknown-document-kind": ("document", _set("Body/Document", "kind", "999")),
    "code-33-referred-task-by-regnumber": ("supplement", _set("Body/AddDocuments/Folder/Referred", "retype", "2")),
    "code-33-reserved-ack_type-3": ("delivery-ack", _set("Body/Acknowledgement", "ack_type", "3")),
    "code-33-refusal-reason-not-in-list": ("registration-refused",
                                           _set("Body/Acknowledgement/Notification", "reason", "bad_mood")),
    "code-34-data-not-base64": ("document", _text("Body/Document/DocTransfer/Data", "this is not base64!")),
    "code-34-data-inline-and-reference": ("document-with-part",
                                          _text("Body/Document/DocTransfer[2]/Data", "QUJD")),
    "code-34-empty-regnumber": ("document", _text("Body/Document/RegNumber", "")),
    "code-35-missing-pages": ("document", _drop_attr("Body/Document", "pages")),
    "code-35-refused-without-reason": ("registration-refused",
                                       _drop_attr("Body/Acknowledgement/Notification", "reason")),
}

# Written as text: they are not trees a model can make.
RAW_INVALID: dict[str, bytes] = {
    "code--1-not-well-formed": b"<?xml version='1.0'?>\n<Envelop type='SDIP-2.1'>\n  <Header>\n</Envelop>\n",
    "code--1-empty-file": b"",
}

HOSTILE: dict[str, bytes] = {
    # External entity reading a local file (XXE).
    "code--1-xxe-local-file": b"""<?xml version="1.0"?>
<!DOCTYPE Envelop [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Envelop type="SDIP-2.1" msg_id="00000000-0000-4000-8000-000000000001" dtstamp="2026-11-20T09:30:00Z"
         subject="&xxe;"><Header msg_type="1" msg_acknow="2"/><Body/></Envelop>
""",
    # Exponential entity expansion ("billion laughs").
    "code--1-billion-laughs": b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Envelop type="SDIP-2.1" subject="&lol9;"/>
""",
    # External DTD over the network.
    "code--1-external-dtd": b"""<?xml version="1.0"?>
<!DOCTYPE Envelop SYSTEM "http://127.0.0.1:9/sdip-2.1.dtd">
<Envelop type="SDIP-2.1"/>
""",
    # Parameter entities pulling an external subset (out-of-band exfiltration pattern).
    "code--1-parameter-entities": b"""<?xml version="1.0"?>
<!DOCTYPE Envelop [
 <!ENTITY % file SYSTEM "file:///etc/hostname">
 <!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd">
 %remote;
]>
<Envelop type="SDIP-2.1"/>
""",
    # The same XXE in UTF-16, which a byte scan for "<!DOCTYPE" cannot see.
    "code--1-xxe-utf16": """<?xml version="1.0" encoding="UTF-16"?>
<!DOCTYPE Envelop [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Envelop type="SDIP-2.1" subject="&xxe;"/>
""".encode("utf-16"),
    # Billion laughs in UTF-16: reaches libxml2, whose amplification limit stops it.
    "code--1-billion-laughs-utf16": b"",  # filled in below from the UTF-8 one
    # An undeclared entity reference.
    "code--1-undeclared-entity": b"""<?xml version="1.0"?>
<Envelop type="SDIP-2.1">&xxe;</Envelop>
""",
}


HOSTILE["code--1-billion-laughs-utf16"] = HOSTILE["code--1-billion-laughs"].decode().replace(
    '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16")


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def valid_samples() -> dict[str, bytes]:
    return {name: _xml(to_element(make())) for name, make in VALID.items()}


def invalid_samples() -> dict[str, bytes]:
    samples = dict(RAW_INVALID)
    for name, (base, mutate) in INVALID.items():
        root = to_element(VALID[base]())
        mutate(root)
        samples[name] = _xml(root)
    return samples


def expected_code(name: str) -> int:
    """The code a sample is named with: code-12-... -> 12, code--1-... -> -1."""
    rest = name.removeprefix("code-")
    sign = -1 if rest.startswith("-") else 1
    return sign * int(rest.lstrip("-").split("-", 1)[0])


def write_unsigned(directory: Path = HERE) -> list[Path]:
    written = []
    for folder, samples in (("valid", valid_samples()), ("invalid", invalid_samples()), ("hostile", HOSTILE)):
        target = directory / folder
        target.mkdir(parents=True, exist_ok=True)
        for name, data in samples.items():
            path = target / f"{name}.xml"
            path.write_bytes(data)
            written.append(path)
    return written


def write_signed(directory: Path = HERE) -> list[Path]:
    """Sign every valid sample with a fresh test PKI; keep only its CA certificates."""
    from signing.keys import Signer
    from signing.pki import init_pki, issue_certificate
    from signing.xmldsig import sign_enveloped

    target = directory / "signed"
    if target.exists():
        shutil.rmtree(target)
    (target / "trust").mkdir(parents=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        pki_dir = Path(tmp) / "pki"
        layout = init_pki(pki_dir)
        signers = {}
        for code in ("MINFIN", "MINTRUD"):
            issued = issue_certificate(pki_dir, code, f"Test {code}")
            signers[code] = Signer.from_files(issued.key_path, issued.cert_path)
        for pem in sorted(Path(layout.trust_dir).glob("*.pem")):
            shutil.copy(pem, target / "trust" / pem.name)
            written.append(target / "trust" / pem.name)
        for name, make in VALID.items():
            env = make()
            root = to_element(env)
            sign_enveloped(root, signers[env.header.sender.id])  # appends ds:Signature to root
            path = target / f"{name}.xml"
            path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
            written.append(path)
        # One tampered packet: a byte of signed content changed after signing.
        document_bytes = (target / "document.xml").read_bytes()
        tampered = document_bytes.replace(b'pages="2"', b'pages="3"', 1)
        assert tampered != document_bytes
        (target / "code--21-tampered-document.xml").write_bytes(tampered)
        written.append(target / "code--21-tampered-document.xml")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signed", action="store_true", help="also write signed/ from a fresh test PKI")
    parser.add_argument("--dir", type=Path, default=HERE, help="where to write (default: this folder)")
    args = parser.parse_args(argv)
    written = write_unsigned(args.dir)
    if args.signed:
        written += write_signed(args.dir)
    print(f"wrote {len(written)} files under {args.dir}")


if __name__ == "__main__":
    main()
