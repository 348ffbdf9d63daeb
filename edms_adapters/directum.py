"""Directum-style EDMS: a JSON REST system with its own document model and field names.

The native record is a JSON object in Directum's vocabulary (`Name`, `DocumentKind`,
`RegistrationNumber`, `Versions`, ...). The adapter translates it to SDIP and signs on the
agency's behalf; incoming packets arrive as pushes and are stored as the same JSON.
"""
from __future__ import annotations

import json
from typing import Any

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

Json = dict[str, Any]


def _party(p: Party) -> Json:
    return {"Company": p.organisation, "SmdoCode": p.code, "Employee": p.person, "JobTitle": p.post}


def _read_party(value: object, what: str) -> Party:
    if not isinstance(value, dict) or not value.get("Company"):
        raise ValueError(f"Directum document: {what} needs an object with a Company")
    return Party(
        str(value["Company"]), str(value.get("SmdoCode") or ""),
        str(value.get("Employee") or ""), str(value.get("JobTitle") or ""),
    )


def _required(record: Json, key: str) -> Any:
    if key not in record or record[key] is None:
        raise ValueError(f"Directum document: field {key} is required")
    return record[key]


class DirectumAdapter(EdmsAdapter[Json]):
    """Directum JSON document <-> registration card."""

    name = "directum"
    product = "Directum-emulated"
    inbound = "push"
    outbound = "direct"
    number_letter = "D"

    def from_card(self, card: RegistrationCard) -> Json:
        doc: Json = {
            "Id": card.idnumber,
            "RegistrationNumber": card.number,
            "RegistrationDate": date_text(card.date),
            "Name": card.title,
            "DocumentKind": {"Code": card.kind},
            "Subject": card.annotation,
            "PageCount": card.pages,
            "Author": _party(card.author),
            "OurSignatory": _party(card.signer),
            "Addressees": [_party(a) for a in card.addressees],
            "Versions": [
                {
                    "FileName": f.name, "MimeType": f.media_type, "Note": f.description,
                    "Body": b64(f.content), "Signatures": [b64(s) for s in f.signatures],
                }
                for f in card.files
            ],
        }
        if card.parent is not None:
            p = card.parent
            doc["InResponseTo"] = {
                "MessageId": p.msg_id, "DocumentId": p.idnumber, "Company": p.organisation_code,
                "RegistrationNumber": p.reg_number, "RegistrationDate": date_text(p.reg_date),
            }
        if card.task is not None:
            t = card.task
            doc["Assignment"] = {
                "Number": t.number, "Created": date_text(t.date), "ActiveText": t.text,
                "Deadline": date_text(t.deadline) or None,
                "Performer": _party(t.executor) if t.executor is not None else None,
            }
        if card.supplement is not None:
            s = card.supplement
            doc["AddendumOf"] = {
                "DocumentId": s.idnumber, "RegistrationNumber": s.reg_number,
                "RegistrationDate": date_text(s.reg_date), "IsAssignment": s.refers_to_task,
                "AddendumType": s.add_type, "Note": s.note,
            }
        return doc

    def to_card(self, record: Json) -> RegistrationCard:
        if not isinstance(record, dict):
            raise ValueError("Directum document: expected a JSON object")
        kind = _required(record, "DocumentKind")
        # A received addendum (SDIP supplement) has no kind of its own: it belongs to AddendumOf.
        if not isinstance(kind, dict) or (not kind.get("Code") and record.get("AddendumOf") is None):
            raise ValueError("Directum document: DocumentKind needs a Code")
        files = []
        for i, v in enumerate(record.get("Versions") or []):
            if not isinstance(v, dict) or not v.get("FileName"):
                raise ValueError(f"Directum document: Versions[{i}] needs a FileName")
            files.append(Attachment(
                name=str(v["FileName"]),
                content=unb64(v.get("Body"), f"Directum document: Versions[{i}].Body"),
                media_type=str(v.get("MimeType") or "application/octet-stream"),
                description=str(v.get("Note") or ""),
                signatures=tuple(
                    unb64(s, f"Directum document: Versions[{i}].Signatures")
                    for s in v.get("Signatures") or []
                ),
            ))
        parent = None
        if (p := record.get("InResponseTo")) is not None:
            parent = ParentRef(
                msg_id=str(p.get("MessageId") or ""), idnumber=str(p.get("DocumentId") or ""),
                organisation_code=str(p.get("Company") or ""),
                reg_number=str(p.get("RegistrationNumber") or ""),
                reg_date=parse_date(p.get("RegistrationDate"), "InResponseTo.RegistrationDate"),
            )
        task = None
        if (t := record.get("Assignment")) is not None:
            task = TaskInfo(
                number=str(t.get("Number") or ""),
                date=parse_date(t.get("Created"), "Assignment.Created"),
                text=str(t.get("ActiveText") or ""),
                deadline=optional_date(t.get("Deadline"), "Assignment.Deadline"),
                executor=_read_party(t["Performer"], "Assignment.Performer")
                if t.get("Performer") else None,
            )
        supplement = None
        if (s := record.get("AddendumOf")) is not None:
            supplement = SupplementRef(
                idnumber=str(s.get("DocumentId") or ""),
                reg_number=str(s.get("RegistrationNumber") or ""),
                reg_date=parse_date(s.get("RegistrationDate"), "AddendumOf.RegistrationDate"),
                refers_to_task=bool(s.get("IsAssignment")),
                add_type=parse_int(s.get("AddendumType", 0), "AddendumOf.AddendumType"),
                note=str(s.get("Note") or ""),
            )
        return RegistrationCard(
            idnumber=str(_required(record, "Id")),
            number=str(record.get("RegistrationNumber") or ""),
            date=parse_date(_required(record, "RegistrationDate"), "RegistrationDate"),
            title=str(_required(record, "Name")),
            kind=str(kind["Code"]),
            annotation=str(record.get("Subject") or ""),
            pages=parse_int(record.get("PageCount", 1), "PageCount"),
            author=_read_party(_required(record, "Author"), "Author"),
            signer=_read_party(_required(record, "OurSignatory"), "OurSignatory"),
            addressees=tuple(
                _read_party(a, f"Addressees[{i}]")
                for i, a in enumerate(_required(record, "Addressees"))
            ),
            files=tuple(files),
            parent=parent,
            task=task,
            supplement=supplement,
        )

    def dump(self, record: Json) -> bytes:
        return json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")

    def load(self, data: bytes) -> Json:
        try:
            record = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"Directum document: not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ValueError("Directum document: expected a JSON object")
        return record
