"""The test-adapter contract, as the emulated EDMS implement it (README: "The test adapter").

An integrator runs a small adapter beside its EDMS during certification so the conformance suite
can see what was registered, not only what was acknowledged:

    GET <adapter>/status           {"boot_id": "..."}  (changes on every restart of the EDMS)
    GET <adapter>/cards/{msg_id}   the registered card of a received document, as JSON; 404 if none

The card is read back from what the EDMS stored (its native record), never from the packet, so
whatever the EDMS lost or changed on the way shows.
"""
from __future__ import annotations

import hashlib
from datetime import date

from edms_adapters.adapter import Party, RegistrationCard
from edms_adapters.service import EdmsService


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _party(party: Party | None) -> dict | None:
    if party is None:
        return None
    return {"organisation": party.organisation, "code": party.code, "person": party.person}


def card_json(service: EdmsService, msg_id: str) -> dict | None:
    """The registered card of received document `msg_id` as the contract's JSON, or None."""
    doc = next((d for d in service.documents("received") if d.msg_id == msg_id), None)
    if doc is None:
        return None
    body: dict[str, object] = {"msg_id": doc.msg_id, "sender": doc.counterpart, "status": doc.status,
                               "reason": doc.reason, "incoming_number": doc.number or None,
                               "registrations": 1}
    native = service.store.native("received", msg_id)
    card: RegistrationCard | None = None
    if native is not None:
        card = service.adapter.to_card(service.adapter.load(native))
    if card is None:
        body.update(title=doc.title, files=[], parent=None, task=None, supplement=None)
        return body
    body.update(
        title=card.title, kind=card.kind, idnumber=card.idnumber,
        sender_number=card.number or None, sender_date=_day(card.date) if card.number else None,
        files=[{"name": f.name, "size": len(f.content), "sha256": hashlib.sha256(f.content).hexdigest()}
               for f in card.files],
        parent=None if card.parent is None else {
            "msg_id": card.parent.msg_id or None, "idnumber": card.parent.idnumber,
            "organisation": card.parent.organisation_code, "number": card.parent.reg_number,
            "date": _day(card.parent.reg_date)},
        task=None if card.task is None else {
            "number": card.task.number, "date": _day(card.task.date), "text": card.task.text,
            "deadline": _day(card.task.deadline), "executor": _party(card.task.executor)},
        supplement=None if card.supplement is None else {
            "idnumber": card.supplement.idnumber, "number": card.supplement.reg_number,
            "date": _day(card.supplement.reg_date), "note": card.supplement.note,
            "add_type": card.supplement.add_type},
    )
    return body
